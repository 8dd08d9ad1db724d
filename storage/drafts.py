"""Report drafts: one per user, the persisted state of the report conversation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import ReportDraft
from storage.one_per_user import OnePerUser


@dataclass(frozen=True)
class DraftRow:
    id: int
    user_id: int
    step: str
    data: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime


_DRAFTS = OnePerUser(ReportDraft.__table__, DraftRow)  # type: ignore[attr-defined]


def get(session: Session, user_id: int, *, for_update: bool = False) -> DraftRow | None:
    """The user's draft; `for_update` locks its row until the unit of work ends."""
    return _DRAFTS.of(session, user_id, for_update=for_update)


def by_id(session: Session, draft_id: int) -> DraftRow | None:
    """A draft row this unit of work already read or wrote costs no statement."""
    return _DRAFTS.by_id(session, draft_id)


def create(session: Session, *, user_id: int, step: str, data: dict[str, Any], now: datetime) -> DraftRow:
    return _DRAFTS.replace(session, user_id=user_id, step=step, data=data, version=1, created_at=now, updated_at=now)


def save(session: Session, draft: DraftRow, *, step: str, data: dict[str, Any], now: datetime) -> DraftRow:
    return _DRAFTS.update(session, draft, step=step, data=data, version=draft.version + 1, updated_at=now)


def remove(session: Session, user_id: int) -> None:
    _DRAFTS.remove(session, user_id)


def remove_if_idle(session: Session, user_id: int, before: datetime) -> None:
    """Delete the user's draft only if it is still idle (nobody touched it meanwhile)."""
    _DRAFTS.remove_if_idle(session, user_id, before)


def idle_since(session: Session, before: datetime, limit: int = 100) -> list[ReportDraft]:
    stmt = select(ReportDraft).where(col(ReportDraft.updated_at) < before).order_by(col(ReportDraft.id)).limit(limit)
    return list(session.exec(stmt))
