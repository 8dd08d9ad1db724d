"""Work lists: the cases a person should look at, most urgent and newest first."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.models import AuditEvent, Case


def _ordered(stmt, limit: int, offset: int):  # type: ignore[no-untyped-def]
    return (
        stmt.order_by(col(Case.urgent).desc(), col(Case.created_at).desc(), col(Case.id).desc())
        .offset(offset)
        .limit(limit)
    )


def owned_by(session: Session, user_id: int, states: Sequence[str], *, limit: int, offset: int = 0) -> list[Case]:
    stmt = select(Case).where(Case.owner_user_id == user_id, col(Case.state).in_(states))
    return list(session.exec(_ordered(stmt, limit, offset)))


def unclaimed_for_units(
    session: Session, unit_ids: Sequence[int], states: Sequence[str], *, limit: int, offset: int = 0
) -> list[Case]:
    if not unit_ids:
        return []
    stmt = select(Case).where(
        col(Case.unit_id).in_(unit_ids), col(Case.state).in_(states), col(Case.owner_user_id).is_(None)
    )
    return list(session.exec(_ordered(stmt, limit, offset)))


def open_in_streets(
    session: Session, street_ids: Sequence[int], states: Sequence[str], *, limit: int, offset: int = 0
) -> list[Case]:
    if not street_ids:
        return []
    stmt = select(Case).where(col(Case.street_id).in_(street_ids), col(Case.state).in_(states))
    return list(session.exec(_ordered(stmt, limit, offset)))


def timeline(session: Session, case_id: int) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(col(AuditEvent.at), col(AuditEvent.id))
    return list(session.exec(stmt))


def open_count_for_unit(session: Session, unit_id: int, states: Sequence[str]) -> int:
    stmt = select(func.count()).select_from(Case).where(Case.unit_id == unit_id, col(Case.state).in_(states))
    return int(session.exec(stmt).one())
