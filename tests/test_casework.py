"""Case work beyond the happy loop: reassign, return, more time, the command room's
verification, unverified cases, moved-on buttons, a lost group, and a crash."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot import outbox as outbox_service
from bot.cases import casework
from bot.clock import ManualClock
from bot.intake import submit as intake
from bot.runtime import Runtime
from griddesk.app import build_application
from handlers.outbox_sender import drain
from storage import outbox as rows
from storage.db import Database
from storage.models import AuditEvent, Case, Category, Chat, ExtensionRequest, Grid, Outbox, User, pk
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.rows import fetch
from tests.test_claim import join_directly

GRID = "33010200100101"


@pytest.fixture
async def world(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> dict:
    worker = tg.user(9301, "网格员甲", language_code="zh-hans")
    dispatcher = tg.user(9302, "调度员乙", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    room = await bound_group(tg, admin, -100931, "QB-CMD")
    team = await bound_group(tg, admin, -100932, "QB-ZF")
    join_directly(rt, 9310, "执法丙", "staff", "QB-ZF")
    join_directly(rt, 9311, "执法丁", "staff", "QB-ZF")
    staff = tg.user(9310, "执法丙", language_code="zh-hans")
    other = tg.user(9311, "执法丁", language_code="zh-hans")
    return {"worker": worker, "dispatcher": dispatcher, "room": room, "team": team, "staff": staff, "other": other}


async def file_and_dispatch(
    w: dict, db: Database, who: FakeUser | None = None, caption: str = "违章搭建彩钢棚"
) -> Case:
    reporter = who or w["worker"]
    lat, lon = grid_centre(db, GRID)
    await reporter.send_photo(make_jpeg(), caption=caption)
    await reporter.send_location(lat, lon)
    await reporter.press(
        reporter.last_message(),
        "违法建设" if (reporter.language_code or "").startswith("zh") else "Illegal construction",
    )
    summary = reporter.last_message()
    submit = next(label for row in buttons(summary) for label in row if label.startswith("✅"))
    await reporter.press(summary, submit)
    card = w["room"].last_message()
    await w["dispatcher"].press(card, buttons(card)[0][0], chat=w["room"])
    with db.session() as s:
        return s.exec(select(Case).order_by(col(Case.id).desc()).limit(1)).one()


def state(db: Database, case_id: int) -> Case:
    with db.session() as s:
        return fetch(s, Case, case_id)


async def claim(w: dict, who: FakeUser, case: Case) -> None:
    await who.press_data(w["team"].id, w["team"].last_message().message_id, f"v1:claim:{case.id}")


async def test_dispatcher_reassigns(world: dict, db: Database) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    turn = await world["dispatcher"].send(f"/assign {case.code}", chat=world["room"])
    assert buttons(turn.replies[0]) == [["执法丙"], ["执法丁"]]
    await world["dispatcher"].press(turn.replies[0], "执法丁", chat=world["room"])
    assert state(db, pk(case)).state == "claimed"
    assert "交由您承办" in world["other"].last_text()
    assert "认领人：执法丁" in world["team"].last_message().caption
    # staff cannot reassign
    assert "没有权限" in (await world["staff"].send(f"/assign {case.code}", chat=world["team"])).texts[0]


async def test_return_and_redispatch(world: dict, db: Database) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    await world["staff"].press(world["team"].last_message(), "🔙 退回", chat=world["team"])
    await world["staff"].send("不属于执法平台职责，应由便民服务处理")
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    fresh = state(db, pk(case))
    assert fresh.state == "returned" and fresh.owner_user_id is None and "便民服务" in (fresh.decision_note or "")
    card = world["room"].message(world["room"].last_message().message_id)
    assert any("派遣至" in row[0] for row in buttons(card))  # the command room can dispatch again
    await world["dispatcher"].press(card, buttons(card)[0][0], chat=world["room"])
    assert state(db, pk(case)).state == "dispatched"


async def test_more_time_is_decided_by_the_command_room(world: dict, db: Database) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    await world["staff"].press(world["team"].last_message(), "⏰ 申请延期", chat=world["team"])
    prompt = world["staff"].last_message()
    await world["staff"].press(prompt, "+8 个工作小时")
    await world["staff"].send("需等待业主回国后配合拆除")
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    request = world["room"].last_message()
    assert "延期申请" in request.text and "申请延长 8 个工作小时" in request.text
    await world["dispatcher"].press(request, "✅ 同意", chat=world["room"])
    decided = world["room"].message(request.message_id).text
    # the decision keeps the request visible (hours and reason) and states the new due time
    assert (
        "已同意" in decided
        and "8 个工作小时" in decided
        and "需等待业主回国后配合拆除" in decided
        and "办理时限：" in decided
    )
    assert "已获同意" in world["staff"].last_text()
    with db.session() as s:
        row = s.exec(select(ExtensionRequest)).one()
        fresh = fetch(s, Case, case.id)
    assert row.decision == "approved" and fresh.due_at == row.new_due_at
    # the same button again: already decided, nothing changes
    answer = await world["dispatcher"].press_data(
        world["room"].id, request.message_id, f"v1:extension:approve:{row.id}"
    )
    assert answer is not None and "已处理过" in answer.params["text"]


async def test_residents_case_is_verified_by_the_command_room(world: dict, tg: FakeTelegram, db: Database) -> None:
    resident = tg.user(9350, "Ms Lin", language_code="en")
    case = await file_and_dispatch(world, db, who=resident, caption="Illegal construction: a shed built on the roof")
    await claim(world, world["staff"], case)
    await world["staff"].press(world["team"].last_message(), "✅ 处置完毕", chat=world["team"])
    await world["staff"].send_photo(make_jpeg(color=(0, 200, 0)), caption="已拆除")
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    assert "command room will verify" in resident.last_text()
    card = world["room"].last_message()
    assert buttons(card) == [["✅ 确认已解决", "❌ 未解决"]]
    # a team member cannot verify their own work
    answer = await world["staff"].press(card, "✅ 确认已解决", chat=world["room"])
    assert answer is not None and "没有权限" in answer.params["text"]
    await world["dispatcher"].press(card, "✅ 确认已解决", chat=world["room"])
    assert state(db, pk(case)).state == "closed"
    assert any("fixed and closed" in text for text in resident.texts())  # then the rating request (test_rating.py)


async def test_unverified_cases_go_to_the_command_room(
    world: dict, rt: Runtime, clock: ManualClock, db: Database, app
) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    await world["staff"].press(world["team"].last_message(), "✅ 处置完毕", chat=world["team"])
    await world["staff"].send_photo(make_jpeg(color=(0, 200, 0)), caption="已处理")
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    assert casework.escalate_unverified(rt, after=timedelta(hours=48)) == []
    clock.advance(timedelta(hours=49))
    assert casework.escalate_unverified(rt, after=timedelta(hours=48)) == [case.code]
    assert casework.escalate_unverified(rt, after=timedelta(hours=48)) == []  # once
    await drain(app)
    card = world["room"].last_message()
    assert case.code in card.caption and buttons(card) == [["✅ 确认已解决", "❌ 未解决"]]
    assert state(db, pk(case)).state == "resolved"  # never closed silently


async def test_buttons_on_a_case_that_moved_on(world: dict, db: Database) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    card_id = world["team"].last_message().message_id
    # another member presses the owner's buttons: refused
    answer = await world["other"].press_data(world["team"].id, card_id, f"v1:work:resolve:{case.id}")
    assert answer is not None and "没有权限" in answer.params["text"]
    await world["staff"].press_data(world["team"].id, card_id, f"v1:claim:{case.id}")  # own case: told it is taken
    for data in (f"v1:work:fly:{case.id}", "v1:work:resolve:99999", "v1:input_done:424242", f"v1:confirm:{case.id}"):
        answer = await world["staff"].press_data(world["team"].id, card_id, data)
        assert answer is not None and answer.params.get("show_alert") is True, data
    assert state(db, pk(case)).state == "claimed"


async def test_lost_team_group_alerts_the_command_room(
    world: dict, tg: FakeTelegram, admin: FakeUser, db: Database
) -> None:
    case = await file_and_dispatch(world, db)
    await tg.bot_removed_from(world["team"], by=admin)
    alert = world["room"].last_message()
    assert "无法在" in alert.text and "1 件在办案件" in alert.text
    with db.session() as s:
        assert s.exec(select(Chat).where(Chat.telegram_id == world["team"].id)).one().status == "left"
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "chat.lost")).first() is not None
    assert case.state == "dispatched"


async def test_group_deleted_is_noticed_when_sending(
    world: dict, api: FakeBotAPI, tg: FakeTelegram, db: Database
) -> None:
    api.kick(world["team"].id)  # no update arrives: we learn it from a 403
    await file_and_dispatch(world, db)
    with db.session() as s:
        row = s.exec(select(Outbox).where(Outbox.chat_id == world["team"].id)).one()
        chat = s.exec(select(Chat).where(Chat.telegram_id == world["team"].id)).one()
    assert row.state == "failed" and "kicked" in (row.error or "")
    assert chat.status == "left"
    assert "无法在" in world["room"].last_message().text


async def test_crash_between_commit_and_send(
    rt: Runtime, db: Database, api: FakeBotAPI, tg: FakeTelegram, admin: FakeUser
) -> None:
    room = await bound_group(tg, admin, -100961, "QB-CMD")
    worker = tg.user(9360, "w", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    before = len(room.messages())
    lat, lon = grid_centre(db, GRID)
    with db.session() as s:
        category = s.exec(select(Category)).first()
        user = s.exec(select(User).where(User.telegram_id == 9360)).one()
        grid = s.exec(select(Grid).where(Grid.code == GRID)).one()
    # The service commits the case and its outbox rows; the process "dies" before sending.
    intake.submit_report(
        rt,
        intake.ReportIn(
            reporter_user_id=user.id,
            source="patrol",
            latitude=lat,
            longitude=lon,
            grid_id=pk(grid),
            category_id=pk(category),
            description="crash test",
            photos=(),
        ),
    )
    assert len(room.messages()) == before
    # Restart: a new Application on the same database drains what is owed, once.
    app2 = build_application(rt, request=api)
    await app2.initialize()
    try:
        assert await drain(app2) == 1
        assert await drain(app2) == 0
    finally:
        await app2.shutdown()
    posted = room.messages()[before:]
    assert len(posted) == 1 and "crash test" in posted[0].body
    with db.session() as s:
        assert {r.state for r in s.exec(select(Outbox))} == {"sent"}


async def test_a_dead_senders_claim_is_taken_over_after_the_lease(
    rt: Runtime, clock: ManualClock, db: Database, tg: FakeTelegram, admin: FakeUser, app
) -> None:
    room = await bound_group(tg, admin, -100971, "QB-CMD")
    with db.session() as s:
        rows.enqueue(s, chat_id=room.id, kind="user_text", payload={"key": "cancel.nothing"}, now=clock.now())
    claimed = outbox_service.claim(rt)  # a sender takes the row... and dies
    assert len(claimed) == 1
    assert await drain(app) == 0  # another sender leaves it alone while the lease runs
    clock.advance(outbox_service.LEASE + timedelta(seconds=1))
    assert await drain(app) == 1
    assert await drain(app) == 0
    assert room.texts()[-1] == "当前没有需要取消的操作。"


async def test_a_slow_send_holds_up_no_word_owed_to_a_case_action(world: dict, db: Database) -> None:
    """The person's lock covers adding the words, not the prompt sent after them: while
    Telegram takes its time over one answer, the next message is already added."""
    import asyncio

    from storage.models import PendingInput

    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    staff = world["staff"]
    await staff.press(world["team"].last_message(), "🔙 退回", chat=world["team"])
    slow = staff.tg.api.hold("sendMessage", staff.id)
    first = asyncio.create_task(staff.send("不属于执法平台职责"))
    await asyncio.wait_for(slow.reached.wait(), 10)  # the first prompt is on its way, stuck
    second = asyncio.create_task(staff.send("应由便民服务处理"))

    def owed() -> str:
        with db.read() as s:
            row = s.exec(select(PendingInput).where(PendingInput.case_id == case.id)).one()
            return str((row.data or {}).get("text", ""))

    for _ in range(200):
        if "便民服务" in owed():
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the second message waited for the first answer's send")
    assert not first.done() and not second.done()
    slow.release()
    await asyncio.gather(first, second)
    assert owed() == "不属于执法平台职责\n应由便民服务处理"
    await staff.press(staff.last_message(), "✅ 完成")
    assert "便民服务" in (state(db, pk(case)).decision_note or "")
