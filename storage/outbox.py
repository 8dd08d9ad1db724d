"""The outbox: messages owed, committed with the change that caused them."""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, event, func, or_, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from storage.direct import Direct
from storage.models import Outbox

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


# The rows a unit of work queues are written together, in one statement, as it commits
# (storage/db.py writes them before it marks the update handled; the before_commit hook
# covers any other session): a change that tells five chats costs one INSERT, not five.
_TABLE = Outbox.__table__  # type: ignore[attr-defined]
_INSERT = Direct(_TABLE.insert())
_QUEUED = "griddesk_outbox_queued"  # on a session's info: the rows not written yet


def enqueue(
    session: Session,
    *,
    chat_id: int,
    kind: str,
    now: datetime,
    case_id: int | None = None,
    purpose: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Queue a message, written with the unit of work (rows are sent in id order per chat,
    and ids follow the order they were queued in)."""
    session.info.setdefault(_QUEUED, []).append(
        {
            "chat_id": chat_id,
            "kind": kind,
            "case_id": case_id,
            "purpose": purpose,
            "payload": payload or {},
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "sent_at": None,
            "message_id": None,
            "error": None,
        }
    )


def write_queued(session: Session) -> None:
    """Write the rows this unit of work queued (an executemany: one statement)."""
    queued = session.info.pop(_QUEUED, None)
    if queued:
        _INSERT.many(session, queued)


def _forget_queued(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the unit of work rolled back (not a savepoint)
        session.info.pop(_QUEUED, None)


event.listen(OrmSession, "before_commit", write_queued)
event.listen(OrmSession, "after_soft_rollback", _forget_queued)


# A drain asks these after every update: built once, with the moment, the bounds and the
# chats to skip as parameters (building a statement costs more than running it on SQLite).
_IS_DUE = (
    or_(col(Outbox.state) == PENDING, col(Outbox.state) == SENDING),
    col(Outbox.next_attempt_at) <= bindparam("now"),
)
_NOT_SKIPPED = col(Outbox.chat_id).not_in(bindparam("skip", expanding=True))
_ANY_DUE = select(Outbox.id).where(*_IS_DUE).limit(1)
_ANY_DUE_BUT = _ANY_DUE.where(_NOT_SKIPPED)
_FIRST_DUE_ID = select(func.min(Outbox.id)).where(*_IS_DUE, col(Outbox.id) <= bindparam("up_to"))
_NEWEST_ID = select(func.max(Outbox.id))


def _due_params(now: datetime, skip_chats: Collection[int]) -> dict[str, Any]:
    return {"now": now, "skip": sorted(skip_chats)} if skip_chats else {"now": now}


def any_due(session: Session, *, now: datetime, skip_chats: Collection[int] = ()) -> bool:
    """A cheap look before claiming (a claim takes the write lock even when it finds nothing)."""
    stmt = _ANY_DUE_BUT if skip_chats else _ANY_DUE
    return session.connection().execute(stmt, _due_params(now, skip_chats)).first() is not None


def first_due_id(session: Session, *, now: datetime, up_to: int) -> int | None:
    """The oldest due row with an id up to `up_to` (what a drain still waits for)."""
    found = session.connection().execute(_FIRST_DUE_ID, {"now": now, "up_to": up_to}).scalar()
    return int(found) if found is not None else None


def newest_id(session: Session) -> int:
    return int(session.connection().execute(_NEWEST_ID).scalar() or 0)


@functools.cache
def _claim_statement(per_chat: bool, skipping: bool) -> Any:
    """The claim's SELECT, for taking at most `per_chat` rows of each chat or not, and for
    skipping chats or not (a parameter for each; the statement itself is built once)."""
    wanted = [*_IS_DUE, _NOT_SKIPPED] if skipping else list(_IS_DUE)
    stmt = select(Outbox).where(*wanted)
    if per_chat:
        rank = func.row_number().over(partition_by=col(Outbox.chat_id), order_by=col(Outbox.id)).label("rank")
        ranked = select(col(Outbox.id).label("id"), rank).where(*wanted).subquery()
        stmt = stmt.where(col(Outbox.id).in_(select(ranked.c.id).where(ranked.c.rank <= bindparam("per_chat"))))
    return stmt.order_by(col(Outbox.id)).limit(bindparam("limit")).with_for_update(skip_locked=True)


def claim_due(
    session: Session,
    *,
    now: datetime,
    lease: timedelta,
    limit: int = 50,
    per_chat: int | None = None,
    skip_chats: Collection[int] = (),
) -> list[Outbox]:
    """Take rows that are due (or whose sender died holding them) for `lease`.

    `per_chat` takes at most that many of each chat's oldest due rows, so one chat's
    backlog cannot fill a claim and hide another chat's row behind it; `skip_chats` are
    chats the caller still holds enough rows of. FOR UPDATE SKIP LOCKED lets a second
    process drain beside us on PostgreSQL without taking the same rows (the due test is
    repeated outside the window so a row another process took meanwhile is dropped);
    SQLite's BEGIN IMMEDIATE serialises the claim instead.
    """
    params = {**_due_params(now, skip_chats), "limit": limit}
    if per_chat is not None:
        params["per_chat"] = per_chat
    stmt = _claim_statement(per_chat is not None, bool(skip_chats))
    rows = list(session.execute(stmt, params).scalars())
    for row in rows:
        row.state = SENDING
        row.attempts += 1
        row.next_attempt_at = now + lease
        session.add(row)
    session.flush()
    return rows


def extend_lease(session: Session, *, row_ids: Collection[int], until: datetime) -> None:
    """Keep rows we still hold (queued behind a chat's budget) from being taken over."""
    if row_ids:
        session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_(list(row_ids)), col(Outbox.state) == SENDING)
            .values(next_attempt_at=until)
        )


def release(session: Session, *, row_ids: Collection[int], at: datetime) -> None:
    """Give back rows we claimed but never tried (a paused chat, a stopping sender):
    pending again from `at`, and the claim does not count as an attempt."""
    if row_ids:
        session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_(list(row_ids)), col(Outbox.state) == SENDING)
            .values(
                state=PENDING,
                next_attempt_at=at,
                attempts=case((col(Outbox.attempts) > 0, col(Outbox.attempts) - 1), else_=0),
            )
        )


# Built once; bound per row (bindparam names must differ from the columns an UPDATE sets).
_MARK_SENT = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values(state=SENT, sent_at=bindparam("at"), message_id=bindparam("mid"), error=None)
)


def mark_sent(session: Session, *, sent: Collection[tuple[int, int | None]], now: datetime) -> None:
    """Rows Telegram accepted, as (row id, message id): one statement for them all."""
    if sent:
        session.connection().execute(_MARK_SENT, [{"row_id": row, "at": now, "mid": mid} for row, mid in sent])


def retry_later(session: Session, *, row_id: int, at: datetime, error: str) -> None:
    session.execute(
        update(Outbox).where(col(Outbox.id) == row_id).values(state=PENDING, next_attempt_at=at, error=error[:500])
    )


def mark_failed(session: Session, *, row_id: int, error: str) -> None:
    session.execute(update(Outbox).where(col(Outbox.id) == row_id).values(state=FAILED, error=error[:500]))


def release_all_sending(session: Session, *, at: datetime) -> int:
    """Rows a dead sender held (its process was killed): due again at `at`. Only for the one
    process that sends (the poller-lock holder), at its start."""
    result = session.execute(
        update(Outbox).where(col(Outbox.state) == SENDING).values(state=PENDING, next_attempt_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)
