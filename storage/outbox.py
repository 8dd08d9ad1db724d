"""The outbox: messages owed, committed with the change that caused them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from storage.models import Outbox

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


def enqueue(
    session: Session,
    *,
    chat_id: int,
    kind: str,
    now: datetime,
    case_id: int | None = None,
    purpose: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Outbox:
    row = Outbox(
        chat_id=chat_id,
        kind=kind,
        case_id=case_id,
        purpose=purpose,
        payload=payload or {},
        created_at=now,
        next_attempt_at=now,
    )
    session.add(row)
    return row


def claim_due(session: Session, *, now: datetime, lease: timedelta, limit: int = 50) -> list[Outbox]:
    """Take rows that are due (or whose sender died holding them) for `lease`.

    FOR UPDATE SKIP LOCKED lets a second process drain beside us on PostgreSQL without
    taking the same rows; SQLite's BEGIN IMMEDIATE serialises the claim instead.
    """
    due = or_(col(Outbox.state) == PENDING, col(Outbox.state) == SENDING)
    stmt = (
        select(Outbox)
        .where(due, col(Outbox.next_attempt_at) <= now)
        .order_by(col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(stmt))
    for row in rows:
        row.state = SENDING
        row.attempts += 1
        row.next_attempt_at = now + lease
        session.add(row)
    session.flush()
    return rows


def mark_sent(session: Session, *, row_id: int, now: datetime, message_id: int | None) -> None:
    session.execute(
        update(Outbox)
        .where(col(Outbox.id) == row_id)
        .values(state=SENT, sent_at=now, message_id=message_id, error=None)
    )


def retry_later(session: Session, *, row_id: int, at: datetime, error: str) -> None:
    session.execute(
        update(Outbox).where(col(Outbox.id) == row_id).values(state=PENDING, next_attempt_at=at, error=error[:500])
    )


def mark_failed(session: Session, *, row_id: int, error: str) -> None:
    session.execute(update(Outbox).where(col(Outbox.id) == row_id).values(state=FAILED, error=error[:500]))
