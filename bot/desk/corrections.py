"""Corrections at registration (立案): a wrongly chosen category changed on an existing case.

Through the lifecycle (the `recategorize` rule: dispatchers and admins, while the case is
open), audited as `case.recategorized`, every card refreshed. The team and the time limit
follow the category:
  - not yet dispatched: the suggested team changes;
  - same team: the due time is recomputed with the new limit from the dispatch;
  - another team, nobody has claimed it yet: the case moves to the new team, whose group
    gets the card with Claim; the old team's card loses its buttons; the due time runs
    with the new limit from this new dispatch.
A claimed case cannot change team here (release it first); a closed case is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from bot import notify
from bot.cases import deadlines, lifecycle
from bot.errors import DomainError
from bot.org import index, routing
from bot.org.workcalendar import LimitUnit
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, desk_corrections, orgs
from storage.models import CaseState, Category, pk


class SameCategory(DomainError):
    key = "desk.fix_same"


class ReleaseFirst(DomainError):
    key = "desk.fix_release_first"


class UnknownCategory(DomainError):
    key = "desk.fix_unknown_category"


@dataclass(frozen=True)
class Corrected:
    code: str
    category_id: int
    old_unit_id: int | None
    unit_id: int | None
    team_changed: bool


def check(rt: Runtime, person: Person, case_id: int) -> None:
    """May this person correct this case's category now? (Refusals are the lifecycle's.)"""
    with rt.db.read() as s:
        lifecycle.check(rt, s, person, lifecycle.load(s, case_id), "recategorize")


def categories(rt: Runtime) -> list[Category]:
    with rt.db.read() as s:
        return orgs.active_categories(s)


def recategorize(rt: Runtime, person: Person, case_id: int, category_id: int) -> Corrected:
    now = rt.clock.now()
    with rt.db.session() as s:
        case = lifecycle.load(s, case_id)
        who = lifecycle.check(rt, s, person, case, "recategorize")
        category = orgs.category(s, category_id)
        if category is None or not category.active:
            raise UnknownCategory()
        if case.category_id == category.id:
            raise SameCategory(code=case.code)
        teams = orgs.teams_of_street(s, case.street_id) if case.street_id else []
        new_team = routing.route(category.platform_id, teams)
        old_category, old_unit = case.category_id, case.unit_id
        team_changed = False
        case.category_id = pk(category)
        if case.state in (CaseState.REPORTED, CaseState.RETURNED):
            case.suggested_unit_id = new_team.id if new_team else None
        elif new_team is not None and new_team.id != case.unit_id:
            if case.owner_user_id is not None or case.state not in (CaseState.DISPATCHED, CaseState.REOPENED):
                raise ReleaseFirst(code=case.code)
            team_changed = True
            old_chat = index.unit_group(rt, s, old_unit)
            if old_chat is not None:
                desk_corrections.retire_cards(s, pk(case), old_chat, notify.TEAM)
            case.unit_id = new_team.id
            case.dispatched_at = now
            deadlines.start_clock(rt, s, case, now)  # the new limit from the new dispatch
            notify.card_to_unit(rt, s, case=case, unit_id=new_team.id, purpose=notify.TEAM, now=now)
        elif case.deadline_started_at is not None:
            clock = deadlines.street_clock(rt, s, case.street_id)
            due = clock.calendar.due_time(
                case.deadline_started_at, category.limit_value, cast(LimitUnit, category.limit_unit), category.urgent
            )
            if due != case.due_at:
                audit.record(
                    s, action="case.due_set", subject_type="case", subject_id=case.id, case_id=case.id,
                    note="recategorized", data={"due_at": due.isoformat(),
                                                "previous": case.due_at.isoformat() if case.due_at else None},
                    at=now,
                )  # fmt: skip
                case.due_at = due
                case.reminders_done = [k for k in (case.reminders_done or []) if k in deadlines.CLAIM_KINDS]
                case.rung = 0
        s.add(case)
        lifecycle.act(
            rt, s, case, "recategorize", person, now=now, event="case.recategorized", who=who,
            data={"from_category": old_category, "to_category": category.id, "from_unit": old_unit,
                  "to_unit": case.unit_id, "team_changed": team_changed},
        )  # fmt: skip
        return Corrected(case.code, pk(category), old_unit, case.unit_id, team_changed)
