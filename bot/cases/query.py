"""Seeing work: who may look at a case, its timeline, and each person's work list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.cases import lifecycle
from bot.cases.cards import CaseView, view_in
from bot.i18n import bilingual
from bot.org import index
from bot.people.roles import Person
from bot.rating.ratings import StaffRating, ratings_for_staff_in
from bot.runtime import Runtime
from storage import cases, casework, external, people, worklists
from storage.cases import OPEN_STATES
from storage.models import Case, CaseSource, CaseState, Role, pk

PAGE = 8
# Audit actions a case's timeline shows by name (others are shown as recorded).
TIMELINE_ACTIONS = (
    "case.reported",
    "case.dispatched",
    "case.claimed",
    "case.released",
    "case.supported",
    "case.rejected",
    "case.marked_duplicate",
    "case.reassigned",
    "case.note",
    "case.returned",
    "case.escalated",
    "case.reported_in",
    "case.department_reply",
    "case.resolved",
    "case.not_fixed",
    "case.closed",
    "case.extension_requested",
    "case.extension_approved",
    "case.extension_refused",
    "case.verify_overdue",
    "case.due_set",
    "case.supervised",
    "case.reopened",
    "case.recategorized",  # issue 11
)


@dataclass(frozen=True)
class Event:
    at: datetime
    action: str
    actor: str | None
    from_state: str | None
    to_state: str | None
    note: str | None
    due: datetime | None = None  # case.due_set: the due time set, and the one it replaced
    previous_due: datetime | None = None
    # case.extension_requested: how much more time (in its unit), and the due time asked for
    more: int | None = None
    unit: str | None = None
    asked_due: datetime | None = None


@dataclass(frozen=True)
class Caller:
    """A 12345 caller's contact: dispatchers see it in /case, nobody and nothing else."""

    name: str
    phone: str
    ticket_no: str


@dataclass(frozen=True)
class CaseDetail:
    view: CaseView
    events: tuple[Event, ...]
    ratings: tuple[StaffRating, ...] = ()
    caller: Caller | None = None


@dataclass(frozen=True)
class TaskLine:
    case_id: int
    code: str
    state: str
    urgent: bool
    category_zh: str
    category_en: str
    created_at: datetime
    due_at: datetime | None = None
    owner_name: str | None = None

    def category(self, lang: str) -> str:
        return bilingual(lang, self.category_zh, self.category_en)


@dataclass(frozen=True)
class WorkList:
    kind: str  # mine, team, street
    lines: tuple[TaskLine, ...]
    page: int
    has_more: bool


def _moment(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _asked(s: Session, data: dict[str, Any]) -> tuple[int | None, str | None, datetime | None]:
    """What a request for more time asked: the amount in its unit and the due time. A request
    recorded before units existed counted plain hours and kept its due time on the request."""
    if "unit" in data:
        return data.get("more"), str(data["unit"]), _moment(data.get("due_at"))
    request = casework.get_extension(s, int(data["request"])) if data.get("request") else None
    return data.get("hours"), "h", request.new_due_at if request is not None else None


def may_see(rt: Runtime, s: Session, person: Person, case: Case) -> bool:
    """Those with any relation to the case see it (see lifecycle.RULES); nobody else."""
    return lifecycle.may("see", lifecycle.relations(rt, s, person, case))


def detail(rt: Runtime, *, person: Person, code: str) -> CaseDetail | None:
    """The case with its timeline (and, for staff, its ratings), or None when it does not
    exist or is not theirs to see: one unit of work."""
    with rt.db.read() as s:
        case = cases.get_case_by_code(s, code)
        if case is None:
            return None
        who = lifecycle.relations(rt, s, person, case)
        if not lifecycle.may("see", who):
            return None
        timeline = worklists.timeline(s, pk(case))
        actors = people.users_by_id(s, (e.actor_user_id for e in timeline))
        events = []
        for e in timeline:
            name = None
            if e.actor_user_id is not None:
                actor = actors.get(e.actor_user_id)
                name = actor.display_name if actor else "?"
            due = previous = None
            data = e.data or {}
            if e.action == "case.due_set":
                due, previous = _moment(data.get("due_at")), _moment(data.get("previous"))
            more = asked = None
            unit = None
            if e.action == "case.extension_requested":
                more, unit, asked = _asked(s, data)
            events.append(
                Event(e.at, e.action, name, e.from_state, e.to_state, e.note, due, previous, more, unit, asked)
            )
        # Residents never see another's rating; staff do.
        staff = () if person.is_resident else tuple(ratings_for_staff_in(s, rt, pk(case)))
        caller = None
        if case.source == CaseSource.HOTLINE and who & {lifecycle.DISPATCHER, lifecycle.ADMIN}:
            ticket = external.ticket_of_case(s, pk(case))
            if ticket is not None and (ticket.caller_name or ticket.caller_phone):
                caller = Caller(ticket.caller_name or "", ticket.caller_phone or "", ticket.ticket_no or "")
        return CaseDetail(view_in(s, rt, case), tuple(events), staff, caller)


def list_kinds(person: Person) -> list[str]:
    """Which lists /tasks shows this person, in order."""
    kinds = []
    if person.has_role(Role.STAFF) or person.has_role(Role.DEPARTMENT) or person.has_role(Role.DISPATCHER):
        kinds.append("mine")
    if person.has_role(Role.STAFF):
        kinds.append("team")
    if person.has_role(Role.DISPATCHER):
        kinds.append("street")
    return kinds


def work_list(rt: Runtime, *, person: Person, kind: str, page: int = 0) -> WorkList:
    """mine: cases I own. team: my teams' unclaimed cases. street: my streets' open cases."""
    with rt.db.read() as s:
        return _work_list_in(s, rt, person, kind, page)


def work_lists(rt: Runtime, *, person: Person, kinds: list[str]) -> list[WorkList]:
    """The first page of each of these lists (/tasks), in one unit of work."""
    with rt.db.read() as s:
        return [_work_list_in(s, rt, person, kind, 0) for kind in kinds]


def _work_list_in(s: Session, rt: Runtime, person: Person, kind: str, page: int) -> WorkList:
    offset = page * PAGE
    if kind == "street":
        known = index.org(rt)
        street_ids = [st.id for code in person.scopes(Role.DISPATCHER) if (st := known.active_street(code))]
        rows = worklists.open_in_streets(s, street_ids, OPEN_STATES, limit=PAGE + 1, offset=offset, lines=True)  # type: ignore[arg-type]
    elif kind == "team":
        unit_ids = [u.id for code in person.scopes(Role.STAFF) if (u := index.org(rt).active_unit(code))]
        waiting = (CaseState.DISPATCHED, CaseState.REOPENED)
        rows = worklists.unclaimed_for_units(s, unit_ids, waiting, limit=PAGE + 1, offset=offset, lines=True)  # type: ignore[arg-type]
    else:
        rows = worklists.owned_by(s, person.user_id, OPEN_STATES, limit=PAGE + 1, offset=offset, lines=True)
    lines = []
    owners = people.users_by_id(s, (c.owner_user_id for c in rows[:PAGE])) if kind != "mine" else {}
    for case in rows[:PAGE]:
        category = index.org(rt).category(case.category_id) if case.category_id else None
        owner = owners.get(case.owner_user_id) if case.owner_user_id else None
        lines.append(
            TaskLine(
                case.id,
                case.code,
                case.state,
                case.urgent,
                category.name_zh if category else "—",
                category.name_en if category else "—",
                case.created_at,
                case.due_at,
                owner.display_name if owner is not None else None,
            )
        )
    return WorkList(kind, tuple(lines), page, len(rows) > PAGE)
