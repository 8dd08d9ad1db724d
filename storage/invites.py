"""Invite codes: single-use, expiring deep links that give a role."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from storage.db import affected
from storage.models import Invite


def add_invite(
    session: Session,
    *,
    code: str,
    role: str,
    scope_kind: str,
    scope_code: str,
    created_by: int | None,
    now: datetime,
    expires_at: datetime,
) -> Invite:
    invite = Invite(
        code=code,
        role=role,
        scope_kind=scope_kind,
        scope_code=scope_code,
        created_by=created_by,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(invite)
    session.flush()
    return invite


def get_invite(session: Session, code: str) -> Invite | None:
    return session.exec(select(Invite).where(Invite.code == code)).first()


def mark_used(session: Session, *, invite_id: int, user_id: int, now: datetime) -> bool:
    """Compare-and-set: true only for the one redemption that wins."""
    result = session.execute(
        update(Invite)
        .where(col(Invite.id) == invite_id, col(Invite.used_at).is_(None))
        .values(used_at=now, used_by_user_id=user_id)
    )
    return affected(result) == 1
