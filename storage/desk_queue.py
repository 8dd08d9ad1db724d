"""The desk's work queue and search: open cases of streets or teams, filtered, a page at a time,
in the work lists' order (urgent first, newest first: the partial indexes of storage/models.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, column, or_, table
from sqlalchemy import select as sa_select
from sqlalchemy import text as sql_text
from sqlmodel import Session, col, select

from storage import search_index
from storage.models import WORKLIST_OPEN_STATES, Case, CaseState
from storage.worklists import ORDER, _state_filter, merged_walks

ALL, OVERDUE, UNCLAIMED, DUE_TODAY, WAITING, TEAM, GRID = (
    "all",
    "overdue",
    "unclaimed",
    "today",
    "waiting",
    "team",
    "grid",
)
WORKING = tuple(s for s in WORKLIST_OPEN_STATES if s != CaseState.RESOLVED)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before any due time


def _filters(kind: str, arg: int, now: datetime, day_end: datetime) -> list[Any]:
    if kind == OVERDUE:
        # Bounded on both sides, as due today is: SQLite's planner then expects a few cases and
        # reads ix_case_*_due (one-sided, it guesses a quarter and walks every open case).
        return [*_state_filter(WORKING, WORKLIST_OPEN_STATES), col(Case.due_at) > EPOCH, col(Case.due_at) < now]
    if kind == UNCLAIMED:
        return [*_state_filter(WORKLIST_OPEN_STATES, WORKLIST_OPEN_STATES), col(Case.owner_user_id).is_(None)]
    if kind == DUE_TODAY:
        return [*_state_filter(WORKING, WORKLIST_OPEN_STATES), col(Case.due_at) >= now, col(Case.due_at) < day_end]
    if kind == WAITING:  # the condition of ix_case_*_resolved, term for term (see _state_filter)
        return [col(Case.state) == bindparam("resolved_only", CaseState.RESOLVED, literal_execute=True)]
    where = _state_filter(WORKLIST_OPEN_STATES, WORKLIST_OPEN_STATES)
    if kind == TEAM:
        where.append(Case.unit_id == arg)
    elif kind == GRID:
        where.append(Case.grid_id == arg)
    return where


def page(
    s: Session,
    *,
    street_ids: Sequence[int] | None,
    unit_ids: Sequence[int],
    kind: str,
    arg: int,
    now: datetime,
    day_end: datetime,
    limit: int,
    offset: int,
) -> list[Case]:
    """Street ids (dispatchers; None: every street) or team ids (staff)."""
    where = _filters(kind, arg, now, day_end)
    if street_ids is None:
        stmt = select(Case).where(*where).order_by(*ORDER).offset(offset).limit(limit)
        return list(s.exec(stmt))
    by, keys = (col(Case.street_id), street_ids) if street_ids else (col(Case.unit_id), unit_ids)

    def walk(key: int, walk_offset: int, walk_limit: int) -> list[Any]:
        stmt = select(Case).where(by == key, *where).order_by(*ORDER).offset(walk_offset).limit(walk_limit)
        return list(s.exec(stmt))

    return merged_walks(keys, walk, limit, offset) if keys else []


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


CODE_PREFIX = re.compile(r"[A-Z]{1,8}-[0-9-]*")


def search_code_prefix(
    s: Session, prefix: str, *, street_ids: Sequence[int] | None, unit_ids: Sequence[int], limit: int
) -> list[Case]:
    """Cases whose code starts with `prefix` (a range on the unique code index), newest first."""
    where: list[Any] = [col(Case.code) >= prefix, col(Case.code) < prefix + "\uffff"]
    if street_ids is not None:
        where.append(col(Case.street_id).in_(list(street_ids)) if street_ids else col(Case.unit_id).in_(list(unit_ids)))
    stmt = select(Case).where(*where).order_by(col(Case.code).desc()).limit(limit)
    return list(s.exec(stmt))


def search(
    s: Session, text: str, *, street_ids: Sequence[int] | None, unit_ids: Sequence[int], limit: int
) -> list[Case]:
    """Cases whose code, address or description contains `text` (a substring: Chinese has no
    word boundaries), newest first."""
    scope: list[Any] = []
    if street_ids is not None:
        scope.append(col(Case.street_id).in_(list(street_ids)) if street_ids else col(Case.unit_id).in_(list(unit_ids)))
    newest_first = (col(Case.created_at).desc(), col(Case.id).desc())
    ids = _fts_ids(s, text)
    if ids is not None:  # SQLite's trigram index found the few cases that hold the text
        stmt = select(Case).where(col(Case.id).in_(ids), *scope).order_by(*newest_first).limit(limit)
        return list(s.exec(stmt))
    # PostgreSQL: the same LIKE/ILIKE on the searched text's own table walks pg_trgm's GIN
    # indexes (storage/search_index.py); a shorter text, the index of characters and pairs
    with_table, with_grams = search_index.text_ready(s)
    fields = _SEARCHED if with_table else _CASES
    match: Any = or_(
        fields.c.code.ilike(_written(_like(text.upper())), escape="\\"),
        fields.c.address.like(_written(_like(text)), escape="\\"),
        fields.c.description.like(_written(_like(text)), escape="\\"),
    )
    if len(text) <= search_index.SHORT and with_grams:
        grams = sql_text(search_index.SHORT_GRAMS_MATCH).bindparams(_written(text, "gram"))
        match = and_(grams, match)
    if with_table:
        match = col(Case.id).in_(sa_select(_SEARCHED.c.case_id).where(match))
    stmt = select(Case).where(match, *scope).order_by(*newest_first).limit(limit)
    return list(s.exec(stmt))


def _written(value: str, name: str | None = None) -> Any:
    """The searched text written into the statement (quoted by the dialect), not bound: a
    statement PostgreSQL has prepared gets a generic plan after five runs, one for any text,
    and the plan that suits a rare character joins every case when the character is common
    (a second at 200,000 cases). Written in, each text is planned for what it is."""
    return bindparam(name, value, type_=String(), literal_execute=True)


_CASES = Case.__table__  # type: ignore[attr-defined]
_SEARCHED = table(search_index.TEXT_TABLE, column("case_id"), column("code"), column("address"), column("description"))


# Up to this many hits the trigram index's answer is used; a text more cases hold is found
# sooner by the scan in newest-first order (it stops at the page's limit).
FTS_CAP = 1000


def _fts_ids(s: Session, text: str) -> list[int] | None:
    """Ids of the cases whose code, address or description holds `text`, from SQLite's FTS5
    trigram index; None when the index cannot answer (no index) or the text is common (the
    scan is faster then). A text of one or two characters is every trigram that starts with
    it (search_index: the fields end with two terminators), read from the index's terms."""
    if not search_index.fts_ready(s):
        return None
    if len(text) <= search_index.SHORT:
        low, high = search_index.term_range(text)
        stmt = sql_text(
            f"SELECT doc FROM {search_index.FTS_INSTANCES} WHERE term >= :low AND term < :high LIMIT :n"
        ).bindparams(low=low, high=high, n=FTS_CAP)
    else:
        stmt = sql_text(
            f"SELECT rowid FROM {search_index.FTS_TABLE} WHERE {search_index.FTS_TABLE} MATCH :q "
            "ORDER BY rowid DESC LIMIT :n"
        ).bindparams(q=search_index.fts_phrase(text), n=FTS_CAP)
    found = [int(r) for (r,) in s.execute(stmt)]
    return sorted(set(found)) if len(found) < FTS_CAP else None


def longest_overdue(
    s: Session, *, street_ids: Sequence[int] | None, unit_ids: Sequence[int], now: datetime, limit: int
) -> list[Case]:
    """Open cases past their due time, the longest overdue first."""
    where: list[Any] = [col(Case.state).in_(WORKING), col(Case.due_at) < now]
    if street_ids is not None:
        where.append(col(Case.street_id).in_(list(street_ids)))
    if unit_ids:
        where.append(col(Case.unit_id).in_(list(unit_ids)))
    stmt = select(Case).where(*where).order_by(col(Case.due_at), col(Case.id)).limit(limit)
    return list(s.exec(stmt))
