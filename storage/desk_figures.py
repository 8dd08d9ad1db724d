"""The desk's figures kept per case (issue 11): the cases whose rows are stale (marked by the
database's own triggers), their rows replaced, and a scope's figures summed by SQL over the narrow table (with the 90th percentile
of the handling time from a narrow query of just the handling hours).

What each row holds is decided by the figures' rules (bot/desk/figures.py `derive`); this
module only stores and sums it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, select
from sqlmodel import Session, col

from storage.desk import CaseFilter
from storage.models import Case, CaseDepartmentFigures, CaseFigures, FiguresStale

# The counters a case adds to a scope's figures as they are (Figures fields of the same name).
COUNTERS = (
    "received", "dispatched", "response_due", "claimed_in_time", "closed", "closed_on_time",
    "overdue_at_closure", "verified_first_time", "reopened", "overdue_now", "ratable_closed",
    "rated_closed", "ratings", "satisfied",
)  # fmt: skip
WHISTLE_COUNTERS = ("whistles", "reported_in", "report_in_hours")
# The two figures that depend on when they are asked: the moment each starts to count.
LATER = {"response_due": "response_due_after", "overdue_now": "overdue_after"}

# Tables whose rows carry a case's figures (by their case_id): a change to any of them, or to
# the case itself, marks the case's figures stale.
_OF_A_CASE = ("auditevent", "rating", "ratingrequest", "whistle")
_TRIGGERS = [(table, when) for table in ("cases", *_OF_A_CASE) for when in ("insert", "update")]


def _sqlite_trigger(table: str, when: str) -> str:
    key = "new.id" if table == "cases" else "new.case_id"
    return (
        f"CREATE TRIGGER IF NOT EXISTS figures_stale_{table}_{when} AFTER {when.upper()} ON {table} "
        f"WHEN {key} IS NOT NULL BEGIN INSERT INTO figures_stale(case_id) VALUES ({key}); END"
    )


def install_stale_triggers(conn: Any) -> None:
    """The database marks a case's figures stale itself, in the statement that changes it: no
    statement of ours per update, and no change can forget to (migration 0008)."""
    if conn.dialect.name == "sqlite":
        for table, when in _TRIGGERS:
            conn.exec_driver_sql(_sqlite_trigger(table, when))
        return
    for name, key in (("figures_stale_case", "NEW.id"), ("figures_stale_of_case", "NEW.case_id")):
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {key} IS NOT NULL THEN INSERT INTO figures_stale(case_id) VALUES ({key}); END IF; "
            "RETURN NULL; END $$"
        )
    for table, when in _TRIGGERS:
        function = "figures_stale_case" if table == "cases" else "figures_stale_of_case"
        conn.exec_driver_sql(
            f"CREATE TRIGGER figures_stale_{table}_{when} AFTER {when.upper()} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )


def drop_stale_triggers(conn: Any) -> None:
    for table, when in _TRIGGERS:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS figures_stale_{table}_{when}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS figures_stale_{table}_{when} ON {table}")
    if conn.dialect.name != "sqlite":
        for name in ("figures_stale_case", "figures_stale_of_case"):
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")


def any_stale(session: Session) -> bool:
    return session.execute(select(col(FiguresStale.id)).limit(1)).first() is not None


def stale(session: Session, limit: int) -> list[tuple[int, int]]:
    """(mark id, case id) of the oldest marks."""
    stmt = select(col(FiguresStale.id), col(FiguresStale.case_id)).order_by(col(FiguresStale.id)).limit(limit)
    return [(int(m), int(c)) for m, c in session.execute(stmt)]


def unmark(session: Session, mark_ids: Sequence[int]) -> None:
    """Drop exactly the marks that were read: a change committed meanwhile (PostgreSQL commits
    out of id order) keeps its own mark for the next catch-up."""
    if mark_ids:
        session.execute(delete(FiguresStale).where(col(FiguresStale.id).in_(list(mark_ids))))


def lock_cases(session: Session, case_ids: Sequence[int]) -> None:
    """Hold the cases' rows (PostgreSQL; SQLite has one writer) so two transactions changing
    one case write its figures one after the other, the later from what the earlier committed."""
    if case_ids and session.get_bind().dialect.name == "postgresql":
        session.execute(select(col(Case.id)).where(col(Case.id).in_(case_ids)).order_by(col(Case.id)).with_for_update())


def replace(
    session: Session, case_ids: Sequence[int], rows: Sequence[dict[str, Any]], departments: Sequence[dict[str, Any]]
) -> None:
    if case_ids:
        session.execute(delete(CaseDepartmentFigures).where(col(CaseDepartmentFigures.case_id).in_(case_ids)))
        session.execute(delete(CaseFigures).where(col(CaseFigures.case_id).in_(case_ids)))
    insert_rows(session, rows, departments)


def insert_rows(session: Session, rows: Sequence[dict[str, Any]], departments: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(CaseFigures), list(rows))
    if departments:
        session.execute(insert(CaseDepartmentFigures), list(departments))


def clear(session: Session) -> None:
    session.execute(delete(FiguresStale))
    session.execute(delete(CaseDepartmentFigures))
    session.execute(delete(CaseFigures))


def case_id_bounds(session: Session) -> tuple[int, int] | None:
    low, high = session.execute(select(func.min(Case.id), func.max(Case.id))).one()
    return None if low is None else (int(low), int(high))


def case_ids_of_streets(session: Session, street_ids: Sequence[int], id_range: tuple[int, int]) -> list[int]:
    stmt = select(col(Case.id)).where(
        col(Case.street_id).in_(list(street_ids)), col(Case.id) >= id_range[0], col(Case.id) <= id_range[1]
    )
    return [int(i) for i in session.execute(stmt).scalars()]


def never_filled(session: Session) -> bool:
    """Are there cases but no rows (a database upgraded to migration 0008)? Every case made
    since gets its row as it is made, so the first row tells: two index probes, no scan."""
    has_case = session.execute(select(col(Case.id)).limit(1)).first() is not None
    return has_case and session.execute(select(col(CaseFigures.case_id)).limit(1)).first() is None


# --- a scope's figures ------------------------------------------------------------------------

_GROUP_COLUMNS = {"street": "street_id", "team": "unit_id", "grid": "grid_id", "person": "owner_user_id",
                  "category": "category_id"}  # fmt: skip


def _from(f: CaseFilter, group: str | None) -> tuple[Any, Any, Any, list[Any]]:
    """(FROM clause, the grouping key, the table whistles are counted from, WHERE) for a filter
    and breakdown, as the cases' own filter (storage/desk.py `_where`) would select them."""
    cf = CaseFigures.__table__  # type: ignore[attr-defined]
    dept = CaseDepartmentFigures.__table__  # type: ignore[attr-defined]
    where: list[Any] = []
    if f.start is not None:
        where.append(cf.c.created_at >= f.start)
    if f.end is not None:
        where.append(cf.c.created_at < f.end)
    if f.street_ids is not None:
        where.append(cf.c.street_id.in_(f.street_ids) if len(f.street_ids) != 1 else cf.c.street_id == f.street_ids[0])
    if f.unit_id is not None:
        where.append(cf.c.unit_id == f.unit_id)
    if f.grid_id is not None:
        where.append(cf.c.grid_id == f.grid_id)
    source: Any = cf
    whistled: Any = cf
    key: Any = literal(None) if group is None else None
    if f.department_id is not None:  # the department's cases, and only its whistles
        mine = dept.alias("mine")
        source = source.join(mine, and_(mine.c.case_id == cf.c.case_id, mine.c.unit_id == f.department_id))
        whistled = mine
        if group == "department":
            key = mine.c.unit_id
    elif group == "department":  # a case whistled to two departments counts in both
        each = dept.alias("each")
        source = source.join(each, each.c.case_id == cf.c.case_id)
        key = each.c.unit_id
    if key is None:
        key = cf.c[_GROUP_COLUMNS[group]]  # type: ignore[index]
    return source, key, whistled, where


