"""The case state machine: every state, every allowed move, and who may make it.

One table, declared once. Services ask `check(...)` before they change a case and apply
the move with a compare-and-set, so two people racing produce one winner and an honest
answer for the other.

    reported ──dispatch──► dispatched ──claim──► claimed ──resolve──► resolved ──confirm──► closed
       │  └─reject──► rejected                     │  ▲  │                  │
       └──duplicate──► duplicate        release ◄──┘  │  └─escalate─► escalated (─report_in/back─► claimed)
                                        return ──► returned ──dispatch──► dispatched
                                                  reopen (not fixed) ──► reopened ──claim──► claimed
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import DomainError
from storage.cases import OPEN_STATES
from storage.models import CaseState as S

# Who acts. "owner" is the staff member holding the case; "team" any member of the team
# the case is dispatched to; "reporter" the one who filed it.
DISPATCHER, TEAM, OWNER, REPORTER, SYSTEM, ADMIN = "dispatcher", "team", "owner", "reporter", "system", "admin"
DEPARTMENT = "department"  # staff of a department the case was escalated to


@dataclass(frozen=True)
class Move:
    action: str
    source: tuple[str, ...]
    target: str
    actors: tuple[str, ...]


MOVES: tuple[Move, ...] = (
    Move("dispatch", (S.REPORTED, S.RETURNED), S.DISPATCHED, (DISPATCHER, ADMIN, SYSTEM)),
    Move("reject", (S.REPORTED, S.RETURNED), S.REJECTED, (DISPATCHER, ADMIN)),
    Move("duplicate", (S.REPORTED, S.RETURNED, S.DISPATCHED), S.DUPLICATE, (DISPATCHER, ADMIN)),
    Move("claim", (S.DISPATCHED, S.REOPENED), S.CLAIMED, (TEAM,)),
    Move("release", (S.CLAIMED,), S.DISPATCHED, (OWNER, DISPATCHER, ADMIN)),
    Move("reassign", (S.CLAIMED, S.DISPATCHED, S.REOPENED), S.CLAIMED, (DISPATCHER, ADMIN)),
    Move("return", (S.DISPATCHED, S.CLAIMED), S.RETURNED, (OWNER, TEAM)),
    Move("escalate", (S.CLAIMED,), S.ESCALATED, (OWNER,)),
    Move("deescalate", (S.ESCALATED,), S.CLAIMED, (OWNER, DISPATCHER, ADMIN)),
    Move("resolve", (S.CLAIMED, S.ESCALATED, S.REOPENED), S.RESOLVED, (OWNER,)),
    Move("confirm", (S.RESOLVED,), S.CLOSED, (REPORTER, DISPATCHER, ADMIN)),
    Move("not_fixed", (S.RESOLVED,), S.REOPENED, (REPORTER, DISPATCHER, ADMIN)),
    Move("reopen", (S.CLOSED,), S.REOPENED, (DISPATCHER, ADMIN)),
)

_BY_ACTION = {m.action: m for m in MOVES}


class MoveNotAllowed(DomainError):
    """The case is not in a state this move starts from (it has moved on)."""

    key = "case.moved_on"


class ActorNotAllowed(DomainError):
    key = "error.not_allowed"


def move(action: str) -> Move:
    return _BY_ACTION[action]


def check(action: str, *, state: str, actors: set[str] | frozenset[str], code: str = "") -> Move:
    """The move, if `actors` (the roles the person holds on this case) may make it now."""
    m = _BY_ACTION[action]
    if not set(actors) & set(m.actors):
        raise ActorNotAllowed()
    if state not in m.source:
        raise MoveNotAllowed(code=code, state=state)
    return m


def allowed_actions(state: str, actors: set[str] | frozenset[str]) -> list[str]:
    """What this person could do to a case in this state (for buttons and /help)."""
    return [m.action for m in MOVES if state in m.source and set(actors) & set(m.actors)]


def is_open(state: str) -> bool:
    return state in OPEN_STATES
