"""Open311 at city scale: GET /open311/v2/requests.json for one street and one month on a
database of N cases (default 1,000,000, built as benchmarks/sweep.py builds it), through
the real HTTP app (httpx ASGITransport: no network in the figure).

    python -m benchmarks.open311                                  # SQLite, 1,000,000 cases
    python -m benchmarks.open311 --database postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.open311 --cases 200000                   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlmodel import col, select

from benchmarks.common import percentile, private_schema_url
from benchmarks.sweep import NOW, build, fresh, runtime
from griddesk.app import build_application
from griddesk.http.app import build_http_app
from storage.models import Street

ROUNDS = 30


async def measure(url: str, media: Path) -> dict[str, dict[str, float]]:
    from storage.db import Database

    db = Database(url)
    rt = runtime(db, media)
    with db.read() as s:
        street = s.exec(select(Street).order_by(col(Street.id))).first()
    assert street is not None
    app = build_application(rt)
    asgi = build_http_app(app)
    start = (NOW - timedelta(days=60)).isoformat()
    end = (NOW - timedelta(days=30)).isoformat()
    month = {"street": street.code, "start_date": start, "end_date": end}
    queries: dict[str, dict[str, str]] = {
        "street-month, first 1000": month,
        "street-month, page 5 of 100": {**month, "page": "5", "page_size": "100"},
        "street-month, status=open": {**month, "status": "open"},
        "whole district, default 90 days": {},
    }
    figures: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://bench") as client:
        for name, query in queries.items():
            times, cpu, count = [], [], 0
            for i in range(ROUNDS + 3):
                began, began_cpu = time.perf_counter(), time.process_time()
                answer = await client.get("/open311/v2/requests.json", params=query)
                elapsed = time.perf_counter() - began
                used = time.process_time() - began_cpu
                assert answer.status_code == 200, answer.text
                count = len(answer.json())
                if i >= 3:  # the first ones warm the caches
                    times.append(elapsed * 1000)
                    cpu.append(used * 1000)
            figures[name] = {
                "median": statistics.median(times),
                "p99": percentile(times, 0.99),
                "cpu": statistics.median(cpu),
                "rows": count,
            }
    db.dispose()
    return figures


def _built(url: str, cases: int) -> bool:
    from sqlalchemy import func

    from storage.db import Database
    from storage.models import Case

    try:
        db = Database(url)
        with db.read() as s:
            found = s.exec(select(func.count()).select_from(Case)).one()
        db.dispose()
        return found == cases
    except Exception:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (a private schema is used)")
    parser.add_argument("--keep", action="store_true", help="keep the database built (and reuse one kept before)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        kept = Path(tempfile.gettempdir()) / f"griddesk-open311-{args.cases}.db"
        if args.database:
            url = private_schema_url(args.database, "bench_open311") if not args.keep else args.database
        else:
            url = f"sqlite:///{kept}" if args.keep else f"sqlite:///{tmp}/big.db"
        if not (args.keep and _built(url, args.cases)):
            db = fresh(url)
            build(db, args.cases, 0.1)
            db.dispose()
        figures = asyncio.run(measure(url, media))
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: {args.cases:,} cases; GET /open311/v2/requests.json ({ROUNDS} rounds each)")
    for name, f in figures.items():
        print(
            f"  {name:34s} {int(f['rows']):5d} requests   median {f['median']:7.1f} ms   p99 {f['p99']:7.1f} ms"
            f"   (our process's CPU: median {f['cpu']:5.1f} ms)"
        )
    print("  (the CPU figure is what the wall-clock one would be on an idle machine, SQL server time aside)")


if __name__ == "__main__":
    main()
