"""The deadline sweep at city scale.

Builds a database of N cases (default 1,000,000) of which a tenth are open, with the
category mix of one street's 10,172 cases in DOMAIN.md, then times one sweep with nothing
due and the sweeps that send 1,000 due reminders; and measures the bot's memory (RSS)
after start-up and a sweep, on that database and on an empty one.

    python -m benchmarks.sweep                                   # SQLite, 1,000,000 cases
    python -m benchmarks.sweep --database postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.sweep --cases 100000                    # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text, update
from sqlmodel import col, select

from bot.cases import deadlines
from bot.clock import ManualClock
from bot.org.org_file import DEFAULT_ORG_FILE, load_org_file
from bot.runtime import Runtime
from bot.settings import Settings
from storage.db import Database, drop_everything
from storage.migrate import upgrade
from storage.models import Case, CaseState, Category, Grid, Unit, UnitKind
from storage.org_import import import_org

# The category mix of 10,172 cases at one street (DOMAIN.md), by code prefix in the sample.
MIX = [
    (("TRAFFIC-", "ROAD-", "MANHOLE-"), 0.22),
    (("SECURITY-",), 0.21),
    (("CITY-",), 0.18),
    (("CLEAN-",), 0.17),
    (("FIRE-", "SAFETY-"), 0.12),
    (("ENV-",), 0.05),
    (("MARKET-",), 0.03),
    (("DISPUTE-", "SERVICE-", "OTHER"), 0.02),
]
OPEN_STATES = [CaseState.DISPATCHED, CaseState.CLAIMED, CaseState.ESCALATED, CaseState.REOPENED]
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
CHUNK = 20_000
# What residents write, to give /find (benchmarks/desk.py) real text to search: a few of these
# words per description, an address on one of ten roads; one case in RARE_EVERY holds RARE.
WORDS = [
    "井盖",
    "破损",
    "路灯",
    "不亮",
    "垃圾",
    "堆放",
    "占道",
    "经营",
    "违章",
    "停车",
    "污水",
    "外溢",
    "树木",
    "倒伏",
    "噪音",
    "扰民",
    "小区",
    "门口",
    "马路",
    "人行道",
    "绿化带",
    "消防",
    "通道",
    "堵塞",
    "油烟",
    "广告牌",
    "松动",
    "电线",
    "乱拉",
    "积水",
    "严重",
    "窨井",
    "缺失",
    "路面",
    "塌陷",
    "墙体",
    "开裂",
    "宠物",
    "粪便",
    "共享",
    "单车",
    "乱停",
    "施工",
    "围挡",
    "破旧",
]
ROADS = ["解放路", "延安路", "中山路", "庆春路", "凤起路", "体育场路", "建国路", "清泰街", "河坊街", "南山路"]
RARE, RARE_EVERY = "麒麟雕塑", 100_000


def build(db: Database, n: int, open_share: float, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = random.Random(seed + 1)  # its own draws: the cases' other fields stay as they were
    with db.session() as s:
        cats = s.exec(select(Category)).all()
        grids = s.exec(select(Grid)).all()
        teams = {(u.street_id, u.platform_id): u.id for u in s.exec(select(Unit).where(Unit.kind == UnitKind.TEAM))}
    groups = []
    for prefixes, weight in MIX:
        members = [c for c in cats if c.code.startswith(prefixes)]
        groups.append((members, weight))
    weights = [w for _, w in groups]
    open_every = round(1 / open_share)
    table = Case.__table__  # type: ignore[attr-defined]
    rows = []
    started = time.perf_counter()
    for i in range(n):
        members, _ = rng.choices(groups, weights)[0]
        cat = rng.choice(members)
        grid = rng.choice(grids)
        created = NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 540))
        is_open = i % open_every == 0
        state = rng.choice(OPEN_STATES) if is_open else CaseState.CLOSED
        rows.append(
            {
                "code": f"BM-{i:09d}",
                "state": state,
                "version": 1,
                "source": "patrol",
                "street_id": grid.street_id,
                "community_id": grid.community_id,
                "grid_id": grid.id,
                "category_id": cat.id,
                "unit_id": teams.get((grid.street_id, cat.platform_id)),
                "latitude": grid.centre_lat,
                "longitude": grid.centre_lon,
                "address": f"{words.choice(ROADS)}{words.randint(1, 300)}号",
                "description": "".join(words.choices(WORDS, k=words.randint(4, 12)))
                + (RARE if i % RARE_EVERY == RARE_EVERY // 2 else "")
                + "。benchmark case",
                "urgent": cat.urgent,
                "created_at": created,
                "updated_at": created,
                "dispatched_at": created,
                "due_at": NOW + timedelta(days=rng.randint(1, 30)) if is_open else None,
                "deadline_started_at": NOW - timedelta(days=rng.randint(0, 3)) if is_open else None,
                # open cases all have a reminder ahead of them; closed ones none
                "next_reminder_at": NOW + timedelta(days=rng.randint(1, 30)) if is_open else None,
                "reminders_done": [],
                "rung": 0,
                # resolved 4-43 hours after the report (no draw from rng: the cases stay as they were)
                "resolved_at": None if is_open else created + timedelta(hours=4 + i % 40),
                "closed_at": None if is_open else created + timedelta(days=2),
            }
        )
        if len(rows) == CHUNK:
            with db.engine.begin() as conn:
                conn.execute(insert(table), rows)
            rows = []
    if rows:
        with db.engine.begin() as conn:
            conn.execute(insert(table), rows)
    with db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"built {n:,} cases ({n // open_every:,} open) in {time.perf_counter() - started:.0f} s", flush=True)


def make_due(db: Database, count: int) -> None:
    with db.engine.begin() as conn:
        ids = [r[0] for r in conn.execute(select(Case.id).where(Case.state == CaseState.CLAIMED).limit(count))]
        # claimed three days ago with a one-day limit: overdue five minutes ago (督办 rung 1)
        conn.execute(
            update(Case)
            .where(col(Case.id).in_(ids))
            .values(
                deadline_started_at=NOW - timedelta(days=3),
                due_at=NOW - timedelta(minutes=5),
                next_reminder_at=NOW - timedelta(minutes=5),
                reminders_done=["owner_50", "owner_80", "owner_due"],
            )
        )


def runtime(db: Database, media: Path) -> Runtime:
    settings = Settings(
        TELEGRAM_BOT_TOKEN="123456:bench", DATABASE_URL=db.url, GRIDDESK_MEDIA_DIR=str(media), _env_file=None
    )
    return Runtime(settings=settings, db=db, clock=ManualClock(NOW))


def time_sweeps(db: Database, media: Path, due: int) -> dict[str, float]:
    rt = runtime(db, media)
    deadlines.sweep(rt)  # warm caches (calendar, street settings)
    idle = []
    for _ in range(21):
        began = time.perf_counter()
        result = deadlines.sweep(rt)
        idle.append(time.perf_counter() - began)
        assert result.cases == 0
    make_due(db, due)
    began = time.perf_counter()
    sent = rounds = 0
    while True:
        result = deadlines.sweep(rt)
        rounds += 1
        if result.cases == 0:
            break
        sent += result.cases
    busy = time.perf_counter() - began
    return {
        "idle_median_ms": statistics.median(idle) * 1000,
        "idle_max_ms": max(idle) * 1000,
        "due_cases": sent,
        "due_total_ms": busy * 1000,
        "due_rounds": rounds,
    }


RSS_PROBE = """
import asyncio, json, resource, sys
from pathlib import Path
from benchmarks.sweep import runtime
from bot.cases import deadlines
from griddesk.app import build_application
from storage.db import Database
from tests.fakebot import FakeBotAPI

