"""The inbox: updates from Telegram, stored (idempotently, by update_id) before they are
acknowledged, marked when handled."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from storage.models import InboxUpdate
from storage.upsert import insert_on_conflict


# The update whose handlers are running, and when they began (griddesk/inbox.py sets it): a
# unit of work of theirs that changes anything marks it processed in the same transaction
# (storage/db.py), so after a crash an update whose change was committed never runs again,
# and one whose change was not runs again in full.
@dataclass
class Handling:
    update_id: int
    began: datetime
    marked: bool = False  # by a unit of work of its handlers


HANDLING: ContextVar[Handling | None] = ContextVar("griddesk_inbox_handling", default=None)


def store(session: Session, rows: Sequence[tuple[int, dict[str, Any]]], *, now: datetime) -> list[int]:
    """Insert the updates not stored yet; the update_ids still to process: the new ones and
    those stored before but never marked processed (stored by a run stopped before it could
    schedule them). A repeat of a processed update (Telegram after a crash, a retried
    webhook) is ignored."""
    if not rows:
        return []
    ids = [update_id for update_id, _ in rows]
    stored = session.exec(
        select(InboxUpdate.update_id, InboxUpdate.processed_at).where(col(InboxUpdate.update_id).in_(ids))
    ).all()
    known = {update_id for update_id, _ in stored}
    unfinished = [int(update_id) for update_id, processed_at in stored if processed_at is None]
    by_id: dict[int, dict[str, Any]] = {}
    for update_id, payload in rows:
        if update_id not in known:
            by_id[update_id] = {"update_id": update_id, "payload": payload, "received_at": now}
    fresh = list(by_id.values())
    if not fresh:
        return sorted(unfinished)
    stmt = insert_on_conflict(session, InboxUpdate).values(fresh).on_conflict_do_nothing(index_elements=["update_id"])
    if session.get_bind().dialect.name == "postgresql":
        returning = stmt.returning(InboxUpdate.__table__.c.update_id)  # type: ignore[attr-defined]
        return sorted({*(int(r[0]) for r in session.execute(returning)), *unfinished})
    session.execute(stmt)  # SQLite: the write lock is ours, nobody inserted meanwhile
    return sorted({*by_id, *unfinished})


def pending(session: Session, *, limit: int = 1000) -> list[InboxUpdate]:
    stmt = (
        select(InboxUpdate)
        .where(col(InboxUpdate.processed_at).is_(None))
        .order_by(col(InboxUpdate.update_id))
        .limit(limit)
    )
    return list(session.exec(stmt))


def mark_processed(session: Session, update_ids: Collection[int], *, now: datetime) -> None:
    if update_ids:
        session.execute(
            update(InboxUpdate)
            .where(col(InboxUpdate.update_id).in_(list(update_ids)), col(InboxUpdate.processed_at).is_(None))
            .values(processed_at=now)
        )


def newest_id(session: Session) -> int | None:
    return session.exec(select(func.max(InboxUpdate.update_id))).one()


def purge(session: Session, *, before: datetime, keep_newest: int | None) -> None:
    """Forget handled updates older than `before` (the newest is kept: it says where polling is)."""
    stmt = delete(InboxUpdate).where(col(InboxUpdate.processed_at).is_not(None), col(InboxUpdate.received_at) < before)
    if keep_newest is not None:
        stmt = stmt.where(col(InboxUpdate.update_id) != keep_newest)
    session.execute(stmt)
