"""The export's reads, streamed (yield_per: a server-side cursor on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from storage.desk import CaseFilter, _where
from storage.models import AuditEvent, Case, FollowUp, Rating, User

BATCH = 2000


def iter_cases(s: Session, f: CaseFilter) -> Iterator[Any]:
    stmt = (
        select(
            col(Case.id), col(Case.code), col(Case.source), col(Case.state), col(Case.street_id),
            col(Case.community_id), col(Case.grid_id), col(Case.category_id), col(Case.unit_id),
            col(Case.address), col(Case.created_at), col(Case.dispatched_at), col(Case.claimed_at),
            col(Case.resolved_at), col(Case.closed_at), col(Case.due_at), col(Case.urgent),
        )
        .where(*_where(f))
        .order_by(col(Case.created_at), col(Case.id))
        .execution_options(yield_per=BATCH)
    )  # fmt: skip
    yield from s.execute(stmt)


def reopened_ids(s: Session, f: CaseFilter) -> set[int]:
    stmt = (
        select(col(AuditEvent.case_id))
        .join(Case, col(Case.id) == col(AuditEvent.case_id))
        .where(col(AuditEvent.action).in_(("case.not_fixed", "case.reopened")), *_where(f))
    )
    return {int(c) for (c,) in s.execute(stmt)}


def first_ratings(s: Session, f: CaseFilter) -> dict[int, int]:
    stmt = (
        select(col(Rating.case_id), col(Rating.level))
        .join(Case, col(Case.id) == col(Rating.case_id))
        .where(*_where(f))
        .order_by(col(Rating.id))
    )
    out: dict[int, int] = {}
    for case_id, level in s.execute(stmt):
        out.setdefault(int(case_id), int(level))
    return out


def followup_outcomes(s: Session, f: CaseFilter, now: datetime) -> dict[int, str]:
    stmt = (
        select(col(FollowUp.case_id), col(FollowUp.outcome), col(FollowUp.due_at))
        .join(Case, col(Case.id) == col(FollowUp.case_id))
        .where(*_where(f))
        .order_by(col(FollowUp.id))
    )
    return {int(c): (o or ("overdue" if due <= now else "open")) for c, o, due in s.execute(stmt)}


def iter_timeline(s: Session, f: CaseFilter) -> Iterator[Any]:
    """(code, at, action, from, to, actor first name, last name, note) in time order."""
    stmt = (
        select(
            col(Case.code), col(AuditEvent.at), col(AuditEvent.action), col(AuditEvent.from_state),
            col(AuditEvent.to_state), col(User.first_name), col(User.last_name), col(AuditEvent.note),
        )
        .join(Case, col(Case.id) == col(AuditEvent.case_id))
        .outerjoin(User, col(User.id) == col(AuditEvent.actor_user_id))
        .where(*_where(f))
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
        .execution_options(yield_per=BATCH)
    )  # fmt: skip
    yield from s.execute(stmt)
