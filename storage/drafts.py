"""Report drafts: one per user, the persisted state of the report conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete
from sqlmodel import Session, col, select

from storage.models import ReportDraft

# Asked on every private message: built once.
_DRAFT_OF = select(ReportDraft).where(col(ReportDraft.user_id) == bindparam("user_id"))
_DRAFT_OF_LOCKED = _DRAFT_OF.with_for_update()


def get(session: Session, user_id: int, *, for_update: bool = False) -> ReportDraft | None:
    """The user's draft; `for_update` locks its row until the unit of work ends (PostgreSQL:
    two processes' steps of one person queue here; SQLite's writers queue anyway)."""
    stmt = _DRAFT_OF_LOCKED if for_update else _DRAFT_OF
    return session.execute(stmt, {"user_id": user_id}).scalars().first()


def by_id(session: Session, draft_id: int) -> ReportDraft | None:
    """A draft row this unit of work already read comes from its identity map: no statement."""
    return session.get(ReportDraft, draft_id)


def create(session: Session, *, user_id: int, step: str, data: dict[str, Any], now: datetime) -> ReportDraft:
    session.execute(delete(ReportDraft).where(col(ReportDraft.user_id) == user_id))
    draft = ReportDraft(user_id=user_id, step=step, data=data, created_at=now, updated_at=now)
    session.add(draft)
    session.flush()
    return draft


def save(session: Session, draft: ReportDraft, *, step: str, data: dict[str, Any], now: datetime) -> None:
    draft.step = step
    draft.data = data
    draft.version += 1
    draft.updated_at = now
    session.add(draft)


def remove(session: Session, user_id: int) -> None:
    session.execute(delete(ReportDraft).where(col(ReportDraft.user_id) == user_id))


def remove_if_idle(session: Session, user_id: int, before: datetime) -> None:
    """Delete the user's draft only if it is still idle (nobody touched it meanwhile)."""
    session.execute(
        delete(ReportDraft).where(col(ReportDraft.user_id) == user_id, col(ReportDraft.updated_at) < before)
    )


def idle_since(session: Session, before: datetime, limit: int = 100) -> list[ReportDraft]:
    stmt = select(ReportDraft).where(col(ReportDraft.updated_at) < before).order_by(col(ReportDraft.id)).limit(limit)
    return list(session.exec(stmt))