async def main():
    db = Database(sys.argv[1])
    rt = runtime(db, Path(sys.argv[2]))
    app = build_application(rt, request=FakeBotAPI())
    await app.initialize()
    deadlines.sweep(rt)
    rss_kb = int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])
    await app.shutdown()
    print(json.dumps({"rss_mb": rss_kb / 1024, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

asyncio.run(main())
"""


def rss(db_url: str, media: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, db_url, str(media)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh(url: str) -> Database:
    db = Database(url)
    if not db.sqlite:
        drop_everything(db)
    upgrade(db)
    with db.session() as s:
        import_org(s, load_org_file(DEFAULT_ORG_FILE))
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.1)
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: SQLite files); it is emptied")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        empty_url = f"sqlite:///{tmp}/empty.db"
        fresh(empty_url).dispose()
        empty = rss(empty_url, media)
        url = args.database or f"sqlite:///{tmp}/big.db"
        db = fresh(url)
        build(db, args.cases, args.open_share)
        big = rss(url, media)
        figures = time_sweeps(db, media, args.due)
        db.dispose()
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: {args.cases:,} cases, {int(args.cases * args.open_share):,} open")
    print(
        f"  sweep, nothing due: median {figures['idle_median_ms']:.2f} ms, max {figures['idle_max_ms']:.2f} ms (21 sweeps)"
    )
    print(
        f"  sweep, {figures['due_cases']} due: {figures['due_total_ms']:.0f} ms in {figures['due_rounds']} sweeps "
        f"({figures['due_total_ms'] / max(figures['due_cases'], 1):.2f} ms a case)"
    )
    print(
        f"  bot RSS after start-up and a sweep: {big['rss_mb']:.0f} MB with {int(args.cases * args.open_share):,} open cases, "
        f"{empty['rss_mb']:.0f} MB on an empty database (ratio {big['rss_mb'] / empty['rss_mb']:.2f})"
    )


if __name__ == "__main__":
    main()