def sums(session: Session, f: CaseFilter, now: datetime, group: str | None) -> list[tuple[int | None, dict[str, Any]]]:
    """(group key, {figure: value}) per group (one row keyed None without a breakdown): each
    counter summed, the time-dependent ones counted where their moment is before `now`, and the
    number and sum of the handling hours."""
    cf = CaseFigures.__table__  # type: ignore[attr-defined]
    source, key, whistled, where = _from(f, group)
    names: list[str] = []
    columns: list[Any] = []
    for name in COUNTERS:
        total: Any = func.sum(cf.c[name])
        if name in LATER:
            total = total + func.sum(case((cf.c[LATER[name]] < now, 1), else_=0))
        columns.append(total)
        names.append(name)
    for name in WHISTLE_COUNTERS:
        columns.append(func.sum(whistled.c[name]))
        names.append("report_in_hours_total" if name == "report_in_hours" else name)
    columns += [func.count(cf.c.handling_hours), func.sum(cf.c.handling_hours)]
    names += ["handled", "handling_hours_total"]
    stmt = select(key, *columns).select_from(source).where(*where)
    if group is not None:
        stmt = stmt.group_by(key)
    out = []
    for row in session.execute(stmt):
        if group is None and row[1] is None:  # no case at all: SUM over nothing is NULL
            continue
        out.append((row[0], {n: v or 0 for n, v in zip(names, row[1:], strict=True)}))
    return out


def percentile_90(
    session: Session, f: CaseFilter, group: str | None, handled: dict[int | None, int]
) -> dict[int | None, float]:
    """The 90th percentile (nearest rank: the ceil(0.9 n)-th smallest) of the handling hours
    per group, over just the handling hours (the partial indexes of them). `handled` is their
    number per group (from `sums` of the same filter and breakdown): it says which one to read,
    counted from the top (the largest tenth is all a sort then has to keep)."""
    cf = CaseFigures.__table__  # type: ignore[attr-defined]
    source, key, _whistled, where = _from(f, group)
    hours = cf.c.handling_hours
    # n - ceil(9n/10) in integers, as bot/desk/figures.py `percentile` ranks: rows above it
    above = {k: n - (9 * n + 9) // 10 for k, n in handled.items() if n}
    if not above:
        return {}
    if group is None:
        stmt = select(hours).select_from(source).where(*where, hours.is_not(None))
        found = session.execute(stmt.order_by(hours.desc()).limit(1).offset(above[None])).scalar()
        return {} if found is None else {None: float(found)}
    nobody = -1  # the key of the group without one (no owner yet): ids are positive
    keyed = func.coalesce(key, nobody)
    target = case({nobody if k is None else k: n for k, n in above.items()}, value=keyed, else_=-1)
    ranked = (
        select(
            keyed.label("key"),
            hours.label("hours"),
            func.row_number().over(partition_by=keyed, order_by=hours.desc()).label("rank"),
            (target + 1).label("wanted"),
        )
        .select_from(source)
        .where(*where, hours.is_not(None))
        .subquery()
    )
    stmt = select(ranked.c.key, ranked.c.hours).where(ranked.c.rank == ranked.c.wanted)
    return {(None if k == nobody else k): float(h) for k, h in session.execute(stmt)}
