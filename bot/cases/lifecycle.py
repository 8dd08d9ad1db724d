"""The case lifecycle, in one place: states and their kinds, the moves between them, who a
person is to a case, what each of those relations may do, and the one `transition()` that
applies every move.

    reported ──dispatch──► dispatched ──claim──► claimed ──resolve──► resolved ──confirm──► closed
       │  └─reject──► rejected                     │  ▲  │                  │
       └──duplicate──► duplicate        release ◄──┘  │  └─escalate─► escalated (─deescalate─► claimed)
                                        return ──► returned ──dispatch──► dispatched
                                                  not_fixed ──► reopened ──claim──► claimed
                                                  closed ──reopen (a bad rating's follow-up)──► reopened

Reading order for a newcomer: `STATE_KINDS` (storage.models.CaseState) → `MOVES` → `RULES`
(actions that change no state) → `relations()` → `authorize()` → `transition()`/`act()`.
Due times and reminders: bot/cases/deadlines.py, called from `_replan` below. Ratings:
bot/rating/ratings.py, whose rights come from `RULES` here.

Rights are checked before state, always: somebody with no relation to a case that allows the
action learns nothing about it (not its state, not its owner), whatever they press or type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot import notify
from bot.cases import deadlines
from bot.errors import DomainError
from bot.i18n import N_
from bot.interop import webhooks
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, cases, casework, people
from storage.models import Case, Role, Unit, pk
from storage.models import CaseState as S

# --- states -------------------------------------------------------------------------------

ALL_STATES: tuple[str, ...] = tuple(S.KIND)
OPEN_STATES: tuple[str, ...] = S.NOT_FINAL  # open or waiting: the case is not over
FINAL_STATES: tuple[str, ...] = S.FINAL
ACTIVE_STATES: tuple[str, ...] = tuple(x for x, k in S.KIND.items() if k == "open")  # somebody must act


def kind(state: str) -> str:
    return S.KIND[state]


def is_open(state: str) -> bool:
    return state in OPEN_STATES


# --- relations: who a person is to a case ---------------------------------------------------

REPORTER = "reporter"  # filed it
GRID_WORKER = "grid_worker"  # a worker of the case's grid
OWNER = "owner"  # the staff member holding it
TEAM = "team"  # a member of the team it is dispatched to
DISPATCHER = "dispatcher"  # of the case's street (its command room)
DEPARTMENT = "department"  # staff of a department the case was whistled to
SUPERVISOR = "supervisor"  # of the case's street or district
ADMIN = "admin"
SYSTEM = "system"  # the bot itself (auto-dispatch, sweeps)
RESIDENT = "resident"  # somebody with no working relation to the case: may rate it

# Relations of people who work on or oversee a case: they never rate it.
STAFF_SIDE = frozenset({GRID_WORKER, OWNER, TEAM, DISPATCHER, DEPARTMENT, SUPERVISOR})


def relations(rt: Runtime, s: Session, person: Person | None, case: Case) -> frozenset[str]:
    """Every relation `person` holds to `case`, computed once per check (the organisation
    from memory; the database only for a department's whistles)."""
    if person is None:
        return frozenset({SYSTEM})
    found: set[str] = set()
    if person.is_admin:
        found.add(ADMIN)
    if case.reporter_user_id is not None and case.reporter_user_id == person.user_id:
        found.add(REPORTER)
    if person.memberships:
        scopes = {(m.role, m.scope_code) for m in person.memberships}
        known = index.org(rt)
        unit = known.unit(case.unit_id)
        if unit is not None and (Role.STAFF, unit.code) in scopes:
            found.add(TEAM)
            # An owner whose role in the team was revoked owns nothing any more.
            if case.owner_user_id is not None and case.owner_user_id == person.user_id:
                found.add(OWNER)
        street = known.street(case.street_id)
        if street is not None:
            if (Role.DISPATCHER, street.code) in scopes:
                found.add(DISPATCHER)
            if (Role.SUPERVISOR, street.code) in scopes:
                found.add(SUPERVISOR)
        if known.district is not None and (Role.SUPERVISOR, known.district.code) in scopes:
            found.add(SUPERVISOR)
        grid = known.grid(case.grid_id)
        if grid is not None and (Role.WORKER, grid.code) in scopes:
            found.add(GRID_WORKER)
        departments = {code for role, code in scopes if role == Role.DEPARTMENT}
        if departments and case.id is not None:
            for whistle in casework.whistles_of(s, case.id):
                dept = known.unit(whistle.unit_id)
                if dept is not None and dept.code in departments:
                    found.add(DEPARTMENT)
                    break
    if not found & STAFF_SIDE:
        found.add(RESIDENT)
    return frozenset(found)


# --- refusals -----------------------------------------------------------------------------


class CaseNotFound(DomainError):
    """No such case, or none this person may know of: the two look the same on purpose."""

    key = "case.not_found"


class ActorNotAllowed(DomainError):
    """The person knows the case but may not do this to it."""

    key = "error.not_allowed"


class MoveNotAllowed(DomainError):
    """The case is not in a state this action starts from (it has moved on)."""

    key = "case.moved_on"


class NotOnTeam(ActorNotAllowed):
    key = "claim.not_on_team"


class NotDispatcher(ActorNotAllowed):
    key = "dispatch.not_allowed"


# --- the table: moves (change the state) and rules (actions that do not) ----------------------


@dataclass(frozen=True)
class Move:
    action: str
    source: tuple[str, ...]
    target: str
    by: frozenset[str]
    event: str  # the audit action it records
    refused: type[ActorNotAllowed] = ActorNotAllowed
    tell_reporter: str | None = None  # message key for the reporter, if they should hear of it
    tell_owner: str | None = None  # message key for the owner (when somebody else moved it)


@dataclass(frozen=True)
class Rule:
    """An action that changes no state: who may take it, and in which states."""

    action: str
    states: tuple[str, ...]
    by: frozenset[str]
    refused: type[ActorNotAllowed] = ActorNotAllowed


def _by(*relations: str) -> frozenset[str]:
    return frozenset(relations)


COMMAND = _by(DISPATCHER, ADMIN)

MOVES: tuple[Move, ...] = (
    Move("dispatch", (S.REPORTED, S.RETURNED), S.DISPATCHED, _by(DISPATCHER, ADMIN, SYSTEM), "case.dispatched", NotDispatcher),
    Move("reject", (S.REPORTED, S.RETURNED), S.REJECTED, COMMAND, "case.rejected", NotDispatcher),
    Move("duplicate", (S.REPORTED, S.RETURNED, S.DISPATCHED), S.DUPLICATE, COMMAND, "case.marked_duplicate", NotDispatcher),
    Move("claim", (S.DISPATCHED, S.REOPENED), S.CLAIMED, _by(TEAM), "case.claimed", NotOnTeam, tell_reporter=N_("claim.reporter_claimed")),
    Move("release", (S.CLAIMED,), S.DISPATCHED, _by(OWNER, DISPATCHER, ADMIN), "case.released"),
    Move("reassign", (S.CLAIMED, S.DISPATCHED, S.REOPENED), S.CLAIMED, COMMAND, "case.reassigned"),
    Move("return", (S.DISPATCHED, S.CLAIMED), S.RETURNED, _by(OWNER, TEAM), "case.returned"),
    Move("escalate", (S.CLAIMED,), S.ESCALATED, _by(OWNER), "case.escalated"),
    Move("deescalate", (S.ESCALATED,), S.CLAIMED, _by(OWNER, DISPATCHER, ADMIN), "case.deescalated"),
    Move("resolve", (S.CLAIMED, S.ESCALATED, S.REOPENED), S.RESOLVED, _by(OWNER), "case.resolved"),
    Move("confirm", (S.RESOLVED,), S.CLOSED, _by(REPORTER, DISPATCHER, ADMIN), "case.closed",
         tell_reporter=N_("work.reporter_closed"), tell_owner=N_("work.owner_closed")),
    Move("not_fixed", (S.RESOLVED,), S.REOPENED, _by(REPORTER, DISPATCHER, ADMIN), "case.not_fixed",
         tell_owner=N_("work.owner_not_fixed")),
    Move("reopen", (S.CLOSED,), S.REOPENED, COMMAND, "case.reopened"),
)  # fmt: skip

WORKING_STATES = (S.CLAIMED, S.ESCALATED, S.REOPENED)

RULES: tuple[Rule, ...] = (
    Rule("see", ALL_STATES, _by(REPORTER, GRID_WORKER, OWNER, TEAM, DISPATCHER, DEPARTMENT, SUPERVISOR, ADMIN)),
    Rule("note", ACTIVE_STATES, _by(OWNER, TEAM, DEPARTMENT, DISPATCHER, ADMIN)),
    Rule("extend", WORKING_STATES, _by(OWNER)),
    Rule("decide_extension", OPEN_STATES, COMMAND),
    Rule("report_in", OPEN_STATES, _by(DEPARTMENT)),
    Rule("department_reply", OPEN_STATES, _by(DEPARTMENT)),
    Rule("ratelink", tuple(x for x in ALL_STATES if x not in (S.REJECTED, S.DUPLICATE)),
         _by(GRID_WORKER, OWNER, TEAM, DISPATCHER, ADMIN, SYSTEM)),  # SYSTEM: the hotline's API (issue 13)
    Rule("rate", (S.CLOSED,), _by(RESIDENT)),
    Rule("follow_up", ALL_STATES, COMMAND),
    Rule("verify_overdue", (S.RESOLVED,), _by(SYSTEM)),
    Rule("recategorize", ACTIVE_STATES, COMMAND),  # issue 11: correct the category (bot/desk/corrections.py)
)  # fmt: skip

_MOVES = {m.action: m for m in MOVES}
_RULES = {r.action: r for r in RULES}


def move(action: str) -> Move:
    return _MOVES[action]


def rule(action: str) -> Rule:
    return _RULES[action]


def may(action: str, who: Iterable[str]) -> bool:
    """Rights only (no state): does any of these relations allow the action?"""
    spec = _MOVES.get(action) or _RULES[action]
    return bool(spec.by & set(who))


def authorize(action: str, who: frozenset[str], case: Case) -> Move | Rule:
    """Rights first, then state. Raises the typed refusal; returns the move or rule."""
    spec: Move | Rule = _MOVES.get(action) or _RULES[action]
    if not spec.by & who:
        if not _RULES["see"].by & who and SYSTEM not in who:
            raise CaseNotFound()  # an outsider: not even the code is confirmed
        raise spec.refused(code=case.code)
    states = spec.source if isinstance(spec, Move) else spec.states
    if case.state not in states:
        raise MoveNotAllowed(code=case.code, state=case.state)
    return spec


def allowed(state: str, who: Iterable[str]) -> list[str]:
    """Every action (move or rule) these relations allow in this state, in table order."""
    who = set(who)
    moves = [m.action for m in MOVES if state in m.source and m.by & who]
    rules = [r.action for r in RULES if state in r.states and r.by & who]
    return moves + rules


def load(s: Session, case_id: int) -> Case:
    case = cases.get_case(s, case_id)
    if case is None:
        raise CaseNotFound()
    return case


def check(rt: Runtime, s: Session, person: Person | None, case: Case, action: str) -> frozenset[str]:
    """Authorize `action` for `person` on `case`; their relations, for what follows."""
    who = relations(rt, s, person, case)
    authorize(action, who, case)
    return who


# --- applying a move ---------------------------------------------------------------------------


def transition(
    rt: Runtime,
    s: Session,
    case: Case,
    action: str,
    person: Person | None,
    *,
    now: datetime,
    values: dict[str, Any] | None = None,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    who: frozenset[str] | None = None,
    skip_cards: frozenset[tuple[int, str]] = frozenset(),
    tell_params: dict[str, Any] | None = None,
) -> str:
    """Apply one move in the caller's transaction and return the state it left.

    Rights (unless `who` was checked already), then a compare-and-set on state and version
    (of two racing, one wins; the loser gets `MoveNotAllowed` with the case as it now is),
    the audit event, due time and reminders replanned, every posted card refreshed, and the
    reporter and owner told as the move declares. Cards and notices beyond these (a new
    team's card, a verification request) are the caller's, in the same transaction.
    """
    spec = move(action)
    if who is None:
        who = relations(rt, s, person, case)
    authorize(action, who, case)
    from_state = case.state
    paused_since = case.resolved_at if from_state == S.RESOLVED else None
    s.flush()  # what the caller changed on the case before the move is written apart, first
    # The move and the clock it replans, written by one compare-and-set (not flushed by a query
    # on the way: that would be a plain UPDATE). The replan's events wait for the move's own:
    # a lost race writes none of them, and the timeline reads in order.
    with s.no_autoflush, audit.held(s) as replanned:
        for name, value in {"state": spec.target, "updated_at": now, **(values or {})}.items():
            setattr(case, name, value)
        _replan(rt, s, case, spec, paused_since, now)
        won = cases.change_state(s, case)
    if not won:
        raise MoveNotAllowed(code=case.code, state=case.state)
    moved = audit.event_row(
        action=spec.event, subject_type="case", subject_id=case.id, case_id=case.id,
        actor_user_id=person.user_id if person else None, from_state=from_state, to_state=spec.target,
        note=note, data=data, at=now,
    )  # fmt: skip
    audit.write(s, [moved, *replanned])
    if spec.action in webhooks.MOVE_EVENTS:  # the outside hears of it in the same transaction
        webhooks.case_event(rt, s, case, webhooks.MOVE_EVENTS[spec.action], now)
    notify.refresh_cards(s, case_id=pk(case), now=now, skip=skip_cards)
    actor_id = person.user_id if person else None
    told = [case.reporter_user_id if spec.tell_reporter else None, case.owner_user_id if spec.tell_owner else None]
    people.chats_of(s, told)  # both in one statement: each `tell` then finds its user's chat
    if spec.tell_reporter:
        tell(s, case, case.reporter_user_id, spec.tell_reporter, now, unless=actor_id, **(tell_params or {}))
    if spec.tell_owner:
        tell(s, case, case.owner_user_id, spec.tell_owner, now, unless=actor_id, **(tell_params or {}))
    return from_state


def act(
    rt: Runtime,
    s: Session,
    case: Case,
    action: str,
    person: Person | None,
    *,
    now: datetime,
    event: str,
    note: str | None = None,
    data: dict[str, Any] | None = None,
    who: frozenset[str] | None = None,
    refresh: bool = True,
) -> None:
    """Record an action that changes no state (a note, a report-in, a decided extension):
    rights, state, the audit event, the version bumped (so a card rendered before it is
    known to be stale), reminders replanned and every posted card refreshed."""
    if who is None:
        who = relations(rt, s, person, case)
    authorize(action, who, case)
    case.version += 1
    case.updated_at = now
    deadlines.replan(rt, s, case, now)
    audit.record(
        s,
        action=event,
        subject_type="case",
        subject_id=case.id,
        case_id=case.id,
        actor_user_id=person.user_id if person else None,
        note=note,
        data=data or {},
        at=now,
    )
    if refresh:
        notify.refresh_cards(s, case_id=pk(case), now=now)


def dispatch_to(
    rt: Runtime,
    s: Session,
    case: Case,
    unit: Unit,
    person: Person | None,
    now: datetime,
    *,
    who: frozenset[str] | None = None,
) -> bool:
    """派遣, one path for the command room's decision and a street's auto-dispatch (person
    None): the move, the team's card, the command room's card re-rendered, the reporter told.
    False when the team has no group bound."""
    team_chat = index.unit_group(rt, s, unit.id)
    room = notify.command_room_chat(rt, s, case)
    _, room_chat = room
    posted = {(team_chat, notify.TEAM)} if team_chat is not None else set()
    if room_chat is not None:
        posted.add((room_chat, notify.COMMAND))
    transition(
        rt, s, case, "dispatch", person, now=now, who=who, values={"unit_id": unit.id, "dispatched_at": now},
        note=None if person else "auto", data={"unit_id": unit.id, "unit_code": unit.code, "auto": person is None},
        skip_cards=frozenset(posted),
    )  # fmt: skip
    notified = notify.card_to_chat(s, case=case, chat_id=team_chat, unit_id=unit.id, purpose=notify.TEAM, now=now)
    notify.card_to_command_room(rt, s, case=case, now=now, room=room)
    if person is not None:  # an auto-dispatched reporter learns the team with their case code
        tell(
            s, case, case.reporter_user_id, N_("dispatch.reporter_dispatched"), now,
            unless=person.user_id, team_zh=unit.name_zh, team_en=unit.name_en,
        )  # fmt: skip
    return notified


def tell(
    s: Session, case: Case, user_id: int | None, key: str, now: datetime, *, unless: int | None = None, **params: Any
) -> bool:
    """A notice about the case to one person (not the one who caused it, not one who blocked us)."""
    chat_id = people.chat_of(s, user_id) if user_id and user_id != unless else None
    if chat_id is None:
        return False
    notify.text_to_user(s, telegram_id=chat_id, key=key, now=now, case_id=case.id, code=case.code, **params)
    return True


def _replan(rt: Runtime, s: Session, case: Case, spec: Move, paused_since: datetime | None, now: datetime) -> None:
    """What a move does to the case's clock: dispatch and reopen start it, release restarts the
    claim clock, not-fixed gives back the time spent waiting on the reporter."""
    if spec.action in ("dispatch", "reopen"):
        deadlines.start_clock(rt, s, case, now)
    elif spec.action == "release":
        deadlines.became_unclaimed(rt, s, case, now)
    elif spec.action == "not_fixed":
        deadlines.resumed_after_verification(rt, s, case, paused_since, now)
    else:
        deadlines.replan(rt, s, case, now)
