"""More time (延期) in the unit of the case's limit: working hours or working days on the
street's calendar (weekends, holidays and the street's own days off skipped), wall-clock
hours for an urgent case; the approval and every card state the new due time."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.cases import casework, claim, deadlines, query
from bot.clock import ManualClock
from bot.runtime import Runtime
from storage import casework as pending_rows
from storage.db import Database
from storage.models import AuditEvent, Case, CaseCard, Category, ExtensionRequest, Street, pk
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import onboard
from tests.test_casework import claim as press_claim
from tests.test_casework import file_and_dispatch, world  # noqa: F401  (fixture)
from tests.test_deadlines import at, file_case, hb, load, person  # noqa: F401  (hb: a fixture)

OWNER = 9510  # the 湖滨 team member of the hb fixture


def _days_off(db: Database, rt: Runtime, street_code: str, *days: str) -> None:
    """The street's own days off (organisation file: extra_days_off), as a re-import sets them."""
    with db.session() as s:
        street = s.exec(select(Street).where(Street.code == street_code)).one()
        street.settings = {**(street.settings or {}), "extra_days_off": list(days)}
        s.add(street)
    rt.cache.clear()


def _ask(rt: Runtime, case: Case, amount: int, unit: str, reason: str = "需协调物业") -> int:
    """The owner asks for more time; the request's id."""
    owner = person(rt, OWNER)
    casework.start_input(rt, person=owner, case_id=pk(case), action=casework.EXTEND)
    casework.set_more_time(rt, user_id=owner.user_id, amount=amount, unit=unit)
    casework.add_text(rt, user_id=owner.user_id, text=reason)
    pending = casework.pending(rt, owner.user_id)
    assert pending is not None
    return int(casework.finish(rt, person=owner, pending_id=pending.id).extra["request"])


def _claimed(rt: Runtime, db: Database, category: str) -> Case:
    case = file_case(rt, db, category, person(rt, 9501).user_id)
    claim.claim(rt, person=person(rt, OWNER), case_id=pk(case))
    return load(db, pk(case))


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.usefixtures("hb")
@pytest.mark.parametrize(
    ("category", "unit", "labels"),
    [
        ("CITY-ADVERTISING", "wd", (1, 2, 3)),  # 1 working day
        ("CLEAN-EXPOSED-GARBAGE", "wh", (4, 8, 24)),  # 4 working hours
        ("FIRE-HAZARD", "h", (4, 8, 24)),  # urgent: 2 wall-clock hours
    ],
)
async def test_more_time_is_offered_in_the_unit_of_the_limit(
    rt: Runtime, db: Database, clock: ManualClock, category: str, unit: str, labels: tuple[int, ...]
) -> None:
    clock.set(at(23, 9, 30))
    case = _claimed(rt, db, category)
    pending = casework.start_input(rt, person=person(rt, OWNER), case_id=pk(case), action=casework.EXTEND)
    assert pending.unit == unit and deadlines.MORE_TIME_CHOICES[unit] == labels


@pytest.mark.usefixtures("hb")
async def test_working_days_skip_the_weekend_and_the_streets_day_off(
    rt: Runtime, db: Database, clock: ManualClock, tg: FakeTelegram, admin: FakeUser
) -> None:
    await onboard(admin, tg.user(9530, "dispatcher", language_code="zh-hans"), "dispatcher", "330102002")
    _days_off(db, rt, "330102002", "2026-11-30")  # 湖滨 is off on Monday 30 November
    clock.set(at(26, 10, 0))  # Thursday
    case = _claimed(rt, db, "CITY-ADVERTISING")  # 1 working day
    assert case.due_at == at(27, 10, 0)
    request_id = _ask(rt, case, 2, "wd")
    with db.session() as s:
        request = s.get(ExtensionRequest, request_id)
        assert request is not None
    # from Friday 10:00: Saturday, Sunday and the day off skipped; Tuesday, then Wednesday
    assert request.old_due_at == at(27, 10, 0) and request.new_due_at == at(2, 10, 0, month=12)
    assert load(db, pk(case)).due_at == at(27, 10, 0)  # nothing moves before the decision
    casework.decide_extension(rt, person=person(rt, 9530), request_id=request_id, approve=True)
    assert load(db, pk(case)).due_at == at(2, 10, 0, month=12)


@pytest.mark.usefixtures("hb")
async def test_working_days_skip_a_national_holiday(rt: Runtime, db: Database, clock: ManualClock) -> None:
    clock.set(at(30, 10, 0, month=9))  # Wednesday 30 September 2026, the eve of National Day
    case = _claimed(rt, db, "CITY-ADVERTISING")
    assert case.due_at == at(8, 10, 0, month=10)  # the holiday is skipped by the limit too
    request_id = _ask(rt, case, 1, "wd")
    with db.session() as s:
        request = s.get(ExtensionRequest, request_id)
        assert request is not None and case.due_at is not None
        clock_ = deadlines.street_clock(rt, s, case.street_id)
    # the same calendar as the limit itself: 1 working day after the due time, holiday skipped
    assert request.new_due_at == clock_.calendar.add_working_days(case.due_at, 1)
    assert all(
        not clock_.calendar.is_working_day(at(day, 12, month=10).date()) for day in range(1, 8)
    )  # the National Day week is off
    assert request.new_due_at > at(8, 0, 0, month=10)


