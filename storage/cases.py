"""Case queries: codes, rows, media, supporting reports, state changes by compare-and-set."""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, func, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from storage.db import ById, CoreInsert, Loads, plain_rows, select_of
from storage.direct import Direct
from storage.models import AuditEvent, Case, CaseCard, CaseCounter, CaseMedia, CaseState, SupportingReport
from storage.upsert import insert_on_conflict

# Open or waiting: not over yet (the kinds are declared with the states).
OPEN_STATES = CaseState.NOT_FINAL


def next_sequence(session: Session, *, prefix: str, day: str) -> int:
    """The next number of the day for `prefix`, atomically (upsert … returning)."""
    stmt = _next_sequence(session.get_bind().dialect.name)
    return int(stmt(session, {"prefix": prefix, "day": day}).scalar_one())


@functools.cache
def _next_sequence(dialect: str) -> Direct:
    """Every report asks: built once per database kind (their ON CONFLICT constructs differ)."""
    return Direct(
        insert_on_conflict(dialect, CaseCounter)
        .values(prefix=bindparam("prefix"), day=bindparam("day"), last=1)
        .on_conflict_do_update(index_elements=["prefix", "day"], set_={"last": CaseCounter.last + 1})
        .returning(col(CaseCounter.last))
    )


_CASES = Case.__table__  # type: ignore[attr-defined]
_NEW_CASE = CoreInsert(Case)
_NEW_MEDIA = CoreInsert(CaseMedia)


def add_case(session: Session, **values: Any) -> Case:
    """A new case of these values (Case's attributes; the rest are its defaults), held by
    the session as if read."""
    return _NEW_CASE.one(session, **values)


_CASE = ById(Case)


def get_case(session: Session, case_id: int) -> Case | None:
    return _CASE(session, case_id)


_BY_CODE = Loads(Case, col(Case.code) == bindparam("code"))  # /case, every case card's button: built once


def get_case_by_code(session: Session, code: str) -> Case | None:
    return _BY_CODE.first(session, {"code": code.strip().upper()})


def add_media(session: Session, media: list[dict[str, Any]]) -> None:
    """Photos and voice notes of a case (CaseMedia's attributes; the rest are its
    defaults): one statement for them all."""
    _NEW_MEDIA.many(session, media)


@dataclass(frozen=True)
class MediaRow:
    """A case's photo or voice note as read (CaseMedia's columns)."""

    id: int
    case_id: int
    support_id: int | None
    stage: str
    kind: str
    telegram_file_id: str | None
    jpeg_file_id: str | None
    sha256: str | None
    original_path: str | None
    jpeg_path: str | None
    thumb_path: str | None
    width: int | None
    height: int | None
    duration: int | None
    taken_at: datetime | None
    added_by_user_id: int | None
    created_at: datetime


def rows_of_case(model: Any, row: type) -> Direct:
    """The SELECT of a case's rows of `model` (its cards, media, whistles…), oldest first, as
    plain rows of the dataclass `row`, whose fields name the columns: built once each."""
    table = model.__table__
    return Direct(select_of(model, row).where(table.c.case_id == bindparam("case_id")).order_by(table.c.id))


# Every card rendered reads these: built once, run on the session's connection (plain rows:
# the ORM's execution and loading cost more than the statements).
_MEDIA_OF = rows_of_case(CaseMedia, MediaRow)
_SUPPORT_COUNT = Direct(
    select(func.count()).select_from(SupportingReport).where(col(SupportingReport.case_id) == bindparam("case_id"))
)


def media_of(session: Session, case_id: int, *, stage: str | None = None) -> list[MediaRow]:
    """The case's media in the order they came (of one `stage` only, if given)."""
    rows = plain_rows(session, _MEDIA_OF, {"case_id": case_id}, MediaRow)
    return rows if stage is None else [m for m in rows if m.stage == stage]


def keep_jpeg_file_ids(session: Session, *, case_id: int, uploaded: dict[str, str]) -> None:
    """Record the file_id Telegram gave each uploaded JPEG (by path) on the case's media."""
    for path, file_id in uploaded.items():
        session.execute(
            update(CaseMedia)
            .where(col(CaseMedia.case_id) == case_id, col(CaseMedia.jpeg_path) == path)
            .values(jpeg_file_id=file_id)
        )


