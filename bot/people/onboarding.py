"""Invites and joining: how a person gets a role."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import (
    InviteExpired,
    InviteNotFound,
    InviteUsed,
    ScopeDoesNotFitRole,
    UnknownRole,
    UnknownScope,
)
from bot.org import index
from bot.people import identity
from bot.people.roles import ROLE_SCOPES
from bot.runtime import Runtime
from storage import audit, invites, people
from storage.models import Role, Unit

JOIN_PREFIX = "join-"
# Deep-link payloads allow A-Z a-z 0-9 _ - and up to 64 characters.
_CODE_BYTES = 12


@dataclass(frozen=True)
class InviteLink:
    code: str
    role: str
    scope_code: str
    scope_name_zh: str
    scope_name_en: str
    expires_at: datetime
    link: str


@dataclass(frozen=True)
class Joined:
    role: str
    scope_code: str
    scope_name_zh: str
    scope_name_en: str
    already_member: bool


def _resolve_scope(rt: Runtime, role: str, scope_code: str) -> tuple[str, str, str, str]:
    """(scope_kind, canonical code, name_zh, name_en) for a role's scope, or a typed error."""
    known = index.org(rt)
    found = known.find_scope(scope_code)
    if found is None:
        raise UnknownScope(code=scope_code)
    kind, row = found
    if isinstance(row, Unit):
        kind = row.kind
    allowed = ROLE_SCOPES[role]
    if kind not in allowed:
        raise ScopeDoesNotFitRole(role=role, code=scope_code)
    if role == Role.DISPATCHER and isinstance(row, Unit):
        # A dispatcher belongs to a street's command room; keep the street as the scope.
        street = known.street(row.street_id)
        assert street is not None
        return "street", street.code, street.name_zh, street.name_en
    scope_kind = "unit" if isinstance(row, Unit) else kind
    return scope_kind, row.code, row.name_zh, row.name_en


# What administrators type for a role, in either language: /invite 网格员 33010200100101
ROLE_NAMES = {
    "网格员": Role.WORKER,
    "专职网格员": Role.WORKER,
    "工作人员": Role.STAFF,
    "平台工作人员": Role.STAFF,
    "执法队员": Role.STAFF,
    "调度员": Role.DISPATCHER,
    "指挥中心调度员": Role.DISPATCHER,
    "部门": Role.DEPARTMENT,
    "部门工作人员": Role.DEPARTMENT,
    "督导": Role.SUPERVISOR,
    "督查": Role.SUPERVISOR,
    "督导人员": Role.SUPERVISOR,
}


def create_invite(
    rt: Runtime, *, role: str, scope_code: str, created_by: int | None, actor_user_id: int | None = None
) -> InviteLink:
    role = ROLE_NAMES.get(role.strip(), role.strip().lower())
    if role not in Role.ALL:
        raise UnknownRole(role=role, roles=", ".join(Role.ALL))
    now = rt.clock.now()
    expires_at = now + timedelta(hours=rt.settings.invite_ttl_hours)
    with rt.db.session() as s:
        scope_kind, code, name_zh, name_en = _resolve_scope(rt, role, scope_code)
        invite = invites.add_invite(
            s,
            code=secrets.token_urlsafe(_CODE_BYTES),
            role=role,
            scope_kind=scope_kind,
            scope_code=code,
            created_by=created_by,
            now=now,
            expires_at=expires_at,
        )
        audit.record(
            s,
            action="invite.created",
            subject_type="invite",
            subject_id=invite.id,
            actor_user_id=actor_user_id,
            data={"role": role, "scope": code, "by": created_by},
            at=now,
        )
        return InviteLink(
            code=invite.code,
            role=role,
            scope_code=code,
            scope_name_zh=name_zh,
            scope_name_en=name_en,
            expires_at=expires_at,
            link=rt.deep_link(JOIN_PREFIX + invite.code),
        )


def redeem_invite(rt: Runtime, *, code: str, user_id: int) -> Joined:
    """Use an invite once. Two people racing for one code: exactly one gets the role."""
    now = rt.clock.now()
    with rt.db.session() as s:
        invite = invites.get_invite(s, code.strip())
        if invite is None:
            raise InviteNotFound()
        if invite.used_at is not None:
            raise InviteUsed()
        if invite.expires_at <= now:
            raise InviteExpired()
        found = index.org(rt).find_scope(invite.scope_code)
        if found is None:  # the org file dropped the scope since the invite was made
            raise UnknownScope(code=invite.scope_code)
        row = found[1]
        if not invites.mark_used(s, invite_id=invite.id, user_id=user_id, now=now):  # type: ignore[arg-type]
            raise InviteUsed()
        existing = people.find_membership(s, user_id=user_id, role=invite.role, scope_code=invite.scope_code)
        if existing is not None and not existing.active:  # revoked before: a new invite gives it back
            people.reactivate(s, existing)
            audit.record(
                s,
                action="user.joined",
                subject_type="user",
                subject_id=user_id,
                actor_user_id=user_id,
                data={"role": invite.role, "scope": invite.scope_code, "invite": invite.id, "membership": existing.id},
                at=now,
            )
            identity.forget(rt, user_id)
            return Joined(
                role=invite.role,
                scope_code=invite.scope_code,
                scope_name_zh=row.name_zh,
                scope_name_en=row.name_en,
                already_member=False,
            )
        if existing is None:
            m = people.add_membership(
                s,
                user_id=user_id,
                role=invite.role,
                scope_kind=invite.scope_kind,
                scope_code=invite.scope_code,
                invite_id=invite.id,
                now=now,
            )
            audit.record(
                s,
                action="user.joined",
                subject_type="user",
                subject_id=user_id,
                actor_user_id=user_id,
                data={"role": invite.role, "scope": invite.scope_code, "invite": invite.id, "membership": m.id},
                at=now,
            )
        identity.forget(rt, user_id)  # a new role: /help, buttons and rights change at once
        return Joined(
            role=invite.role,
            scope_code=invite.scope_code,
            scope_name_zh=row.name_zh,
            scope_name_en=row.name_en,
            already_member=existing is not None,
        )


def parse_join_payload(payload: str) -> str | None:
    return payload[len(JOIN_PREFIX) :] if payload.startswith(JOIN_PREFIX) else None
