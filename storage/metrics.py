"""Figures /metrics reads from the database at each scrape."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import Case, CaseState, Outbox

_WAITING = ("pending", "sending")


def outbox_depth(session: Session) -> tuple[int, datetime | None]:
    """Rows not yet sent, and when the oldest of them was written."""
    count, oldest = session.exec(
        select(func.count(col(Outbox.id)), func.min(col(Outbox.created_at))).where(col(Outbox.state).in_(_WAITING))
    ).one()
    if isinstance(oldest, str):  # SQLite's MIN() of a timestamp comes back as text
        oldest = datetime.fromisoformat(oldest)
    return int(count or 0), oldest


def open_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Case.state, func.count(col(Case.id)))
        .where(col(Case.state).in_(CaseState.NOT_FINAL))
        .group_by(col(Case.state))
    ).all()
    return {state: int(n) for state, n in rows}


def overdue_count(session: Session, *, now: datetime) -> int:
    return int(
        session.exec(
            select(func.count(col(Case.id))).where(
                col(Case.state).in_(CaseState.NOT_FINAL), col(Case.due_at).is_not(None), col(Case.due_at) < now
            )
        ).one()
        or 0
    )