def add_support(session: Session, support: SupportingReport) -> SupportingReport:
    session.add(support)
    session.flush()
    return support


def support_count(session: Session, case_id: int) -> int:
    return int(_SUPPORT_COUNT(session, {"case_id": case_id}).scalar_one())


# Every report's category step asks for open cases nearby (possible duplicates): built once,
# plain rows of what the check and its offer need.
_OPEN_IN_BOX = Direct(
    sa_select(
        _CASES.c.id,
        _CASES.c.code,
        _CASES.c.grid_id,
        _CASES.c.latitude,
        _CASES.c.longitude,
        _CASES.c.created_at,
        _CASES.c.description,
    )
    .where(
        _CASES.c.category_id == bindparam("category_id"),
        _CASES.c.state.in_(OPEN_STATES),
        _CASES.c.latitude.between(bindparam("min_lat"), bindparam("max_lat")),
        _CASES.c.longitude.between(bindparam("min_lon"), bindparam("max_lon")),
        _CASES.c.created_at >= bindparam("since"),
    )
    .order_by(_CASES.c.created_at.desc())
    .limit(bindparam("limit"))
)


def open_cases_in_box(
    session: Session,
    *,
    category_id: int,
    min_lat: float,
    max_lat: float,
    min_lon: float,
    max_lon: float,
    since: datetime,
    limit: int = 20,
) -> list[Any]:
    """Open cases of the category in the box since `since`, newest first: rows of id, code,
    grid_id, latitude, longitude, created_at and description."""
    params = {"category_id": category_id, "since": since, "limit": limit}
    params |= {"min_lat": min_lat, "max_lat": max_lat, "min_lon": min_lon, "max_lon": max_lon}
    return _OPEN_IN_BOX(session, params).named()


_OF_REPORTER = Direct(  # /my: built once, plain rows of what its lines show (ix_case_reporter_created)
    select(_CASES.c.code, _CASES.c.state, _CASES.c.category_id, _CASES.c.created_at)
    .where(_CASES.c.reporter_user_id == bindparam("user_id"))
    .order_by(_CASES.c.created_at.desc(), _CASES.c.id.desc())
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)


def cases_of_reporter(session: Session, user_id: int, *, limit: int = 10, offset: int = 0) -> list[Any]:
    """A reporter's cases, newest first: rows of code, state, category_id and created_at."""
    params = {"user_id": user_id, "limit": limit, "offset": offset}
    return _OF_REPORTER(session, params).named()


# One statement for both counts, built once: /report and Submit ask it for every report.
_REPORTS_SINCE = Direct(
    select(
        select(func.count())
        .select_from(Case)
        .where(col(Case.reporter_user_id) == bindparam("user_id"), col(Case.created_at) >= bindparam("since"))
        .scalar_subquery()
        + select(func.count())
        .select_from(SupportingReport)
        .where(
            col(SupportingReport.reporter_user_id) == bindparam("user_id"),
            col(SupportingReport.origin) == "joined",
            col(SupportingReport.created_at) >= bindparam("since"),
        )
        .scalar_subquery()
    )
)


def count_reports_since(session: Session, user_id: int, since: datetime) -> int:
    return int(_REPORTS_SINCE(session, {"user_id": user_id, "since": since}).scalar_one())


# Every move's compare-and-set, built once: the columns it sets are the keys of each
# call's parameters (Core derives the SET clause from them), the guard is bound apart.
_CHANGE_STATE = Direct(
    _CASES.update().where(
        _CASES.c.id == bindparam("cas_id"),
        _CASES.c.state == bindparam("cas_state"),
        _CASES.c.version == bindparam("cas_version"),
    )
)


