"""The desk at city scale (issue 11): figures, chart, map, export, /queue and /find.

Builds the sweep benchmark's database (benchmarks/sweep.py: N cases over 540 days, a tenth
open, two streets) and times, each as the median of several runs:
  figures for a street-month and for the district over a year (figures.compute: sums over
  the figures kept per case, case_figures, derived once after the build as `griddesk` does
  at the first start after migration 0008),
  the chart of a street-month by team, the map of 5,000 cases,
  the export of 100,000 cases to XLSX (time, and RSS growth in a process of its own),
  the first page of /queue, each filter, a street's and a team's, and /find (codes, common
  and rare words of one, two and more characters).

    python -m benchmarks.desk                       # SQLite, 1,000,000 cases
    python -m benchmarks.desk --cases 200000        # quicker
    python -m benchmarks.desk --database postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.desk --cases 200000 --save-chart chart.png --save-map map.png
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from benchmarks import sweep
from bot.desk import export, figures, maps, periods, queue, render, scopes
from bot.people.roles import MembershipView, Person
from storage import search_index
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Case, Role, Street, Unit, UnitKind


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    out: Any = None
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def hwm_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it does not carry the parent's peak
    across fork and exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def export_child(url: str, first: str, last: str, out: str) -> None:
    """In a process of its own: RSS before, peak RSS during, time, rows."""
    db = Database(url)
    rt = sweep.runtime(db, Path(out).parent / "media")
    from bot.org import index

    index.org(rt)
    import openpyxl  # noqa: F401  (its import is not the export's growth)

    before = rss_mb()
    started = time.perf_counter()
    count = export.export_file(rt, "330102", first, last, "xlsx", out, "zh_CN")
    seconds = time.perf_counter() - started
    peak = hwm_mb()
    print(json.dumps({"rows": count, "seconds": seconds, "rss_before_mb": before, "peak_mb": peak,
                      "size_mb": Path(out).stat().st_size / 2**20}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a SQLite file); it is emptied")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--save-chart", type=Path)
    parser.add_argument("--save-map", type=Path)
    parser.add_argument("--export-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--only-find", action="store_true", help="time /find only (round 2: the text index)")
    parser.add_argument("--keep", type=Path, help="the SQLite file to build (kept afterwards)")
    parser.add_argument("--reuse", action="store_true", help="time the database --keep or --database holds, unbuilt")
    parser.add_argument(
        "--only-figures", action="store_true", help="time the figures only (street-month, district-year)"
    )
    args = parser.parse_args()
    if args.export_child:
        export_child(*args.export_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{args.keep or Path(tmp) / 'desk.db'}"
        reuse = args.reuse and (args.database or (args.keep and args.keep.exists()))
        db = Database(url) if reuse else sweep.fresh(url)
        if reuse:  # a database built before a later migration: brought up to date as `griddesk run` does
            started = time.perf_counter()
            upgrade(db)
            print(f"schema brought up to date in {time.perf_counter() - started:.1f} s", flush=True)
        else:
            sweep.build(db, args.cases, 0.1)
        rt = sweep.runtime(db, Path(tmp) / "media")
        # sweep.build writes the cases' rows directly: their figures are derived as an upgraded
        # database's are at its first start (migration 0008), then the planner's statistics
        if not reuse and not args.only_find:
            started = time.perf_counter()
            derived = figures.rebuild(rt)
            with db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
            print(f"figures derived for {derived:,} cases in {time.perf_counter() - started:.0f} s", flush=True)
        with db.session() as s:
            street = s.exec(select(Street).order_by(col(Street.id))).first()
            assert street is not None
            code = street.code
        admin = Person(user_id=0, telegram_id=0, name="bench", language="zh_CN", is_admin=True)
        dispatcher = Person(
            user_id=0, telegram_id=0, name="bench", language="zh_CN", is_admin=False,
            memberships=(MembershipView(Role.DISPATCHER, "street", code, "", ""),),
        )  # fmt: skip
        now = rt.clock.now()
        street_scope = scopes.resolve(rt, admin, code)
        district = scopes.resolve(rt, admin, None)
        tz = scopes.zone(district)
        month = periods.parse("last-month", now, tz)
        year = periods.parse("365d", now, tz)
        results: dict[str, Any] = {}
        if args.only_find:
            find_only(rt, dispatcher, street.id, args)
            return
        ms, report = timed(lambda: figures.compute(rt, street_scope, month), args.runs)
        results["figures street-month"] = (ms, report.total.received)
        ms, report_by = timed(lambda: figures.compute(rt, street_scope, month, "team"), args.runs)
        results["figures street-month by team"] = (ms, report_by.total.received)
        ms, yr = timed(lambda: figures.compute(rt, district, year), max(1, args.runs // 2))
        results["figures district-year"] = (ms, yr.total.received)
        if args.only_figures:
            ms, yr_by = timed(lambda: figures.compute(rt, district, year, "street"), max(1, args.runs // 2))
            results["figures district-year by street"] = (ms, yr_by.total.received)
            backend = "PostgreSQL" if args.database else "SQLite"
            print(
                f"{backend}: {args.cases:,} cases; medians of {args.runs} runs (district-year {max(1, args.runs // 2)})"
            )
            for label, (ms, n) in results.items():
                print(f"  {label:32s} {ms:9.1f} ms   ({n:,})")
            return
        ms, chart = timed(lambda: render.chart("zh_CN", report_by, "清波街道 · 上月"), args.runs)
        results["chart render"] = (ms, len(chart.png))
        if args.save_chart:
            args.save_chart.write_bytes(chart.png)
        # the map of 5,000 cases: the last days of the district that hold about that many
        per_day = args.cases / 540
        days = max(1, round(5000 / per_day))
        span = periods.parse(f"{days}d", now, tz)
        ms, image = timed(lambda: maps.draw(rt, district, span, "zh_CN", f"上城区 · 近{days}天"), args.runs)
        results["map render"] = (ms, image.cases)
        if args.save_map:
            args.save_map.write_bytes(image.png)
        with db.read() as s:
            team = s.exec(select(Unit).where(Unit.street_id == street.id, Unit.kind == UnitKind.TEAM)).first()
        assert team is not None
        staff = Person(
            user_id=0, telegram_id=0, name="bench", language="zh_CN", is_admin=False,
            memberships=(MembershipView(Role.STAFF, "unit", team.code, "", ""),),
        )  # fmt: skip
        for who, person in (("street", dispatcher), ("team", staff)):
            for kind in QUEUE_FILTERS:
                ms, page = timed(partial(queue.queue, rt, person, kind=kind), args.runs * 4)
                results[f"/queue {who}: {kind}"] = (ms, len(page.lines))
        with db.read() as s:
            some = s.exec(select(Case.code).where(Case.street_id == street.id).order_by(col(Case.id).desc())).first()
        assert some is not None
        for label, text in find_texts(some):
            ms, found = timed(partial(queue.find, rt, dispatcher, text), args.runs)
            results[f"/find {label} {text}"] = (ms, len(found))
        # export: the last days holding ~100,000 cases of the district, in a child process
        days = max(1, round(args.export_rows / per_day))
        last = (now.astimezone(tz)).date()
        first = last - timedelta(days=days - 1)
        db.dispose()
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.desk", "--export-child", url, first.isoformat(), last.isoformat(),
             f"{tmp}/export.xlsx"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        exp = json.loads(child.stdout.strip().splitlines()[-1])
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: {args.cases:,} cases ({int(args.cases / 10):,} open); medians of {args.runs} runs")
    for label, (ms, n) in results.items():
        print(f"  {label:32s} {ms:9.1f} ms   ({n:,})")
    print(
        f"  export {exp['rows']:,} cases to XLSX   {exp['seconds']:.1f} s, {exp['size_mb']:.1f} MB file, "
        f"RSS {exp['rss_before_mb']:.0f} MB before, peak {exp['peak_mb']:.0f} MB "
        f"(growth {exp['peak_mb'] - exp['rss_before_mb']:.0f} MB)"
    )


QUEUE_FILTERS = ("all", "overdue", "unclaimed", "today", "waiting")  # the first page of each


def find_texts(code: str) -> tuple[tuple[str, str], ...]:
    """What /find is timed with: long and short, common and rare (benchmarks/sweep.py's words)."""
    return (
        ("code", code),
        ("inside a code", code[-7:]),  # not its start: one case holds it
        ("every case", "benchmark"),
        ("common, 2 characters", "井盖"),
        ("common, 1 character", "路"),
        ("rare (1 in 100,000)", sweep.RARE),
        ("rare, 2 characters", sweep.RARE[:2]),
        ("rare, 1 character", sweep.RARE[:1]),
        ("no case", "不存在的地址"),
        ("no case, 2 characters", "钢琴"),
        ("no case, 1 character", "琴"),
    )


def find_only(rt: Any, dispatcher: Person, street_id: int | None, args: argparse.Namespace) -> None:
    with rt.db.read() as s:
        some = s.exec(select(Case.code).where(Case.street_id == street_id).order_by(col(Case.id).desc())).first()
    cases = find_texts(some)
    backend = "PostgreSQL" if args.database else "SQLite"
    with rt.db.engine.begin() as conn:  # the planner's statistics, as autovacuum would have them
        conn.exec_driver_sql("ANALYZE")
    print(f"{backend}: {args.cases:,} cases; medians of {args.runs * 2} runs")
    for indexed in (True, False):
        if not indexed:  # the same database without the text index (migration 0008): the scan
            with rt.db.engine.begin() as conn:
                search_index.uninstall(conn)
        print("  with the text index (migrations 0007, 0009)" if indexed else "  without it (the scan)")
        for label, text in cases:
            ms, found = timed(partial(queue.find, rt, dispatcher, text), args.runs * 2)
            print(f"    /find {label:24s} {text!s:16s} {ms:9.1f} ms   ({len(found):,})")
    with rt.db.engine.begin() as conn:  # the database as it was, for the next run
        search_index.install(conn)


if __name__ == "__main__":
    main()