@pytest.mark.usefixtures("hb")
async def test_a_late_case_gets_more_time_from_now_in_working_hours(
    rt: Runtime, db: Database, clock: ManualClock
) -> None:
    clock.set(at(27, 9, 30))  # Friday
    case = _claimed(rt, db, "CLEAN-EXPOSED-GARBAGE")  # 4 working hours: due 15:30
    assert case.due_at == at(27, 15, 30)
    clock.set(at(27, 17, 0))  # already late
    request_id = _ask(rt, case, 4, "wh")
    with db.session() as s:
        request = s.get(ExtensionRequest, request_id)
    # 17:00-18:00 on Friday, then 08:30-11:30 on Monday
    assert request is not None and request.new_due_at == at(30, 11, 30)


@pytest.mark.usefixtures("hb")
async def test_an_urgent_case_gets_wall_clock_hours(rt: Runtime, db: Database, clock: ManualClock) -> None:
    clock.set(at(28, 9, 30))  # Saturday: urgent matters run around the clock
    case = _claimed(rt, db, "FIRE-HAZARD")
    assert case.due_at == at(28, 11, 30)
    request_id = _ask(rt, case, 8, "h")
    with db.session() as s:
        request = s.get(ExtensionRequest, request_id)
    assert request is not None and request.new_due_at == at(28, 19, 30)


@pytest.mark.usefixtures("hb")
async def test_only_the_choices_of_the_exchanges_unit_are_taken(rt: Runtime, db: Database, clock: ManualClock) -> None:
    clock.set(at(23, 9, 30))
    case = _claimed(rt, db, "CLEAN-EXPOSED-GARBAGE")
    owner = person(rt, OWNER)
    pending = casework.start_input(rt, person=owner, case_id=pk(case), action=casework.EXTEND)
    casework.add_text(rt, user_id=owner.user_id, text="需协调物业")
    with pytest.raises(casework.MoreTimeRequired):
        casework.finish(rt, person=owner, pending_id=pending.id)
    for amount, unit in ((2, "wd"), (5, "wh"), (72, "h")):
        with pytest.raises(casework.lifecycle.ActorNotAllowed):
            casework.set_more_time(rt, user_id=owner.user_id, amount=amount, unit=unit)
    assert casework.set_more_time(rt, user_id=owner.user_id, amount=8, unit="wh").more == 8


@pytest.mark.usefixtures("hb")
async def test_an_exchange_begun_with_plain_hours_keeps_them(rt: Runtime, db: Database, clock: ManualClock) -> None:
    """An exchange opened before more time had units chose plain hours: finishing it after
    the upgrade still asks for those hours (on the wall clock, as then)."""
    clock.set(at(23, 9, 30))
    case = _claimed(rt, db, "CLEAN-EXPOSED-GARBAGE")
    owner = person(rt, OWNER)
    pending = casework.start_input(rt, person=owner, case_id=pk(case), action=casework.EXTEND)
    with db.session() as s:
        row = pending_rows.pending_of(s, owner.user_id)
        assert row is not None
        pending_rows.save_pending(s, row, data={"hours": 72, "text": "需协调物业"}, now=clock.now())
    old = casework.pending(rt, owner.user_id)
    assert old is not None and (old.more, old.unit) == (72, "h")
    request_id = int(casework.finish(rt, person=owner, pending_id=pending.id).extra["request"])
    with db.session() as s:
        request = s.get(ExtensionRequest, request_id)
    assert request is not None and request.new_due_at == at(26, 15, 30)  # 72 wall-clock hours after 15:30


# --- through the bot --------------------------------------------------------------------------


