"""Taking roles away: /revoke (admins, and `griddesk revoke`), a member leaving or removed
from a bound group, an organisation re-import that drops a scope.

A revoked membership stays as a row with `active` false (when and why kept), so the record
of who did what survives; only active rows give rights. The person is told (through the
outbox), their cached identity is dropped at once, and a case they had claimed in the team
they left goes back to the team's queue, so nobody's work waits on somebody who is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot import notify
from bot.cases import lifecycle
from bot.errors import AdminOnly, DomainError
from bot.i18n import N_, t
from bot.org import index
from bot.people import identity
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, chats, orgs, people, worklists
from storage.models import CaseState, Membership, Role, Street, Unit, UnitKind

REVOKE, LEFT_GROUP, ORG_REMOVED = "revoke", "left_group", "org_removed"


class RevokeUsage(DomainError):
    key = "revoke.usage"


class UnknownPerson(DomainError):
    key = "revoke.unknown_user"


class NothingToRevoke(DomainError):
    key = "revoke.nothing"


@dataclass(frozen=True)
class Revoked:
    user_id: int
    telegram_id: int
    name: str
    role: str
    scope_code: str


def revoke(rt: Runtime, *, by: Person | None, who: str, scope: str | None) -> list[Revoked]:
    """`who` is a role (then `scope` is required: everyone holding it there loses it) or a
    person (a Telegram id or @username; without `scope`, every role they hold). `by` None
    is the operator's command line."""
    if by is not None and not by.is_admin:
        raise AdminOnly()
    who = who.strip()
    now = rt.clock.now()
    with rt.db.session() as s:
        codes = _scope_codes(rt, scope) if scope else None
        if who.lower() in Role.ALL:
            if codes is None:
                raise RevokeUsage()
            rows = people.active_memberships(s, role=who.lower(), scope_codes=codes)
        else:
            user = (
                people.get_user_by_telegram_id(s, int(who))
                if who.lstrip("-").isdigit()
                else people.find_by_username(s, who)
            )
            if user is None:
                raise UnknownPerson(who=who)
            rows = people.active_memberships(s, user_id=user.id, scope_codes=codes)
        if not rows:
            raise NothingToRevoke(who=who, scope=scope or "")
        return apply(rt, s, rows, reason=REVOKE, actor_user_id=by.user_id if by else None, now=now)


def _scope_codes(rt: Runtime, scope: str) -> set[str]:
    """The codes a typed scope may be stored under (a street's dispatchers may hold either
    the street's code or its command room's)."""
    known = index.org(rt)
    found = known.find_scope(scope)
    if found is None:
        return {scope.strip(), scope.strip().upper()}
    _kind, row = found
    codes = {row.code}
    if isinstance(row, Unit) and row.kind == UnitKind.COMMAND_ROOM and (street := known.street(row.street_id)):
        codes.add(street.code)
    if isinstance(row, Street) and (room := known.command_room(row.id)) is not None:
        codes.add(room.code)
    return codes


def apply(
    rt: Runtime, s: Session, rows: list[Membership], *, reason: str, actor_user_id: int | None, now: datetime
) -> list[Revoked]:
    """Deactivate `rows` in the caller's transaction: audit, notice, claimed cases released."""
    done: list[Revoked] = []
    for m in rows:
        user = people.get_user(s, m.user_id)
        if user is None:
            continue
        people.deactivate(s, m, now=now, reason=reason)
        audit.record(
            s,
            action="membership.revoked",
            subject_type="user",
            subject_id=user.id,
            actor_user_id=actor_user_id,
            data={"role": m.role, "scope": m.scope_code, "reason": reason, "membership": m.id},
            at=now,
        )
        if m.role == Role.STAFF:
            _release_claims(rt, s, user_id=m.user_id, unit_code=m.scope_code, now=now)
        if user.can_message:
            row = orgs.scope_row(s, m.scope_kind, m.scope_code)
            notify.text_to_user(
                s,
                telegram_id=user.telegram_id,
                key=N_("revoke.you_lost"),
                now=now,
                role_zh=t("zh_CN", f"role.{m.role}"),
                role_en=t("en", f"role.{m.role}"),
                scope_zh=getattr(row, "name_zh", m.scope_code),
                scope_en=getattr(row, "name_en", m.scope_code),
                code=m.scope_code,
            )
        done.append(Revoked(user.id, user.telegram_id, user.display_name, m.role, m.scope_code))  # type: ignore[arg-type]
    s.flush()
    for r in done:
        identity.forget(rt, r.user_id)  # rights, /help and buttons change at once
    return done


def _release_claims(rt: Runtime, s: Session, *, user_id: int, unit_code: str, now: datetime) -> None:
    unit = orgs.unit_by_code(s, unit_code)
    if unit is None:
        return
    for case in worklists.owned_by(s, user_id, (CaseState.CLAIMED,), limit=1000):
        if case.unit_id == unit.id:
            lifecycle.transition(
                rt, s, case, "release", None, now=now, who=frozenset({lifecycle.ADMIN}),
                values={"owner_user_id": None, "claimed_at": None}, data={"reason": "owner_revoked"},
            )  # fmt: skip


def left_group(rt: Runtime, *, chat_telegram_id: int, user_telegram_id: int) -> list[Revoked]:
    """A member left (or was removed from) a bound group: the roles that group's unit gave
    them end. Nothing for a group bound to no unit, or somebody who held nothing there."""
    now = rt.clock.now()
    with rt.db.session() as s:
        chat = chats.get_chat(s, chat_telegram_id)
        unit = orgs.unit(s, chat.unit_id) if chat is not None and chat.unit_id else None
        user = people.get_user_by_telegram_id(s, user_telegram_id)
        if unit is None or user is None:
            return []
        codes = {unit.code}
        if unit.kind == UnitKind.COMMAND_ROOM and unit.street_id:
            street = orgs.street(s, unit.street_id)
            if street is not None:
                codes.add(street.code)
        rows = [
            m
            for m in people.active_memberships(s, user_id=user.id, scope_codes=codes)
            if m.role in (Role.STAFF, Role.DISPATCHER, Role.DEPARTMENT)
        ]
        return apply(rt, s, rows, reason=LEFT_GROUP, actor_user_id=None, now=now) if rows else []


def expire_removed_scopes(rt: Runtime, s: Session) -> list[Revoked]:
    """After an organisation import: roles whose scope left the file (or is inactive) end."""
    gone = [m for m in people.active_memberships(s) if not _scope_alive(s, m)]
    return apply(rt, s, gone, reason=ORG_REMOVED, actor_user_id=None, now=rt.clock.now()) if gone else []


def _scope_alive(s: Session, m: Membership) -> bool:
    row = orgs.scope_row(s, m.scope_kind, m.scope_code)
    return row is not None and getattr(row, "active", True)
