"""更正分类: a wrong category corrected through the lifecycle, the team and time limit
following it, the old team's card losing its buttons, audited; a closed case refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.cases.lifecycle import MoveNotAllowed
from bot.desk import corrections
from bot.people import identity
from bot.runtime import Runtime
from storage.db import Database
from storage.models import AuditEvent, Case, CaseState, Category, Unit, pk
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, onboard
from tests.test_claim import join_directly
from tests.test_rating import GRID, report_and_dispatch


@pytest.fixture
async def w(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> SimpleNamespace:
    worker = tg.user(9901, "网格员甲", language_code="zh-hans")
    dispatcher = tg.user(9902, "调度员乙", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    room = await bound_group(tg, admin, -100991, "QB-CMD")
    team = await bound_group(tg, admin, -100992, "QB-ZF")
    other = await bound_group(tg, admin, -100993, "QB-ZZ")
    join_directly(rt, 9910, "执法丙", "staff", "QB-ZF")
    staff = tg.user(9910, "执法丙", language_code="zh-hans")
    return SimpleNamespace(tg=tg, db=db, rt=rt, worker=worker, dispatcher=dispatcher, room=room, team=team,
                           other=other, staff=staff)  # fmt: skip


def category_id(db: Database, code: str) -> int:
    with db.session() as s:
        found = s.exec(select(Category).where(Category.code == code)).one()
        assert found.id is not None
        return found.id


def dispatcher_person(rt: Runtime, telegram_id: int) -> identity.Person:
    return identity.identify(rt, identity.Profile(telegram_id=telegram_id, first_name="x", language_code="zh-hans"))


def labels(message: object) -> list[str]:
    return [label for row in buttons(message) for label in row]  # type: ignore[arg-type]


async def test_correct_to_another_team_through_the_private_card(w: SimpleNamespace) -> None:
    case = await report_and_dispatch(w, w.worker, "违法搭建彩钢棚")
    assert case.state == CaseState.DISPATCHED
    old_card = w.team.last_message()
    assert any("认领" in label for label in labels(old_card))
    # The dispatcher finds it in the queue, opens it, corrects the category.
    await w.dispatcher.send("/queue")
    await w.dispatcher.press(w.dispatcher.last_message(), case.code)
    await w.dispatcher.press(w.dispatcher.last_message(), "✏️ 更正分类")
    await w.dispatcher.press(w.dispatcher.last_message(), "电动自行车交通违法")  # platform ZZ
    assert "已改派到新的平台" in (w.dispatcher.messages()[-1].text or "")
    with w.db.session() as s:
        fresh = s.get(Case, case.id)
        zz = s.exec(select(Unit).where(Unit.code == "QB-ZZ")).one()
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "case.recategorized")).one()
    assert fresh is not None and fresh.unit_id == zz.id and fresh.category_id == category_id(w.db, "TRAFFIC-EBIKE")
    assert fresh.due_at is not None and fresh.deadline_started_at == w.rt.clock.now()
    assert event.data["team_changed"] is True and event.case_id == case.id
    # The new team has the card with Claim; the old team's card has no buttons left.
    assert any("认领" in label for label in labels(w.other.last_message()))
    assert labels(w.team.message(old_card.message_id)) == []
    room_card = w.room.last_message()
    assert "电动自行车交通违法" in (room_card.text or room_card.caption or "")


async def test_same_team_recomputes_the_due_time_from_the_dispatch(w: SimpleNamespace) -> None:
    case = await report_and_dispatch(w, w.worker, "违法搭建彩钢棚")
    person = dispatcher_person(w.rt, 9902)
    w.rt.clock.advance(timedelta(hours=1))
    done = corrections.recategorize(w.rt, person, pk(case), category_id(w.db, "TRAFFIC-FACILITY"))  # ZF, 2 days
    assert not done.team_changed
    with w.db.session() as s:
        fresh = s.get(Case, case.id)
    assert fresh is not None and fresh.deadline_started_at == case.deadline_started_at
    # Dispatched Monday 09:30; 2 working days = 15 working hours: Mon 6.5 h, Tue 7.5 h, Wed 1 h.
    assert fresh.due_at == datetime(2026, 11, 25, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    with pytest.raises(corrections.SameCategory):
        corrections.recategorize(w.rt, person, pk(case), category_id(w.db, "TRAFFIC-FACILITY"))


async def test_refused_for_a_closed_or_claimed_case_and_for_staff(w: SimpleNamespace) -> None:
    case = await report_and_dispatch(w, w.worker, "违法搭建彩钢棚")
    person = dispatcher_person(w.rt, 9902)
    await w.staff.press(
        w.team.last_message(), next(x for x in labels(w.team.last_message()) if "认领" in x), chat=w.team
    )
    with pytest.raises(corrections.ReleaseFirst):
        corrections.recategorize(w.rt, person, pk(case), category_id(w.db, "TRAFFIC-EBIKE"))
    staff = dispatcher_person(w.rt, 9910)
    with pytest.raises(Exception) as refused:
        corrections.recategorize(w.rt, staff, pk(case), category_id(w.db, "TRAFFIC-PARKING"))
    assert type(refused.value).__name__ in ("ActorNotAllowed", "CaseNotFound", "NotDispatcher")
    with w.db.session() as s:
        fresh = s.get(Case, case.id)
        assert fresh is not None
        fresh.state = CaseState.CLOSED
        s.add(fresh)
    with pytest.raises(MoveNotAllowed):
        corrections.recategorize(w.rt, person, pk(case), category_id(w.db, "TRAFFIC-PARKING"))


async def test_the_command_rooms_card_corrects_too(w: SimpleNamespace) -> None:
    case = await report_and_dispatch(w, w.worker, "违法搭建彩钢棚")
    card = w.room.last_message()
    assert labels(card) == ["✏️ 更正分类"]  # after dispatch: the one thing the room may still do here
    await w.dispatcher.press(card, "✏️ 更正分类", chat=w.room)
    choose = w.dispatcher.messages()[-1]
    assert "选择正确的分类" in (choose.text or "")
    await w.dispatcher.press(choose, "交通设施损坏")  # same team (ZF), 2 days
    assert "时限已重算" in (w.dispatcher.messages()[-1].text or "")
    with w.db.session() as s:
        fresh = s.get(Case, case.id)
    assert fresh is not None and fresh.category_id == category_id(w.db, "TRAFFIC-FACILITY")
    # The case's reporter pressing the room's button (forged into their chat) is refused.
    before = len(w.worker.messages())
    await w.worker.press_data(w.worker.id, w.worker.last_message().message_id, f"v1:dfix:{case.id}")
    assert not any("选择正确的分类" in (m.text or "") for m in w.worker.messages()[before:])
