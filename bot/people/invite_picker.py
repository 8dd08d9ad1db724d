"""``/invite`` without arguments: the administrator picks role → street → community → grid
(workers), team (staff), street (dispatchers, supervisors), department or district, one
button at a time; the last pick names the scope, and the invite is made exactly as
``/invite ROLE SCOPE`` makes it (:func:`bot.people.onboarding.create_invite`).

A pick is a typed button (:class:`bot.callbacks.InvitePick`); one that names a row that is
gone, inactive or does not fit the role is :class:`bot.callbacks.BadCallback` (the usual
polite refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.callbacks import INVITE_LEVELS, BadCallback, InvitePick
from bot.i18n import N_
from bot.runtime import Runtime
from storage import orgs
from storage.models import Role, UnitKind

# The roles offered, in the order an administrator usually needs them.
PICK_ROLES = (Role.WORKER, Role.STAFF, Role.DISPATCHER, Role.DEPARTMENT, Role.SUPERVISOR)
assert set(INVITE_LEVELS) >= {"role", "street", "community", "grid", "unit", "district"}


@dataclass(frozen=True)
class Option:
    """One button: the name to show and the pick it makes."""

    name_zh: str
    name_en: str
    pick: InvitePick


@dataclass(frozen=True)
class Step:
    """What to ask next (``prompt`` is ``invite.pick_<level>``), or, when ``scope_code`` is
    set, the scope the invite is for. ``place_zh/en`` name what was picked last."""

    role: str
    prompt: str = ""
    options: tuple[Option, ...] = ()
    scope_code: str | None = None
    place_zh: str = ""
    place_en: str = ""


def next_step(rt: Runtime, pick: InvitePick) -> Step:
    role, level, ref = pick.role, pick.level, pick.ref
    with rt.db.session() as s:
        if level == "role":
            if role == Role.DEPARTMENT:
                units = [u for u in orgs.active_units(s) if u.kind == UnitKind.DEPARTMENT]
                options = [Option(u.name_zh, u.name_en, InvitePick(role, "unit", u.id or 0)) for u in units]
                return Step(role, N_("invite.pick_department"), tuple(options))
            options = [
                Option(st.name_zh, st.name_en, InvitePick(role, "street", st.id or 0)) for st in orgs.active_streets(s)
            ]
            if role == Role.SUPERVISOR and (d := orgs.district(s)) is not None:
                options.insert(0, Option(d.name_zh, d.name_en, InvitePick(role, "district", d.id or 0)))
            return Step(role, N_("invite.pick_street"), tuple(options))
        if level == "street":
            street = orgs.street(s, ref)
            if street is None or not street.active:
                raise BadCallback(pick)
            zh, en = street.name_zh, street.name_en
            if role == Role.WORKER:
                options = [
                    Option(c.name_zh, c.name_en, InvitePick(role, "community", c.id or 0))
                    for c in orgs.communities_of_street(s, ref)
                ]
                return Step(role, N_("invite.pick_community"), tuple(options), place_zh=zh, place_en=en)
            if role == Role.STAFF:
                options = [
                    Option(u.name_zh, u.name_en, InvitePick(role, "unit", u.id or 0))
                    for u in orgs.teams_of_street(s, ref)
                ]
                return Step(role, N_("invite.pick_team"), tuple(options), place_zh=zh, place_en=en)
            if role in (Role.DISPATCHER, Role.SUPERVISOR):
                return Step(role, scope_code=street.code, place_zh=zh, place_en=en)
            raise BadCallback(pick)
        if level == "community" and role == Role.WORKER:
            community = orgs.community(s, ref)
            if community is None or not community.active:
                raise BadCallback(pick)
            options = [
                Option(g.name_zh, g.name_en, InvitePick(role, "grid", g.id or 0))
                for g in orgs.grids_of_community(s, ref)
            ]
            return Step(
                role, N_("invite.pick_grid"), tuple(options), place_zh=community.name_zh, place_en=community.name_en
            )
        if level == "grid" and role == Role.WORKER:
            grid = orgs.grid(s, ref)
            if grid is None or not grid.active:
                raise BadCallback(pick)
            return Step(role, scope_code=grid.code)
        if level == "unit" and role in (Role.STAFF, Role.DEPARTMENT):
            unit = orgs.unit(s, ref)
            wanted = UnitKind.TEAM if role == Role.STAFF else UnitKind.DEPARTMENT
            if unit is None or not unit.active or unit.kind != wanted:
                raise BadCallback(pick)
            return Step(role, scope_code=unit.code)
        if level == "district" and role == Role.SUPERVISOR:
            d = orgs.district(s)
            if d is None or d.id != ref:
                raise BadCallback(pick)
            return Step(role, scope_code=d.code)
    raise BadCallback(pick)
