"""The work queue (/queue) and search (/find) for the people at a desk.

Dispatchers see their streets' open cases (those waiting for dispatch included), team staff
their teams', admins and supervisors of the district everything (a street supervisor their
street). A tap on a line opens the case's card in private with exactly the actions the
person may take now (lifecycle.allowed over their relations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.callbacks import (
    BadCallback,
    Claim,
    Confirm,
    Dispatch,
    DispatchMenu,
    NotFixed,
    Release,
    ReportIn,
    Work,
    parse,
)
from bot.cases import lifecycle
from bot.cases.cards import Names, buttons_for, case_view
from bot.desk import scopes
from bot.desk.buttons import DeskFix
from bot.errors import DomainError
from bot.i18n import t
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import cases, desk_queue, orgs, people
from storage.models import Case, Role, pk

PAGE = 10
FILTERS = (desk_queue.ALL, desk_queue.OVERDUE, desk_queue.UNCLAIMED, desk_queue.DUE_TODAY, desk_queue.WAITING)
FIND_LIMIT = 10


class StalePage(DomainError):
    key = "desk.queue_stale"


class FindUsage(DomainError):
    key = "desk.find_usage"


@dataclass(frozen=True)
class Line:
    case_id: int
    code: str
    state: str
    urgent: bool
    category: Names
    place: Names
    owner: str | None
    due_at: datetime | None


@dataclass(frozen=True)
class QueuePage:
    kind: str
    arg: int
    page: int
    lines: tuple[Line, ...]
    has_more: bool
    arg_name: Names | None = None


def _line(rt: Runtime, s: object, case: Case) -> Line:
    known = index.org(rt)
    category = known.category(case.category_id)
    grid = known.grid(case.grid_id)
    owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None  # type: ignore[arg-type]
    place = Names(grid.name_zh, grid.name_en) if grid else Names(case.address or "—", case.address or "—")
    return Line(
        pk(case),
        case.code,
        case.state,
        case.urgent,
        Names(category.name_zh, category.name_en) if category else Names("—", "—"),
        place,
        owner.display_name if owner else None,
        case.due_at,
    )


def queue(rt: Runtime, person: Person, *, kind: str = desk_queue.ALL, arg: int = 0, page: int = 0) -> QueuePage:
    """One page of the person's queue. A page past the end (the cases moved on) is refused."""
    where = scopes.sight(rt, person)
    now = rt.clock.now()
    district = index.org(rt).district
    with rt.db.read() as s:
        tz = ZoneInfo(district.timezone if district else rt.settings.timezone)
        today = now.astimezone(tz).date()
        day_end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=tz)
        rows = desk_queue.page(
            s,
            street_ids=where.street_filter if where.street_filter or not where.unit_filter else (),
            unit_ids=where.unit_filter,
            kind=kind,
            arg=arg,
            now=now,
            day_end=day_end,
            limit=PAGE + 1,
            offset=page * PAGE,
        )
        if page > 0 and not rows:
            raise StalePage(page=page + 1)
        lines = tuple(_line(rt, s, c) for c in rows[:PAGE])
    known = index.org(rt)
    arg_name = None
    if kind == desk_queue.TEAM and (unit := known.unit(arg)) is not None:
        arg_name = Names(unit.name_zh, unit.name_en)
    elif kind == desk_queue.GRID and (grid := known.grid(arg)) is not None:
        arg_name = Names(grid.name_zh, grid.name_en)
    return QueuePage(kind, arg, page, lines, len(rows) > PAGE, arg_name)


def choices(rt: Runtime, person: Person, kind: str) -> list[tuple[int, Names]]:
    """The teams or grids a person may filter their queue by."""
    where = scopes.sight(rt, person)
    known = index.org(rt)
    out: list[tuple[int, Names]] = []
    with rt.db.read() as s:
        if kind == desk_queue.TEAM:
            units = (
                [u for u in orgs.active_units(s) if u.kind == "team"]
                if where.street_filter is None
                else [u for sid in where.street_filter for u in orgs.teams_of_street(s, sid)]
            )
            units += [u for uid in where.unit_filter if (u := known.unit(uid)) is not None and u not in units]
            out = [(pk(u), Names(u.name_zh, u.name_en)) for u in units]
        else:
            grids = orgs.active_grids(s)
            if where.street_filter is not None:
                streets = set(where.street_filter)
                streets |= {u.street_id for uid in where.unit_filter if (u := known.unit(uid)) and u.street_id}
                grids = [g for g in grids if g.street_id in streets]
            out = [(pk(g), Names(g.name_zh, g.name_en)) for g in grids]
    return out


def find(rt: Runtime, person: Person, text: str) -> list[Line]:
    text = " ".join(text.split())[:64]
    if not text:
        raise FindUsage()
    where = scopes.sight(rt, person)
    with rt.db.read() as s:
        rows: list[Case] = []
        if desk_queue.CODE_PREFIX.fullmatch(text.upper()):  # a code as typed: its index first
            rows = desk_queue.search_code_prefix(
                s, text.upper(), street_ids=where.street_filter, unit_ids=where.unit_filter, limit=FIND_LIMIT
            )
        if not rows:
            rows = desk_queue.search(
                s, text, street_ids=where.street_filter, unit_ids=where.unit_filter, limit=FIND_LIMIT
            )
        return [_line(rt, s, c) for c in rows]


# --- the card a tap opens ----------------------------------------------------------------------


def _action_of(data: str) -> str | None:
    try:
        button = parse(data)
    except BadCallback:
        return None
    if isinstance(button, Claim):
        return "claim"
    if isinstance(button, Release):
        return "release"
    if isinstance(button, Work):
        return button.action
    if isinstance(button, Dispatch):
        return "dispatch"
    if isinstance(button, DispatchMenu):
        return {"teams": "dispatch", "originals": "duplicate", "reasons": "reject"}.get(button.menu)
    if isinstance(button, ReportIn):
        return "report_in"
    if isinstance(button, Confirm):
        return "confirm"
    if isinstance(button, NotFixed):
        return "not_fixed"
    return None


@dataclass(frozen=True)
class Opened:
    code: str
    rows: list[list[tuple[str, str]]]


def open_card(rt: Runtime, person: Person, case_id: int, lang: str) -> Opened:
    """The buttons of a case's card for this person: those of every card kind, kept only
    when the lifecycle allows the person the action now. Outsiders get CaseNotFound."""
    with rt.db.read() as s:
        case = cases.get_case(s, case_id)
        if case is None:
            raise lifecycle.CaseNotFound()
        who = lifecycle.relations(rt, s, person, case)
        if not lifecycle.may("see", who):
            raise lifecycle.CaseNotFound()
        units = [pk(u) for code in person.scopes(Role.DEPARTMENT) if (u := index.org(rt).active_unit(code))]
    view = case_view(rt, case_id)
    assert view is not None
    may = set(lifecycle.allowed(view.state, who))
    rows: list[list[tuple[str, str]]] = []
    seen: set[str] = set()
    for purpose in ("command", "team", "verify", "department"):
        viewer = units[0] if purpose == "department" and units else None
        for row in buttons_for(view, lang, purpose, viewer):
            kept = [(label, data) for label, data in row if _action_of(data) in may and data not in seen]
            seen.update(data for _, data in kept)
            if kept:
                rows.append(kept)
    if "recategorize" in may:
        rows.append([(t(lang, "desk.fix_button"), DeskFix(case_id).pack())])
    return Opened(view.code, rows)
