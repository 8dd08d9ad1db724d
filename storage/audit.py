"""The audit trail: appended in the same transaction as the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from storage import events
from storage.models import AuditEvent, Case, utcnow

# Appended straight through the session's connection (as the outbox's rows are): nothing
# reads an event back in the transaction that writes it.
_INSERT = AuditEvent.__table__.insert()  # type: ignore[attr-defined]


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
) -> None:
    session.connection().execute(
        _INSERT,
        {
            "at": at or utcnow(),
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "actor_user_id": actor_user_id,
            "case_id": case_id,
            "from_state": from_state,
            "to_state": to_state,
            "note": note,
            "data": data or {},
        },
    )
    if events.wanted(action):
        events.business_event(
            session,
            action,
            case=_case_code(session, case_id),
            case_id=case_id,
            actor=actor_user_id,
            from_state=from_state,
            to_state=to_state,
            **{k: v for k, v in (data or {}).items() if k in ("rung", "level", "kind")},
        )


def _case_code(session: Session, case_id: int | None) -> str | None:
    """The case's code if the session holds the case already (no query for a log line)."""
    if case_id is None:
        return None
    case = session.identity_map.get(identity_key(Case, case_id))
    return case.code if isinstance(case, Case) else None
