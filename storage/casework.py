"""Queries for working a case: pending private inputs, whistles, extension requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.cases import rows_of_case
from storage.db import affected, plain_rows
from storage.models import Case, CaseCard, CaseState, ExtensionRequest, PendingInput, Whistle
from storage.one_per_user import OnePerUser


@dataclass(frozen=True)
class PendingRow:
    id: int
    user_id: int
    action: str
    case_id: int
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


# Asked on every private message (is this person owing words to a case?).
_PENDING = OnePerUser(PendingInput.__table__, PendingRow)  # type: ignore[attr-defined]


def pending_of(session: Session, user_id: int, *, for_update: bool = False) -> PendingRow | None:
    """The words and photos a user owes a case action. ``for_update`` locks the row until the
    transaction ends (PostgreSQL: the photos of one album arrive at once, and each adds to the
    list; SQLite's writers are serialised by BEGIN IMMEDIATE already)."""
    return _PENDING.of(session, user_id, for_update=for_update)


def start_pending(
    session: Session, *, user_id: int, action: str, case_id: int, data: dict[str, Any], now: datetime
) -> PendingRow:
    return _PENDING.replace(
        session, user_id=user_id, action=action, case_id=case_id, data=data, created_at=now, updated_at=now
    )


def save_pending(session: Session, row: PendingRow, *, data: dict[str, Any], now: datetime) -> PendingRow:
    return _PENDING.update(session, row, data=data, updated_at=now)


def drop_pending(session: Session, user_id: int) -> None:
    _PENDING.remove(session, user_id)


def next_whistle_round(session: Session, case_id: int) -> int:
    last = session.exec(select(func.max(Whistle.round)).where(Whistle.case_id == case_id)).one()
    return int(last or 0) + 1


def add_whistle(session: Session, whistle: Whistle) -> Whistle:
    session.add(whistle)
    session.flush()
    return whistle


@dataclass(frozen=True)
class Whistled:
    """A department a case was whistled to, as cards and rights read it."""

    id: int
    unit_id: int
    reported_in_at: datetime | None


_WHISTLES_OF = rows_of_case(Whistle, Whistled)


def whistles_of(session: Session, case_id: int) -> list[Whistled]:
    """Every card rendered, and every department member's rights, read them: plain rows."""
    return plain_rows(session, _WHISTLES_OF, {"case_id": case_id}, Whistled)


def get_whistle(session: Session, whistle_id: int) -> Whistle | None:
    return session.get(Whistle, whistle_id)


def report_in(session: Session, *, whistle_id: int, user_id: int, now: datetime) -> bool:
    """Compare-and-set: the first member of the department to press reports it in."""
    result = session.execute(
        update(Whistle)
        .where(col(Whistle.id) == whistle_id, col(Whistle.reported_in_at).is_(None))
        .values(reported_in_at=now, reported_in_by=user_id)
    )
    return affected(result) == 1


def add_extension(session: Session, request: ExtensionRequest) -> ExtensionRequest:
    session.add(request)
    session.flush()
    return request


def get_extension(session: Session, request_id: int) -> ExtensionRequest | None:
    return session.get(ExtensionRequest, request_id)


def decide_extension(session: Session, *, request_id: int, decision: str, user_id: int, now: datetime) -> bool:
    result = session.execute(
        update(ExtensionRequest)
        .where(col(ExtensionRequest.id) == request_id, col(ExtensionRequest.decision).is_(None))
        .values(decision=decision, decided_by=user_id, decided_at=now)
    )
    return affected(result) == 1


def unverified_since(session: Session, before: datetime, limit: int = 100) -> list[Case]:
    stmt = (
        select(Case)
        .where(
            Case.state == CaseState.RESOLVED, col(Case.resolved_at) <= before, col(Case.verify_escalated_at).is_(None)
        )
        .order_by(col(Case.resolved_at))
        .limit(limit)
    )
    return list(session.exec(stmt))


def case_for_card(session: Session, *, chat_id: int, message_id: int) -> int | None:
    card = session.exec(select(CaseCard).where(CaseCard.chat_id == chat_id, CaseCard.message_id == message_id)).first()
    return card.case_id if card else None
