"""Claiming a case (认领): the first team member to press Claim owns it; releasing it;
a dispatcher giving it to a named member of its team."""

from __future__ import annotations

from dataclasses import dataclass

from bot.cases import lifecycle
from bot.cases.lifecycle import CaseNotFound, NotOnTeam
from bot.errors import DomainError
from bot.i18n import N_
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import cases, orgs, people
from storage.models import Case, CaseState, Role, pk

__all__ = ["AlreadyClaimed", "CaseNotFound", "ClaimResult", "NotOnTeam", "claim", "reassign", "release"]


class AlreadyClaimed(DomainError):
    key = "claim.taken"


@dataclass(frozen=True)
class ClaimResult:
    case_id: int
    code: str
    owner_name: str


def _owner_name(s, case: Case) -> str:
    owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None
    return owner.display_name if owner else "—"


def claim(rt: Runtime, *, person: Person, case_id: int) -> ClaimResult:
    """Compare-and-set dispatched → claimed: of many presses at once, exactly one wins.
    Only a member of the team hears who won; anybody else learns nothing of the case."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = lifecycle.load(s, case_id)
        who = lifecycle.relations(rt, s, person, case)
        try:
            lifecycle.transition(
                rt, s, case, "claim", person, now=now, who=who,
                values={"owner_user_id": person.user_id, "claimed_at": now},
            )  # fmt: skip
        except lifecycle.MoveNotAllowed:
            if case.state == CaseState.CLAIMED:
                raise AlreadyClaimed(code=case.code, owner=_owner_name(s, case)) from None
            raise
        return ClaimResult(case_id, case.code, person.name)


def release(rt: Runtime, *, person: Person, case_id: int) -> ClaimResult:
    """The owner (or a dispatcher) hands the case back to the team's queue."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = lifecycle.load(s, case_id)
        lifecycle.transition(
            rt, s, case, "release", person, now=now, values={"owner_user_id": None, "claimed_at": None}
        )
        return ClaimResult(case_id, case.code, person.name)


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str


def _team_of(s, case: Case) -> list:
    unit = orgs.unit(s, case.unit_id) if case.unit_id else None
    return people.members_with_role(s, role=Role.STAFF, scope_code=unit.code) if unit else []


def team_members(rt: Runtime, *, person: Person, code: str) -> tuple[int, str, list[Member]]:
    """For a dispatcher choosing a new owner: the case and the staff of its team."""
    with rt.db.read() as s:
        case = cases.get_case_by_code(s, code)
        if case is None:
            raise CaseNotFound()
        lifecycle.check(rt, s, person, case, "reassign")
        return pk(case), case.code, [Member(m.id, m.display_name) for m in _team_of(s, case)]


def reassign(rt: Runtime, *, person: Person, case_id: int, user_id: int) -> ClaimResult:
    """A dispatcher gives the case to a named member of its team."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = lifecycle.load(s, case_id)
        who = lifecycle.check(rt, s, person, case, "reassign")
        member = next((m for m in _team_of(s, case) if m.id == user_id), None)
        if member is None:
            raise NotOnTeam(code=case.code)
        previous = case.owner_user_id
        lifecycle.transition(
            rt, s, case, "reassign", person, now=now, who=who,
            values={"owner_user_id": member.id, "claimed_at": now},
            data={"from_user_id": previous, "to_user_id": member.id},
        )  # fmt: skip
        lifecycle.tell(s, case, member.id, N_("claim.assigned_to_you"), now)
        return ClaimResult(case_id, case.code, member.display_name)
