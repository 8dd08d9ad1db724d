"""Work lists: the cases a person should look at, most urgent and newest first."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.db import AsLoaded, autoflushed, plain_rows, select_of
from storage.direct import Direct
from storage.models import WORKLIST_CLAIMABLE_STATES, WORKLIST_OPEN_STATES, AuditEvent, Case

# Every list is ordered so, and each has a partial index in this order (storage/models.py):
# after the equality on its leading column the database walks the index backwards and stops
# after offset + limit entries, instead of sorting every matching case.
ORDER = (col(Case.urgent).desc(), col(Case.created_at).desc(), col(Case.id).desc())


def _state_filter(states: Sequence[str], indexed: tuple[str, ...]) -> list[Any]:
    """`state IN states`, worded so the planner can use the partial index on `indexed`.

    SQLite uses a partial index only when the query repeats the index's condition term
    for term: the same literal values in the same order (bound parameters do not count).
    So the indexed states are rendered as literals, and a second term narrows them to the
    states asked for when those are fewer. States outside the index get a plain filter."""
    wanted = tuple(states)
    if not set(wanted) <= set(indexed):
        return [col(Case.state).in_(wanted)]
    terms: list[Any] = [
        col(Case.state).in_(bindparam("indexed_states", indexed, expanding=True, literal_execute=True, unique=True))
    ]
    if set(wanted) != set(indexed):
        terms.append(col(Case.state).in_(wanted))
    return terms


# What a line of a work list shows: read as plain rows (/tasks, every list page), not as
# whole cases; revoking a member's rights reads whole cases, to move them.
_C = Case.__table__.c  # type: ignore[attr-defined]
LINE = (_C.id, _C.code, _C.state, _C.urgent, _C.category_id, _C.created_at, _C.due_at, _C.owner_user_id)


_CASES_MADE = AsLoaded(Case)


@functools.cache
def _walk(column: str, states: tuple[str, ...], indexed: tuple[str, ...], unclaimed: bool, lines: bool) -> Direct:
    """One list's SELECT, built once: the cases whose `column` is the key, in ORDER, a page."""
    where = _state_filter(states, indexed)
    if unclaimed:
        where.append(_C.owner_user_id.is_(None))
    return Direct(
        sa_select(*(LINE if lines else _CASES_MADE.columns))
        .where(_C[column] == bindparam("key"), *where)
        .order_by(*ORDER)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


def _page(
    session: Session,
    column: str,
    keys: Sequence[int],
    states: Sequence[str],
    indexed: tuple[str, ...],
    limit: int,
    offset: int,
    *,
    unclaimed: bool = False,
    lines: bool = False,
) -> list[Any]:
    """One page of the cases with `column` equal to one of `keys`, in ORDER: Case objects, or
    named rows of LINE's columns with `lines`."""
    statement = _walk(column, tuple(states), indexed, unclaimed, lines)

    def walk(key: int, walk_offset: int, walk_limit: int) -> list[Any]:
        params = {"key": key, "offset": walk_offset, "limit": walk_limit}
        if lines:  # plain rows, as read on the session's connection
            return statement(session, params).named()
        return [_CASES_MADE.held(session, row) for row in statement(autoflushed(session), params)]

    return merged_walks(keys, walk, limit, offset)


def merged_walks(keys: Sequence[int], walk: Callable[[int, int, int], list[Any]], limit: int, offset: int) -> list[Any]:
    """A page of a list over several keys, each key's cases walked in ORDER by `walk(key,
    offset, limit)`. An IN over the keys would break the index order (it is ordered by key
    first), so each key gets its own walk of offset + limit entries, merged here."""
    keys = list(dict.fromkeys(keys))
    if len(keys) == 1:
        return walk(keys[0], offset, limit)
    rows: dict[int, Any] = {}
    for key in keys:
        rows.update((row.id, row) for row in walk(key, 0, offset + limit))
    merged = sorted(rows.values(), key=lambda c: (c.urgent, c.created_at, c.id), reverse=True)
    return merged[offset : offset + limit]


def owned_by(
    session: Session, user_id: int, states: Sequence[str], *, limit: int, offset: int = 0, lines: bool = False
) -> list[Any]:
    return _page(  # ix_case_owner_open
        session, "owner_user_id", [user_id], states, WORKLIST_OPEN_STATES, limit, offset, lines=lines
    )


def unclaimed_for_units(
    session: Session,
    unit_ids: Sequence[int],
    states: Sequence[str],
    *,
    limit: int,
    offset: int = 0,
    lines: bool = False,
) -> list[Any]:
    if not unit_ids:
        return []
    return _page(  # ix_case_unit_claimable
        session, "unit_id", unit_ids, states, WORKLIST_CLAIMABLE_STATES, limit, offset, unclaimed=True, lines=lines
    )


def open_in_streets(
    session: Session,
    street_ids: Sequence[int],
    states: Sequence[str],
    *,
    limit: int,
    offset: int = 0,
    lines: bool = False,
) -> list[Any]:
    if not street_ids:
        return []
    return _page(  # ix_case_street_open
        session, "street_id", street_ids, states, WORKLIST_OPEN_STATES, limit, offset, lines=lines
    )


@dataclass(frozen=True)
class Happened:
    """One event of a case's timeline (AuditEvent's columns that say what happened)."""

    at: datetime
    actor_user_id: int | None
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None
    data: dict[str, Any]


_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_TIMELINE = Direct(  # /case, verify and rating cards read it: built once, plain rows
    select_of(AuditEvent, Happened)
    .where(_EVENTS.c.case_id == bindparam("case_id"))
    .order_by(_EVENTS.c.at, _EVENTS.c.id)
)


def timeline(session: Session, case_id: int) -> list[Happened]:
    return plain_rows(session, _TIMELINE, {"case_id": case_id}, Happened)


def open_count_for_unit(session: Session, unit_id: int, states: Sequence[str]) -> int:
    stmt = select(func.count()).select_from(Case).where(Case.unit_id == unit_id, col(Case.state).in_(states))
    return int(session.exec(stmt).one())
