"""``/invite`` without arguments: the administrator picks role → street → community → grid
(workers), team (staff), street (dispatchers, supervisors), department or district, one
button at a time; the last pick names the scope, and the invite is made exactly as
``/invite ROLE SCOPE`` makes it (:func:`bot.people.onboarding.create_invite`). Each step
can go back to the one before it, and a long list (a street with many communities) comes
in pages of :data:`PAGE_SIZE`.

A pick is a typed button (:class:`bot.callbacks.InvitePick`); one that names a row that is
gone, inactive or does not fit the role is :class:`bot.callbacks.BadCallback` (the usual
polite refusal).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.callbacks import INVITE_LEVELS, BadCallback, InvitePick
from bot.i18n import N_, t_plain
from bot.runtime import Runtime
from storage import orgs
from storage.models import Role, UnitKind

# The roles offered, in the order an administrator usually needs them.
PICK_ROLES = (Role.WORKER, Role.STAFF, Role.DISPATCHER, Role.DEPARTMENT, Role.SUPERVISOR)
assert set(INVITE_LEVELS) >= {"top", "role", "street", "community", "grid", "unit", "district"}
# Options a picker shows at once: a chat screen of buttons, two a row when names are short.
PAGE_SIZE = 8


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
    back: InvitePick | None = None  # the pick that shows the step before this one
    at: InvitePick | None = None  # the pick that shows this step (its other pages are pages of it)


@dataclass(frozen=True)
class Page:
    """One page of a step's options; `page` is the one shown (clamped to those there are)."""

    options: tuple[Option, ...]
    page: int
    has_prev: bool
    has_next: bool


def page_of(step: Step, page: int) -> Page:
    """The options of `step` on `page` (a page past the end, after the list shrank, shows the last)."""
    last = max((len(step.options) - 1) // PAGE_SIZE, 0)
    page = min(max(page, 0), last)
    start = page * PAGE_SIZE
    return Page(step.options[start : start + PAGE_SIZE], page, page > 0, page < last)


def first_step(role: str = PICK_ROLES[0]) -> Step:
    """The choice of role (``role`` only fills the typed pick; it is not used)."""
    options = tuple(
        Option(t_plain("zh_CN", f"role.{r}"), t_plain("en", f"role.{r}"), InvitePick(r, "role", 0)) for r in PICK_ROLES
    )
    return Step(role, N_("invite.pick_role"), options, at=InvitePick(role, "top", 0))


def next_step(rt: Runtime, pick: InvitePick) -> Step:
    """What `pick` leads to: the next choice, or the scope of the invite."""
    if pick.level == "top":
        return first_step(pick.role)
    return replace(_step(rt, pick), at=pick)


def _step(rt: Runtime, pick: InvitePick) -> Step:
    role, level, ref = pick.role, pick.level, pick.ref
    with rt.db.session() as s:
        if level == "role":
            if role == Role.DEPARTMENT:
                units = [u for u in orgs.active_units(s) if u.kind == UnitKind.DEPARTMENT]
                options = [Option(u.name_zh, u.name_en, InvitePick(role, "unit", u.id or 0)) for u in units]
                return Step(role, N_("invite.pick_department"), tuple(options), back=InvitePick(role, "top", 0))
            options = [
                Option(st.name_zh, st.name_en, InvitePick(role, "street", st.id or 0)) for st in orgs.active_streets(s)
            ]
            if role == Role.SUPERVISOR and (d := orgs.district(s)) is not None:
                options.insert(0, Option(d.name_zh, d.name_en, InvitePick(role, "district", d.id or 0)))
            return Step(role, N_("invite.pick_street"), tuple(options), back=InvitePick(role, "top", 0))
        if level == "street":
            street = orgs.street(s, ref)
            if street is None or not street.active:
                raise BadCallback(pick)
            zh, en = street.name_zh, street.name_en
            back = InvitePick(role, "role", 0)
            if role == Role.WORKER:
                options = [
                    Option(c.name_zh, c.name_en, InvitePick(role, "community", c.id or 0))
                    for c in orgs.communities_of_street(s, ref)
                ]
                return Step(role, N_("invite.pick_community"), tuple(options), place_zh=zh, place_en=en, back=back)
            if role == Role.STAFF:
                options = [
                    Option(u.name_zh, u.name_en, InvitePick(role, "unit", u.id or 0))
                    for u in orgs.teams_of_street(s, ref)
                ]
                return Step(role, N_("invite.pick_team"), tuple(options), place_zh=zh, place_en=en, back=back)
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
                role,
                N_("invite.pick_grid"),
                tuple(options),
                place_zh=community.name_zh,
                place_en=community.name_en,
                back=InvitePick(role, "street", community.street_id),
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
