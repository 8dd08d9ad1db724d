"""The work lists at city scale: /tasks (mine, team, street) and /my.

Builds the sweep benchmark's database (N cases, default 1,000,000, a tenth of them open;
see benchmarks/sweep.py), gives it people — five staff per team who own the claimed,
escalated and closed cases of their team, one grid worker per grid who reported its
cases — and times each list query for the busiest owner, team, street and reporter:
the median of 21 runs, each in a fresh read session as the bot does it.

The database is kept and reused (a file in the temporary directory for SQLite; the
PostgreSQL database given, created if missing) when it already holds N benchmark cases;
it is upgraded to the newest migration first, so building before a migration and
running again after it measures that migration. --rebuild starts afresh.

    python -m benchmarks.worklists                                   # SQLite, 1,000,000 cases
    python -m benchmarks.worklists --database postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.worklists --cases 100000 --explain          # quicker, with query plans
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, insert, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from benchmarks import sweep
from bot.cases.query import PAGE
from storage import cases, worklists
from storage.cases import OPEN_STATES
from storage.db import Database, normalise_url
from storage.migrate import upgrade
from storage.models import CaseState, User

RUNS = 21
STAFF_PER_TEAM = 5
# Telegram ids of the benchmark's people: a grid's worker, a team's staff member, a resident.
WORKER_TG = 810_000_000
STAFF_TG = 820_000_000
RESIDENT_TG = 830_000_000
RESIDENT_REPORTS = 3
WAITING = (CaseState.DISPATCHED, CaseState.REOPENED)
MY_LIMIT = 20  # what /my asks for


# --- the database ----------------------------------------------------------------------


def ensure_postgres_database(url: str) -> None:
    """CREATE DATABASE if it is missing (through the server's `postgres` database)."""
    target = make_url(normalise_url(url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first()
            if found is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
                print(f"created database {target.database}", flush=True)
    finally:
        admin.dispose()


def built(db: Database, n: int) -> tuple[bool, bool]:
    """Does this database already hold the benchmark's n cases, and its people?"""
    if not inspect(db.engine).has_table("cases"):
        return False, False
    with db.engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM cases WHERE code LIKE 'BM-%'")).scalar_one()
        people = conn.execute(text('SELECT count(*) FROM "user" WHERE telegram_id >= :t'), {"t": WORKER_TG}).scalar()
    return count == n, bool(people)


def revision(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def analyze(db: Database) -> None:
    if db.sqlite:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def add_people(db: Database) -> None:
    """One worker per grid who reported all its cases; five staff per team, who between
    them own every case of the team that someone claimed (open or closed since)."""
    started = time.perf_counter()
    with db.engine.connect() as conn:
        grids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM grid")]
        units = [r[0] for r in conn.exec_driver_sql("SELECT DISTINCT unit_id FROM cases WHERE unit_id IS NOT NULL")]
    now = sweep.NOW
    rows = [
        {"telegram_id": WORKER_TG + g, "first_name": f"worker {g}", "created_at": now, "updated_at": now} for g in grids
    ]
    rows += [
        {"telegram_id": STAFF_TG + u * 10 + k, "first_name": f"staff {u}/{k}", "created_at": now, "updated_at": now}
        for u in units
        for k in range(STAFF_PER_TEAM)
    ]
    user = User.__table__  # type: ignore[attr-defined]
    waiting = ", ".join(f"'{s}'" for s in WAITING)
    with db.engine.begin() as conn:
        conn.execute(insert(user), [{"last_name": "", "can_message": True, **r} for r in rows])
        conn.execute(
            text(
                'UPDATE cases SET reporter_user_id = (SELECT u.id FROM "user" u '
                f"WHERE u.telegram_id = {WORKER_TG} + cases.grid_id)"
            )
        )
        conn.execute(  # text() doubles the % for psycopg
            text(
                'UPDATE cases SET owner_user_id = (SELECT u.id FROM "user" u '
                f"WHERE u.telegram_id = {STAFF_TG} + cases.unit_id * 10 + cases.id % {STAFF_PER_TEAM}) "
                f"WHERE unit_id IS NOT NULL AND state NOT IN ({waiting})"
            )
        )
    print(f"added {len(rows)} people and their cases in {time.perf_counter() - started:.0f} s", flush=True)


def add_resident(db: Database) -> int:
    """A resident who reported the three oldest cases: /my for someone with few reports,
    which an index on created_at alone answers by reading every case newer than theirs."""
    user = User.__table__  # type: ignore[attr-defined]
    with db.engine.begin() as conn:
        found = conn.execute(text('SELECT id FROM "user" WHERE telegram_id = :t'), {"t": RESIDENT_TG}).scalar()
        if found is not None:
            return int(found)
        now = sweep.NOW
        conn.execute(
            insert(user),
            [
                {
                    "telegram_id": RESIDENT_TG,
                    "first_name": "resident",
                    "last_name": "",
                    "can_message": True,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        found = conn.execute(text('SELECT id FROM "user" WHERE telegram_id = :t'), {"t": RESIDENT_TG}).scalar_one()
        oldest = [
            r[0] for r in conn.exec_driver_sql(f"SELECT id FROM cases ORDER BY created_at, id LIMIT {RESIDENT_REPORTS}")
        ]
        conn.execute(
            text(f"UPDATE cases SET reporter_user_id = :u WHERE id IN ({', '.join(map(str, oldest))})"), {"u": found}
        )
        return int(found)


def prepare(url: str, n: int, open_share: float, rebuild: bool) -> Database:
    if url.startswith(("postgres://", "postgresql")):
        ensure_postgres_database(url)
    elif rebuild:
        Path(make_url(url).database or "").unlink(missing_ok=True)
    db = Database(url)
    has_cases, has_people = built(db, n)
    if not rebuild and has_cases:
        if not has_people:  # a build that stopped after the cases
            add_people(db)
            analyze(db)
        before = revision(db)
        upgrade(db)
        after = revision(db)
        if after != before:
            print(f"upgraded the database from {before} to {after}; analysing", flush=True)
            analyze(db)
        print(f"reusing {n:,} cases at revision {after}", flush=True)
        return db
    db.dispose()
    if db.sqlite:
        Path(make_url(url).database or "").unlink(missing_ok=True)
    db = sweep.fresh(url)
    sweep.build(db, n, open_share)
    add_people(db)
    analyze(db)
    print(f"built at revision {revision(db)}", flush=True)
    return db


# --- who is busiest ----------------------------------------------------------------------


def _top(db: Database, sql: str, k: int = 1) -> list[int]:
    with db.engine.connect() as conn:
        return [int(r[0]) for r in conn.exec_driver_sql(sql + f" LIMIT {k}")]


@dataclass(frozen=True)
class Subjects:
    owner: int
    teams: list[int]  # the busiest first
    streets: list[int]
    reporter: int
    resident: int


def busiest(db: Database) -> Subjects:
    open_ = ", ".join(f"'{s}'" for s in OPEN_STATES)
    waiting = ", ".join(f"'{s}'" for s in WAITING)
    return Subjects(
        owner=_top(
            db,
            f"SELECT owner_user_id FROM cases WHERE state IN ({open_}) AND owner_user_id IS NOT NULL "
            "GROUP BY owner_user_id ORDER BY count(*) DESC, owner_user_id",
        )[0],
        teams=_top(
            db,
            f"SELECT unit_id FROM cases WHERE state IN ({waiting}) AND owner_user_id IS NULL AND unit_id IS NOT NULL "
            "GROUP BY unit_id ORDER BY count(*) DESC, unit_id",
            2,
        ),
        streets=_top(
            db,
            f"SELECT street_id FROM cases WHERE state IN ({open_}) AND street_id IS NOT NULL "
            "GROUP BY street_id ORDER BY count(*) DESC, street_id",
            2,
        ),
        reporter=_top(
            db,
            "SELECT reporter_user_id FROM cases WHERE reporter_user_id IS NOT NULL "
            "GROUP BY reporter_user_id ORDER BY count(*) DESC, reporter_user_id",
        )[0],
        resident=add_resident(db),
    )


def counts(db: Database, who: Subjects) -> dict[str, int]:
    open_ = ", ".join(f"'{s}'" for s in OPEN_STATES)
    waiting = ", ".join(f"'{s}'" for s in WAITING)
    with db.engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.exec_driver_sql(sql).scalar_one())

        return {
            "owner_all": one(f"SELECT count(*) FROM cases WHERE owner_user_id = {who.owner}"),
            "owner_open": one(f"SELECT count(*) FROM cases WHERE owner_user_id = {who.owner} AND state IN ({open_})"),
            "team_all": one(f"SELECT count(*) FROM cases WHERE unit_id = {who.teams[0]}"),
            "team_waiting": one(
                f"SELECT count(*) FROM cases WHERE unit_id = {who.teams[0]} AND state IN ({waiting}) "
                "AND owner_user_id IS NULL"
            ),
            "street_all": one(f"SELECT count(*) FROM cases WHERE street_id = {who.streets[0]}"),
            "street_open": one(f"SELECT count(*) FROM cases WHERE street_id = {who.streets[0]} AND state IN ({open_})"),
            "reporter_all": one(f"SELECT count(*) FROM cases WHERE reporter_user_id = {who.reporter}"),
        }


# --- timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    subject: str
    run: Callable[[Session], Any]


def queries(who: Subjects) -> list[Query]:
    page = PAGE + 1  # the bot asks for one more than a page, to know whether there is a next
    return [
        Query("/tasks mine", f"owner {who.owner}", lambda s: worklists.owned_by(s, who.owner, OPEN_STATES, limit=page)),
        Query(
            "/tasks team",
            f"unit {who.teams[0]}",
            lambda s: worklists.unclaimed_for_units(s, who.teams[:1], WAITING, limit=page),
        ),
        Query(
            "/tasks team, page 10",
            f"unit {who.teams[0]}",
            lambda s: worklists.unclaimed_for_units(s, who.teams[:1], WAITING, limit=page, offset=9 * PAGE),
        ),
        Query(
            "/tasks team, 2 teams",
            "units " + ",".join(map(str, who.teams)),
            lambda s: worklists.unclaimed_for_units(s, who.teams, WAITING, limit=page),
        ),
        Query(
            "/tasks street",
            f"street {who.streets[0]}",
            lambda s: worklists.open_in_streets(s, who.streets[:1], OPEN_STATES, limit=page),
        ),
        Query(
            "/tasks street, page 10",
            f"street {who.streets[0]}",
            lambda s: worklists.open_in_streets(s, who.streets[:1], OPEN_STATES, limit=page, offset=9 * PAGE),
        ),
        Query(
            "/tasks street, 2 streets",
            "streets " + ",".join(map(str, who.streets)),
            lambda s: worklists.open_in_streets(s, who.streets, OPEN_STATES, limit=page),
        ),
        Query(
            "/my",
            f"reporter {who.reporter}",
            lambda s: cases.cases_of_reporter(s, who.reporter, limit=MY_LIMIT),
        ),
        Query(
            "/my, a resident",
            f"reporter {who.resident}",
            lambda s: cases.cases_of_reporter(s, who.resident, limit=MY_LIMIT),
        ),
        Query(
            "open count of a team (notify)",
            f"unit {who.teams[0]}",
            lambda s: worklists.open_count_for_unit(s, who.teams[0], OPEN_STATES),
        ),
    ]


def time_query(db: Database, q: Query, runs: int) -> tuple[float, float, int]:
    def once() -> tuple[float, int]:
        began = time.perf_counter()
        with db.read() as s:
            result = q.run(s)
        return time.perf_counter() - began, result if isinstance(result, int) else len(result)

    _, rows = once()  # warm the caches
    times = [once()[0] for _ in range(runs)]
    return statistics.median(times) * 1000, max(times) * 1000, rows


def explain(db: Database, q: Query) -> str:
    """The plan of each statement the query function issues, as the database sees it."""
    issued: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        issued.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as s:
            q.run(s)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    prefix = "EXPLAIN QUERY PLAN " if db.sqlite else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) "
    out = []
    with db.engine.connect() as conn:
        for statement, parameters in issued:
            if statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
                continue
            out.append("  " + " ".join(statement.split()))
            out.append(f"    params {parameters}")
            for row in conn.exec_driver_sql(prefix + statement, parameters):
                out.append("    " + (row[-1] if db.sqlite else row[0]))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--open-share", type=float, default=0.1)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a SQLite file); it is emptied")
    parser.add_argument("--sqlite-path", default="", help="the SQLite file (default: in the temporary directory)")
    parser.add_argument("--rebuild", action="store_true", help="build afresh even if the database can be reused")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    args = parser.parse_args()
    path = Path(args.sqlite_path or Path(tempfile.gettempdir()) / f"griddesk-worklists-{args.cases}.db")
    url = args.database or f"sqlite:///{path}"
    db = prepare(url, args.cases, args.open_share, args.rebuild)
    who = busiest(db)
    sizes = counts(db, who)
    backend = "SQLite" if db.sqlite else "PostgreSQL"
    print(
        f"{backend}: {args.cases:,} cases, revision {revision(db)}; busiest owner owns {sizes['owner_all']:,} "
        f"({sizes['owner_open']:,} open), team has {sizes['team_all']:,} ({sizes['team_waiting']:,} waiting unclaimed), "
        f"street {sizes['street_all']:,} ({sizes['street_open']:,} open), reporter reported {sizes['reporter_all']:,}"
    )
    print(f"{'list':<30} {'subject':<14} {'rows':>5} {'median ms':>10} {'max ms':>8}   ({args.runs} runs)")
    for q in queries(who):
        median, worst, rows = time_query(db, q, args.runs)
        print(f"{q.name:<30} {q.subject:<14} {rows:>5} {median:>10.2f} {worst:>8.2f}", flush=True)
    if args.explain:
        for q in queries(who):
            print(f"\n{q.name} ({q.subject}):")
            print(explain(db, q))
    db.dispose()


if __name__ == "__main__":
    main()
