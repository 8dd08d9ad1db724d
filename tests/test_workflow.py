"""The state machine table: coherent, and saying no with typed errors."""

from __future__ import annotations

import pytest

from bot.cases import workflow
from bot.cases.workflow import ActorNotAllowed, MoveNotAllowed
from storage.models import CaseState as S

ALL_STATES = {
    S.REPORTED,
    S.DISPATCHED,
    S.CLAIMED,
    S.RESOLVED,
    S.CLOSED,
    S.RETURNED,
    S.ESCALATED,
    S.REOPENED,
    S.REJECTED,
    S.DUPLICATE,
}


def test_every_state_is_reachable_from_reported() -> None:
    seen, frontier = {S.REPORTED}, [S.REPORTED]
    while frontier:
        state = frontier.pop()
        for m in workflow.MOVES:
            if state in m.source and m.target not in seen:
                seen.add(m.target)
                frontier.append(m.target)
    assert seen == ALL_STATES


def test_final_states_stay_final_except_a_deliberate_reopen() -> None:
    for state in S.FINAL:
        actions = {m.action for m in workflow.MOVES if state in m.source}
        assert actions <= {"reopen"}, (state, actions)
    assert not workflow.is_open(S.CLOSED) and workflow.is_open(S.ESCALATED)


def test_check_says_who_and_when() -> None:
    assert workflow.check("claim", state=S.DISPATCHED, actors={workflow.TEAM}).target == S.CLAIMED
    with pytest.raises(ActorNotAllowed):
        workflow.check("claim", state=S.DISPATCHED, actors={workflow.REPORTER})
    with pytest.raises(MoveNotAllowed) as err:
        workflow.check("claim", state=S.CLAIMED, actors={workflow.TEAM}, code="QB-261123-0001")
    assert err.value.params["code"] == "QB-261123-0001"


def test_allowed_actions() -> None:
    assert workflow.allowed_actions(S.REPORTED, {workflow.DISPATCHER}) == ["dispatch", "reject", "duplicate"]
    assert set(workflow.allowed_actions(S.CLAIMED, {workflow.OWNER})) == {"release", "return", "escalate", "resolve"}
    assert workflow.allowed_actions(S.CLOSED, {workflow.TEAM}) == []
