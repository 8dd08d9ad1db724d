"""The audit trail: appended in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.models import AuditEvent, utcnow


def record(
    session: Session,
    *,
    action: str,
    subject_type: str,
    subject_id: int | None = None,
    actor_user_id: int | None = None,
    case_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    event = AuditEvent(
        at=at or utcnow(),
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        actor_user_id=actor_user_id,
        case_id=case_id,
        from_state=from_state,
        to_state=to_state,
        note=note,
        data=data or {},
    )
    session.add(event)
    return event


def events_for(session: Session, *, subject_type: str, subject_id: int) -> list[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == subject_id)
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
    )
    return list(session.exec(stmt))


def events_by_action(session: Session, action: str) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    return list(session.exec(stmt))
