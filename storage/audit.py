"""The audit trail: appended in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

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