def change_state(session: Session, case: Case) -> bool:
    """Compare-and-set: write what was changed on the object since it was read (the move's
    state and values, the clock it replanned) in one UPDATE, only if nobody moved the case
    first. True if we won; if we lost, the object holds what the database has. The caller
    flushes anything else it changed on the object before it starts the move."""
    state = sa_inspect(case)
    before = state.committed_state  # each changed attribute's value as read
    expected_state = before.get("state", case.state)
    expected_version = before.get("version", case.version)
    values = {name: getattr(case, name) for name in before} | {"version": expected_version + 1}
    result = _CHANGE_STATE(
        session, {"cas_id": case.id, "cas_state": expected_state, "cas_version": expected_version, **values}
    )
    if result.rowcount != 1:
        session.refresh(case)
        return False
    for name, value in values.items():
        set_committed_value(case, name, value)
    # Every change is written: the object is as read again, so the commit's flush has nothing
    # to look at (a modified object, even with no change left, costs a flush of its own).
    state._commit_all(state.dict, session.identity_map)
    return True


@dataclass(frozen=True)
class Posted:
    """Where one of a case's cards is (CaseCard's row, as a move reads it)."""

    chat_id: int
    message_id: int
    purpose: str


# Asked on every change of a case (which cards to refresh): built once, plain rows.
_CARDS_OF = rows_of_case(CaseCard, Posted)


def cards_of(session: Session, case_id: int) -> list[Posted]:
    """The case's posted cards, read once per unit of work (a move refreshes them, then its
    caller says where they are); saving a card, or a rollback, reads them again."""
    known: dict[int, list[Posted]] = session.info.setdefault(_CARDS_KEY, {})
    if case_id not in known:
        known[case_id] = plain_rows(session, _CARDS_OF, {"case_id": case_id}, Posted)
    return list(known[case_id])


_CARDS_KEY = "griddesk_cards_of"


def _forget_cards(session: OrmSession, *_: Any) -> None:
    session.info.pop(_CARDS_KEY, None)


event.listen(OrmSession, "after_soft_rollback", _forget_cards)


def save_card(
    session: Session, *, case_id: int, chat_id: int, message_id: int, purpose: str, is_photo: bool, now: datetime
) -> None:
    """Remember where a case's card now is (one read; no write when nothing changed)."""
    existing = find_card(session, case_id=case_id, chat_id=chat_id, purpose=purpose)
    session.info.get(_CARDS_KEY, {}).pop(case_id, None)  # cards_of reads them again
    if existing is None:
        session.add(
            CaseCard(
                case_id=case_id,
                chat_id=chat_id,
                message_id=message_id,
                purpose=purpose,
                is_photo=is_photo,
                created_at=now,
            )
        )
    else:
        existing.message_id = message_id
        existing.is_photo = is_photo
        session.add(existing)


_FIND_CARD = select(CaseCard).where(
    col(CaseCard.case_id) == bindparam("case_id"),
    col(CaseCard.chat_id) == bindparam("chat_id"),
    col(CaseCard.purpose) == bindparam("purpose"),
)


def find_card(session: Session, *, case_id: int, chat_id: int, purpose: str) -> CaseCard | None:
    """Every card the outbox sends asks where it was posted: built once."""
    params = {"case_id": case_id, "chat_id": chat_id, "purpose": purpose}
    return session.execute(_FIND_CARD, params).scalars().first()


_RECENT_CATEGORIES = Direct(  # every description typed: built once
    select(Case.category_id)
    .where(col(Case.reporter_user_id) == bindparam("user_id"), col(Case.category_id).is_not(None))
    .order_by(col(Case.created_at).desc())
    .limit(bindparam("limit"))
)


def recent_categories_of(session: Session, user_id: int, limit: int = 10) -> list[int]:
    rows = _RECENT_CATEGORIES(session, {"user_id": user_id, "limit": limit}).scalars()
    return [int(c) for c in rows if c is not None]


def last_case_event(session: Session, *, case_id: int, actions: tuple[str, ...]) -> AuditEvent | None:
    """The case's most recent audit event among `actions` (who dispatched it, who rejected it…)."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.case_id == case_id, col(AuditEvent.action).in_(actions))
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


_CARDS_OF_CASES = select(CaseCard).where(col(CaseCard.case_id).in_(bindparam("ids", expanding=True)))


def cards_of_cases(session: Session, case_ids: Collection[int]) -> list[CaseCard]:
    """Every card posted for these cases (the outbox sender reads a claim's at once)."""
    if not case_ids:
        return []
    return list(session.execute(_CARDS_OF_CASES, {"ids": sorted(case_ids)}).scalars())
