"""The audit trail: appended in the same transaction as the change it records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from storage import events
from storage.direct import Direct
from storage.models import AuditEvent, Case, utcnow

# Appended straight through the session's connection (as the outbox's rows are): nothing
# reads an event back in the transaction that writes it.
_INSERT = Direct(AuditEvent.__table__.insert())  # type: ignore[attr-defined]
_HELD = "griddesk_audit_held"


class EventFields(TypedDict, total=False):
    action: Required[str]
    subject_type: Required[str]
    subject_id: int | None
    actor_user_id: int | None
    case_id: int | None
    from_state: str | None
    to_state: str | None
    note: str | None
    data: dict[str, Any] | None
    at: datetime | None


def record(session: Session, **fields: Unpack[EventFields]) -> None:
    """Append an event, or keep it back while inside :func:`held`."""
    row = event_row(**fields)
    kept = session.info.get(_HELD)
    if kept is not None:
        kept.append(row)
    else:
        write(session, [row])


def event_row(**fields: Unpack[EventFields]) -> dict[str, Any]:
    """An event as the table takes it (every column named; the time now unless given)."""
    get = fields.get
    return {
        "at": get("at") or utcnow(),
        "action": fields["action"],
        "subject_type": fields["subject_type"],
        "subject_id": get("subject_id"),
        "actor_user_id": get("actor_user_id"),
        "case_id": get("case_id"),
        "from_state": get("from_state"),
        "to_state": get("to_state"),
        "note": get("note"),
        "data": get("data") or {},
    }


@contextmanager
def held(session: Session) -> Iterator[list[dict[str, Any]]]:
    """Events recorded inside are kept back in the list yielded, for the caller to `write`
    after what they depend on has happened (a move's compare-and-set), or to drop."""
    kept: list[dict[str, Any]] = []
    session.info[_HELD] = kept
    try:
        yield kept
    finally:
        session.info.pop(_HELD, None)


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append these events, in order, in one statement."""
    if not rows:
        return
    _INSERT.many(session, rows)
    for row in rows:
        if events.wanted(row["action"]):
            case_id = row["case_id"]
            events.business_event(
                session,
                row["action"],
                case=_case_code(session, case_id),
                case_id=case_id,
                actor=row["actor_user_id"],
                from_state=row["from_state"],
                to_state=row["to_state"],
                **{k: v for k, v in row["data"].items() if k in ("rung", "level", "kind")},
            )


def _case_code(session: Session, case_id: int | None) -> str | None:
    """The case's code if the session holds the case already (no query for a log line)."""
    if case_id is None:
        return None
    case = session.identity_map.get(identity_key(Case, case_id))
    return case.code if isinstance(case, Case) else None
