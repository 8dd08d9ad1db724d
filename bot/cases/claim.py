"""Claiming a case (认领): the first team member to press Claim owns it; releasing it."""

from __future__ import annotations

from dataclasses import dataclass

from bot import notify
from bot.cases import deadlines, workflow
from bot.cases.access import actors
from bot.errors import DomainError
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, cases, orgs, people
from storage.models import Case, CaseState, Role


class CaseNotFound(DomainError):
    key = "case.not_found"


class AlreadyClaimed(DomainError):
    key = "claim.taken"


class NotOnTeam(DomainError):
    key = "claim.not_on_team"


@dataclass(frozen=True)
class ClaimResult:
    case_id: int
    code: str
    owner_name: str


def _refresh_cards(s, case: Case, now) -> None:  # type: ignore[no-untyped-def]
    notify.refresh_cards(s, case_id=case.id, now=now)  # type: ignore[arg-type]


def _owner_name(s, case: Case) -> str:  # type: ignore[no-untyped-def]
    owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None
    return owner.display_name if owner else "—"


def claim(rt: Runtime, *, person: Person, case_id: int) -> ClaimResult:
    """Compare-and-set dispatched → claimed: of many presses at once, exactly one wins."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = cases.get_case(s, case_id)
        if case is None:
            raise CaseNotFound()
        if case.state == CaseState.CLAIMED:
            raise AlreadyClaimed(code=case.code, owner=_owner_name(s, case))
        who = actors(s, person, case)
        if workflow.TEAM not in who:
            raise NotOnTeam(code=case.code)
        move = workflow.check("claim", state=case.state, actors=who, code=case.code)
        from_state = case.state  # read first: the ORM update below syncs the loaded row
        won = cases.change_state(
            s,
            case_id=case_id,
            from_state=case.state,
            version=case.version,
            values={"state": move.target, "owner_user_id": person.user_id, "claimed_at": now, "updated_at": now},
        )
        if not won:
            s.expire_all()
            fresh = cases.get_case(s, case_id)
            assert fresh is not None
            raise AlreadyClaimed(code=fresh.code, owner=_owner_name(s, fresh))
        s.refresh(case)
        deadlines.replan(rt, s, case, now)
        audit.record(
            s,
            action="case.claimed",
            subject_type="case",
            subject_id=case_id,
            case_id=case_id,
            actor_user_id=person.user_id,
            from_state=from_state,
            to_state=move.target,
            at=now,
        )
        _refresh_cards(s, case, now)
        reporter = people.get_user(s, case.reporter_user_id) if case.reporter_user_id else None
        if reporter is not None and reporter.id != person.user_id and reporter.can_message:
            notify.text_to_user(
                s,
                telegram_id=reporter.telegram_id,
                key="claim.reporter_claimed",
                now=now,
                case_id=case_id,
                code=case.code,
            )
        return ClaimResult(case_id, case.code, person.name)


def release(rt: Runtime, *, person: Person, case_id: int) -> ClaimResult:
    """The owner (or a dispatcher) hands the case back to the team's queue."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = cases.get_case(s, case_id)
        if case is None:
            raise CaseNotFound()
        move = workflow.check("release", state=case.state, actors=actors(s, person, case), code=case.code)
        won = cases.change_state(
            s,
            case_id=case_id,
            from_state=case.state,
            version=case.version,
            values={"state": move.target, "owner_user_id": None, "claimed_at": None, "updated_at": now},
        )
        if not won:
            raise workflow.MoveNotAllowed(code=case.code)
        s.refresh(case)
        deadlines.became_unclaimed(rt, s, case, now)
        audit.record(
            s,
            action="case.released",
            subject_type="case",
            subject_id=case_id,
            case_id=case_id,
            actor_user_id=person.user_id,
            from_state=CaseState.CLAIMED,
            to_state=move.target,
            at=now,
        )
        _refresh_cards(s, case, now)
        return ClaimResult(case_id, case.code, person.name)


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str


def team_members(rt: Runtime, *, person: Person, code: str) -> tuple[int, str, list[Member]]:
    """For a dispatcher choosing a new owner: the case and the staff of its team."""
    with rt.db.read() as s:
        case = cases.get_case_by_code(s, code)
        if case is None:
            raise CaseNotFound()
        workflow.check("reassign", state=case.state, actors=actors(s, person, case), code=case.code)
        unit = orgs.unit(s, case.unit_id) if case.unit_id else None
        members = people.members_with_role(s, role=Role.STAFF, scope_code=unit.code) if unit else []
        return case.id, case.code, [Member(m.id, m.display_name) for m in members]  # type: ignore[misc]


def reassign(rt: Runtime, *, person: Person, case_id: int, user_id: int) -> ClaimResult:
    """A dispatcher gives the case to a named member of its team."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = cases.get_case(s, case_id)
        if case is None:
            raise CaseNotFound()
        move = workflow.check("reassign", state=case.state, actors=actors(s, person, case), code=case.code)
        unit = orgs.unit(s, case.unit_id) if case.unit_id else None
        member = people.get_user(s, user_id)
        members = {m.id for m in people.members_with_role(s, role=Role.STAFF, scope_code=unit.code)} if unit else set()
        if member is None or member.id not in members:
            raise NotOnTeam(code=case.code)
        from_state, previous = case.state, case.owner_user_id
        won = cases.change_state(
            s,
            case_id=case_id,
            from_state=from_state,
            version=case.version,
            values={"state": move.target, "owner_user_id": member.id, "claimed_at": now, "updated_at": now},
        )
        if not won:
            raise workflow.MoveNotAllowed(code=case.code)
        s.refresh(case)
        deadlines.replan(rt, s, case, now)
        audit.record(
            s,
            action="case.reassigned",
            subject_type="case",
            subject_id=case_id,
            case_id=case_id,
            actor_user_id=person.user_id,
            from_state=from_state,
            to_state=move.target,
            data={"from_user_id": previous, "to_user_id": member.id},
            at=now,
        )
        _refresh_cards(s, case, now)
        if member.can_message:
            notify.text_to_user(
                s, telegram_id=member.telegram_id, key="claim.assigned_to_you", now=now, case_id=case_id, code=case.code
            )
        return ClaimResult(case_id, case.code, member.display_name)