async def test_more_working_days_through_the_command_room(
    world: dict,  # noqa: F811
    tg: FakeTelegram,
    db: Database,
    rt: Runtime,
    clock: ManualClock,
) -> None:
    """违法建设 with a limit of 1 working day: the owner asks for 2 more, the command room
    approves, and the owner, the request, both cards and /case show Wednesday 10:00 (the
    weekend and the street's Monday off skipped)."""
    with db.session() as s:
        category = s.exec(select(Category).where(Category.code == "CITY-ILLEGAL-BUILDING")).one()
        category.limit_value, category.limit_unit = 1, "days"
        s.add(category)
    _days_off(db, rt, "330102001", "2026-11-30")
    clock.set(at(26, 10, 0))  # Thursday
    case = await file_and_dispatch(world, db)
    await press_claim(world, world["staff"], case)
    staff: FakeUser = world["staff"]
    team_card = world["team"].last_message()
    await staff.press(team_card, "⏰ 申请延期", chat=world["team"])
    prompt = staff.last_message()
    assert buttons(prompt)[0] == ["+1 个工作日", "+2 个工作日", "+3 个工作日"]
    await staff.press(prompt, "+2 个工作日")
    assert buttons(staff.chat.message(prompt.message_id))[0][1] == "✅ +2 个工作日"
    await staff.send("需等待业主回国后配合拆除")
    await staff.press(staff.last_message(), "✅ 完成")

    request = world["room"].last_message()
    assert "执法丙申请延长 2 个工作日（至 12-02 10:00）" in request.text
    assert "需等待业主回国后配合拆除" in request.text
    await world["dispatcher"].press(request, "✅ 同意", chat=world["room"])
    decided = world["room"].message(request.message_id).text
    # the request stays readable above the decision, which states the new due time
    assert "申请延长 2 个工作日" in decided and "需等待业主回国后配合拆除" in decided
    assert "已同意" in decided and "办理时限：12-02 10:00" in decided
    assert buttons(world["room"].message(request.message_id)) == []
    told = staff.last_text()
    assert "已获同意" in told and "12-02 10:00" in told
    with db.session() as s:
        assert s.get(Case, pk(case)).due_at == at(2, 10, 0, month=12)  # type: ignore[union-attr]
        room_card = s.exec(select(CaseCard).where(CaseCard.case_id == case.id, CaseCard.purpose == "command")).one()
    for card in (world["team"].message(team_card.message_id), world["room"].message(room_card.message_id)):
        body = card.caption or card.text or ""
        assert "12-02 10:00" in body and "11-27 10:00" not in body
    # /case: what was asked, and the time that was set with the one it replaced
    timeline = (await staff.send(f"/case {case.code}")).texts[-1]
    assert "申请延期：延长 2 个工作日，至 12-02 10:00 · 执法丙 — 需等待业主回国后配合拆除" in timeline
    assert "设定时限：12-02 10:00（原 11-27 10:00）" in timeline and "同意延期 · 调度员乙" in timeline


async def test_a_refused_request_stays_readable_with_the_due_time_kept(
    world: dict,  # noqa: F811
    db: Database,
    clock: ManualClock,
) -> None:
    clock.set(at(26, 10, 0))  # Thursday: 4 working hours, due 16:00
    case = await file_and_dispatch(world, db)
    await press_claim(world, world["staff"], case)
    staff: FakeUser = world["staff"]
    await staff.press(world["team"].last_message(), "⏰ 申请延期", chat=world["team"])
    await staff.press(staff.last_message(), "+8 个工作小时")
    await staff.send("材料未到")
    await staff.press(staff.last_message(), "✅ 完成")
    request = world["room"].last_message()
    assert "执法丙申请延长 8 个工作小时（至 11-27 16:30）" in request.text
    await world["dispatcher"].press(request, "❌ 不同意", chat=world["room"])
    decided = world["room"].message(request.message_id).text
    assert "申请延长 8 个工作小时" in decided and "材料未到" in decided
    # the due time kept, in words as near ones are (Chinese sentences joined without a space)
    assert "未同意" in decided and "的延期申请。办理时限：今天 16:00。" in decided
    assert "未获同意" in staff.last_text() and "今天 16:00" in staff.last_text()
    with db.session() as s:
        assert s.get(Case, pk(case)).due_at == at(26, 16, 0)  # type: ignore[union-attr]
    timeline = (await staff.send(f"/case {case.code}")).texts[-1]
    assert "申请延期：延长 8 个工作小时，至 11-27 16:30" in timeline and "不同意延期 · 调度员乙" in timeline


async def test_a_prompt_from_before_units_gets_the_new_choices(
    world: dict,  # noqa: F811
    db: Database,
) -> None:
    case = await file_and_dispatch(world, db)
    await press_claim(world, world["staff"], case)
    staff: FakeUser = world["staff"]
    await staff.press(world["team"].last_message(), "⏰ 申请延期", chat=world["team"])
    prompt = staff.last_message()
    assert prompt.reply_markup is not None
    data = prompt.reply_markup.inline_keyboard[0][0].callback_data  # the exchange's id, as old buttons carried it
    assert isinstance(data, str)
    pending_id = int(data.split(":")[2])
    answer = await staff.press_data(staff.chat.id, prompt.message_id, f"v1:input_hours:{pending_id}:72")
    assert answer is not None and "请重新选择" in answer.params["text"]
    assert buttons(staff.chat.message(prompt.message_id))[0] == ["+4 个工作小时", "+8 个工作小时", "+24 个工作小时"]


@pytest.mark.usefixtures("hb")
async def test_the_timeline_reads_requests_made_in_plain_hours(rt: Runtime, db: Database, clock: ManualClock) -> None:
    """A request recorded before units existed ({"hours": 24}) shows as 24 hours, until the
    due time kept on the request."""
    clock.set(at(23, 9, 30))
    case = _claimed(rt, db, "CLEAN-EXPOSED-GARBAGE")
    request_id = _ask(rt, case, 8, "wh")
    with db.session() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "case.extension_requested")).one()
        event.data = {"request": request_id, "hours": 24}
        s.add(event)
        asked = s.get(ExtensionRequest, request_id).new_due_at  # type: ignore[union-attr]
    detail = query.detail(rt, person=person(rt, OWNER), code=case.code)
    assert detail is not None
    [requested] = [e for e in detail.events if e.action == "case.extension_requested"]
    assert (requested.more, requested.unit, requested.asked_due) == (24, "h", asked)
