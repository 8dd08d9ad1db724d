"""The desk's reads: the cases of a scope received in a period, and what the figures need
of their timeline, ratings and whistles (each one query, filtered by the same case set)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from storage.models import AuditEvent, Case, Rating, RatingRequest, Whistle

# The timeline events the figures read (first dispatch, first claim, verification failures, reopenings).
FIGURE_EVENTS = ("case.dispatched", "case.claimed", "case.reassigned", "case.not_fixed", "case.reopened")


@dataclass(frozen=True)
class CaseFilter:
    start: datetime | None  # None: since the first case
    end: datetime | None  # None: up to now
    street_ids: tuple[int, ...] | None = None
    unit_id: int | None = None
    department_id: int | None = None
    grid_id: int | None = None
    case_ids: tuple[int, ...] | None = None  # just these (the cases a unit of work touched)
    id_range: tuple[int, int] | None = None  # first and last id (a rebuild, a slice at a time)


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: int
    code: str
    state: str
    street_id: int | None
    grid_id: int | None
    category_id: int | None
    unit_id: int | None
    owner_user_id: int | None
    urgent: bool
    created_at: datetime
    dispatched_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    due_at: datetime | None


_COLUMNS = (
    Case.id, Case.code, Case.state, Case.street_id, Case.grid_id, Case.category_id, Case.unit_id,
    Case.owner_user_id, Case.urgent, Case.created_at, Case.dispatched_at, Case.resolved_at,
    Case.closed_at, Case.due_at,
)  # fmt: skip


def _where(f: CaseFilter) -> list[Any]:
    cond: list[Any] = []
    if f.start is not None:
        cond.append(col(Case.created_at) >= f.start)
    if f.end is not None:
        cond.append(col(Case.created_at) < f.end)
    if f.case_ids is not None:
        cond.append(col(Case.id).in_(f.case_ids))
    if f.id_range is not None:
        cond.append(col(Case.id).between(*f.id_range))
    if f.street_ids is not None:
        cond.append(
            col(Case.street_id).in_(f.street_ids) if len(f.street_ids) != 1 else Case.street_id == f.street_ids[0]
        )
    if f.unit_id is not None:
        cond.append(Case.unit_id == f.unit_id)
    if f.grid_id is not None:
        cond.append(Case.grid_id == f.grid_id)
    if f.department_id is not None:
        w = aliased(Whistle)
        cond.append(exists().where(and_(w.case_id == Case.id, w.unit_id == f.department_id)))  # type: ignore[arg-type]
    return cond


def case_ids(f: CaseFilter) -> Select[Any]:
    return select(Case.id).where(*_where(f))  # type: ignore[call-overload]


STREAM = 2000  # rows a streamed read holds at a time (a server-side cursor on PostgreSQL)


def cases(s: Session, f: CaseFilter) -> list[CaseRow]:
    return list(iter_cases(s, f))


def iter_cases(s: Session, f: CaseFilter) -> Iterator[CaseRow]:
    """The filtered cases in id order, streamed."""
    stmt = select(*_COLUMNS).where(*_where(f)).order_by(col(Case.id)).execution_options(yield_per=STREAM)  # type: ignore[call-overload]
    for r in s.execute(stmt):
        yield CaseRow(*r)


def iter_events_by_case(
    s: Session, f: CaseFilter, actions: tuple[str, ...] = FIGURE_EVENTS
) -> Iterator[tuple[int, str, datetime]]:
    """(case id, action, at) of the figure events, by case id then time, streamed."""
    stmt = (
        select(col(AuditEvent.case_id), col(AuditEvent.action), col(AuditEvent.at))
        .join(Case, col(Case.id) == col(AuditEvent.case_id))
        .where(col(AuditEvent.action).in_(actions), *_where(f))
        .order_by(col(AuditEvent.case_id), col(AuditEvent.at), col(AuditEvent.id))
        .execution_options(yield_per=STREAM)
    )
    for c, a, at in s.execute(stmt):
        yield int(c), a, at


def events(s: Session, f: CaseFilter, actions: tuple[str, ...] = FIGURE_EVENTS) -> list[tuple[int, str, datetime]]:
    """(case id, action, at) in time order, for the figure events of the filtered cases."""
    stmt = (
        select(col(AuditEvent.case_id), col(AuditEvent.action), col(AuditEvent.at))
        .join(Case, col(Case.id) == col(AuditEvent.case_id))
        .where(col(AuditEvent.action).in_(actions), *_where(f))
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    )
    return [(int(c), a, at) for c, a, at in s.execute(stmt)]


def rating_levels(s: Session, f: CaseFilter) -> list[tuple[int, int]]:
    stmt = (
        select(col(Rating.case_id), col(Rating.level)).join(Case, col(Case.id) == col(Rating.case_id)).where(*_where(f))
    )
    return [(int(c), int(lv)) for c, lv in s.execute(stmt)]


def cases_with_requests(s: Session, f: CaseFilter) -> set[int]:
    stmt = (
        select(col(RatingRequest.case_id))
        .join(Case, col(Case.id) == col(RatingRequest.case_id))
        .where(*_where(f))
        .distinct()
    )
    return {int(c) for (c,) in s.execute(stmt)}


def whistles(s: Session, f: CaseFilter) -> list[tuple[int, int, datetime, datetime | None]]:
    """(case id, department unit id, whistled at, reported in at)."""
    stmt = (
        select(col(Whistle.case_id), col(Whistle.unit_id), col(Whistle.created_at), col(Whistle.reported_in_at))
        .join(Case, col(Case.id) == col(Whistle.case_id))
        .where(*_where(f))
    )
    if f.department_id is not None:
        stmt = stmt.where(col(Whistle.unit_id) == f.department_id)
    return [(int(c), int(u), a, b) for c, u, a, b in s.execute(stmt)]


def count(s: Session, f: CaseFilter) -> int:
    return int(s.execute(select(func.count()).select_from(Case).where(*_where(f))).scalar_one())


def points(
    s: Session, f: CaseFilter, limit: int = 50_000
) -> list[tuple[float, float, str, datetime | None, int | None]]:
    """(latitude, longitude, state, due, category id) of the filtered cases that have a location."""
    stmt = (
        select(col(Case.latitude), col(Case.longitude), col(Case.state), col(Case.due_at), col(Case.category_id))
        .where(*_where(f), col(Case.latitude).is_not(None), col(Case.longitude).is_not(None))
        .limit(limit)
    )
    return [(float(a), float(b), st, due, cat) for a, b, st, due, cat in s.execute(stmt)]
