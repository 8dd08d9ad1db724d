"""The case lifecycle at the service level: the table is coherent, rights come before state,
relations are computed from the database, and every move runs through `transition()`.
No Telegram, no translated labels."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.cases import lifecycle as lc
from bot.people.roles import MembershipView, Person
from bot.runtime import Runtime
from storage import orgs
from storage.db import Database
from storage.models import AuditEvent, Case, Community, Grid, Outbox, Unit, User
from storage.models import CaseState as S
from tests.rows import fetch


def test_every_state_has_a_kind_and_is_reachable_from_reported() -> None:
    assert set(S.KIND.values()) == {"open", "waiting", "closed"}
    seen, frontier = {S.REPORTED}, [S.REPORTED]
    while frontier:
        state = frontier.pop()
        for m in lc.MOVES:
            if state in m.source and m.target not in seen:
                seen.add(m.target)
                frontier.append(m.target)
    assert seen == set(S.KIND)


def test_closed_states_stay_closed_except_a_deliberate_reopen() -> None:
    for state in lc.FINAL_STATES:
        assert {m.action for m in lc.MOVES if state in m.source} <= {"reopen"}, state
    assert not lc.is_open(S.CLOSED) and lc.is_open(S.RESOLVED) and lc.kind(S.RESOLVED) == "waiting"


def test_every_move_and_rule_names_known_states_and_relations() -> None:
    relations = {
        lc.REPORTER, lc.GRID_WORKER, lc.OWNER, lc.TEAM, lc.DISPATCHER, lc.DEPARTMENT,
        lc.SUPERVISOR, lc.ADMIN, lc.SYSTEM, lc.RESIDENT,
    }  # fmt: skip
    for m in lc.MOVES:
        assert set(m.source) <= set(S.KIND) and m.target in S.KIND and m.by <= relations, m.action
        assert m.event.startswith("case."), m.action
    for r in lc.RULES:
        assert set(r.states) <= set(S.KIND) and r.by <= relations, r.action
    names = [m.action for m in lc.MOVES] + [r.action for r in lc.RULES]
    assert len(names) == len(set(names))


def _case(state: str = S.DISPATCHED, **fields: object) -> Case:
    return Case(id=1, code="QB-261123-0001", state=state, source="patrol", description="x", **fields)  # type: ignore[arg-type]


def test_rights_come_before_state() -> None:
    claimed = _case(S.CLAIMED)
    # an outsider learns nothing, whatever the state
    with pytest.raises(lc.CaseNotFound):
        lc.authorize("claim", frozenset({lc.RESIDENT}), claimed)
    # somebody who may see the case but not claim it is told so, without the owner
    with pytest.raises(lc.NotOnTeam):
        lc.authorize("claim", frozenset({lc.DISPATCHER}), claimed)
    # the team hears that it moved on
    with pytest.raises(lc.MoveNotAllowed):
        lc.authorize("claim", frozenset({lc.TEAM}), claimed)
    assert lc.authorize("claim", frozenset({lc.TEAM}), _case(S.DISPATCHED)).target == S.CLAIMED  # type: ignore[union-attr]


def test_what_each_relation_may_do() -> None:
    assert lc.allowed(S.REPORTED, {lc.DISPATCHER})[:3] == ["dispatch", "reject", "duplicate"]
    owner_moves = {a for a in lc.allowed(S.CLAIMED, {lc.OWNER}) if a in {m.action for m in lc.MOVES}}
    assert owner_moves == {"release", "return", "escalate", "resolve"}
    assert "ratelink" not in lc.allowed(S.CLOSED, {lc.REPORTER, lc.RESIDENT})
    assert "ratelink" in lc.allowed(S.CLOSED, {lc.GRID_WORKER})
    assert lc.may("rate", {lc.RESIDENT, lc.REPORTER}) and not lc.may("rate", {lc.GRID_WORKER, lc.REPORTER})
    assert lc.allowed(S.CLOSED, {lc.TEAM}) == ["see", "ratelink"]


def _person(user_id: int, *memberships: tuple[str, str], admin: bool = False) -> Person:
    views = tuple(MembershipView(role, "?", code, code, code) for role, code in memberships)
    return Person(
        user_id=user_id, telegram_id=user_id, name=f"u{user_id}", language="zh_CN", is_admin=admin, memberships=views
    )


def test_relations_are_read_from_the_case_and_the_organisation(db: Database, rt: Runtime) -> None:
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == "33010200100101")).one()
        team = s.exec(select(Unit).where(Unit.code == "QB-ZF")).one()
        street = orgs.street(s, fetch(s, Community, grid.community_id).street_id)
        assert street is not None
        case = _case(
            S.CLAIMED, grid_id=grid.id, unit_id=team.id, street_id=street.id, reporter_user_id=10, owner_user_id=20
        )
        assert lc.relations(rt, s, _person(10), case) == {lc.REPORTER, lc.RESIDENT}
        assert lc.relations(rt, s, _person(20, ("staff", "QB-ZF")), case) == {lc.OWNER, lc.TEAM}
        assert lc.relations(rt, s, _person(30, ("staff", "HB-ZF")), case) == {lc.RESIDENT}
        assert lc.relations(rt, s, _person(31, ("worker", "33010200100101")), case) == {lc.GRID_WORKER}
        assert lc.relations(rt, s, _person(32, ("dispatcher", street.code)), case) == {lc.DISPATCHER}
        assert lc.relations(rt, s, _person(33, ("supervisor", "330102")), case) == {lc.SUPERVISOR}
        assert lc.relations(rt, s, _person(34, admin=True), case) == {lc.ADMIN, lc.RESIDENT}
        assert lc.relations(rt, s, None, case) == {lc.SYSTEM}


def test_transition_is_one_compare_and_set_with_its_event_and_notices(db: Database, rt: Runtime) -> None:
    """Two presses from one stale read: the first wins and is audited, the second is
    refused; the reporter is told once; nothing is written for the loser."""
    with db.session() as s:
        reporter = User(telegram_id=5001, first_name="r", created_at=rt.clock.now(), updated_at=rt.clock.now())
        owner = User(telegram_id=5002, first_name="o", created_at=rt.clock.now(), updated_at=rt.clock.now())
        s.add(reporter)
        s.add(owner)
        s.flush()
        team = s.exec(select(Unit).where(Unit.code == "QB-ZF")).one()
        case = Case(
            code="QB-261123-0099", state=S.DISPATCHED, source="patrol", description="x",
            unit_id=team.id, street_id=team.street_id, reporter_user_id=reporter.id,
            created_at=rt.clock.now(), updated_at=rt.clock.now(),
        )  # fmt: skip
        s.add(case)
        s.flush()
        case_id, owner_id = case.id, owner.id
    staff = _person(owner_id, ("staff", "QB-ZF"))  # type: ignore[arg-type]
    now = rt.clock.now() + timedelta(minutes=1)
    with db.read() as r:
        stale = r.get(Case, case_id)  # the loser read the case before the winner committed
    with db.session() as s:
        case = fetch(s, Case, case_id)
        lc.transition(rt, s, case, "claim", staff, now=now, values={"owner_user_id": owner_id})
    with db.session() as s, pytest.raises(lc.MoveNotAllowed):
        s.add(stale)
        lc.transition(rt, s, stale, "claim", staff, now=now, values={"owner_user_id": owner_id})  # type: ignore[arg-type]
    with db.session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)).all()
        notices = s.exec(select(Outbox).where(Outbox.case_id == case_id, Outbox.kind == "user_text")).all()
        fresh = fetch(s, Case, case_id)
    assert [e.action for e in events] == ["case.claimed"] and events[0].from_state == S.DISPATCHED
    assert [n.chat_id for n in notices] == [5001]  # the reporter, once
    assert fresh is not None and fresh.state == S.CLAIMED and fresh.owner_user_id == owner_id and fresh.version == 2
