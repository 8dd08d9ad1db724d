"""Deadline queries: what the sweep must look at, and what a digest counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.db import affected
from storage.models import Case, CaseState, DigestLog, FollowUp


def due_for_reminders(session: Session, *, now: datetime, limit: int) -> list[Case]:
    """Cases whose next reminder is due, oldest first, skipping rows another sweeper holds.

    The index on next_reminder_at makes this a short range scan however many cases
    exist; closed cases carry NULL and are not in the range at all."""
    stmt = (
        select(Case)
        .where(col(Case.next_reminder_at) <= now)
        .order_by(col(Case.next_reminder_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(stmt))


def save_plan(session: Session, *, case_id: int, version: int, values: dict[str, Any]) -> bool:
    """Compare-and-set on the case's version: a case someone moved meanwhile is skipped
    (the move re-planned it anyway)."""
    result = session.execute(
        update(Case).where(col(Case.id) == case_id, col(Case.version) == version).values(version=version + 1, **values),
        # The sweep holds hundreds of cases in its session; matching each UPDATE against
        # all of them would make a batch quadratic. The caller reads what it needs first.
        execution_options={"synchronize_session": False},
    )
    return affected(result) == 1


def claim_digest(session: Session, *, street_id: int, day: str, now: datetime) -> bool:
    """True for the one process that gets to send this street's digest today."""
    try:
        with session.begin_nested():
            session.add(DigestLog(street_id=street_id, day=day, created_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def count_created(session: Session, street_id: int, since: datetime, until: datetime) -> dict[int | None, int]:
    stmt = (
        select(Case.unit_id, func.count())
        .where(Case.street_id == street_id, col(Case.created_at) >= since, col(Case.created_at) < until)
        .group_by(col(Case.unit_id))
    )
    return {unit: int(n) for unit, n in session.exec(stmt)}


def count_closed(session: Session, street_id: int, since: datetime, until: datetime) -> dict[int | None, int]:
    stmt = (
        select(Case.unit_id, func.count())
        .where(
            Case.street_id == street_id,
            Case.state == CaseState.CLOSED,
            col(Case.closed_at) >= since,
            col(Case.closed_at) < until,
        )
        .group_by(col(Case.unit_id))
    )
    return {unit: int(n) for unit, n in session.exec(stmt)}


def open_with_due(
    session: Session, street_id: int, states: Sequence[str], due_before: datetime, unit_id: int | None = None
) -> list[Case]:
    stmt = select(Case).where(
        Case.street_id == street_id,
        col(Case.state).in_(states),
        col(Case.due_at).is_not(None),
        col(Case.due_at) < due_before,
    )
    if unit_id is not None:
        stmt = stmt.where(Case.unit_id == unit_id)
    return list(session.exec(stmt.order_by(col(Case.due_at))))


def followups_due(session: Session, *, now: datetime, limit: int) -> list[FollowUp]:
    stmt = (
        select(FollowUp)
        .where(col(FollowUp.next_reminder_at) <= now)
        .order_by(col(FollowUp.next_reminder_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(stmt))


def save_followup_plan(session: Session, *, followup_id: int, before: datetime | None, values: dict[str, Any]) -> bool:
    """Compare-and-set on the reminder time the sweeper read: one sweeper wins."""
    result = session.execute(
        update(FollowUp)
        .where(col(FollowUp.id) == followup_id, col(FollowUp.next_reminder_at) == before)
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return affected(result) == 1
