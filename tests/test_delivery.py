"""Nothing lost: the reporter's acknowledgement goes through the outbox (a 502 on the
direct reply costs nobody their code), and a card with a very long field still fits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.outbox import recover_after_crash
from bot.runtime import Runtime
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import Case, Outbox, pk
from tests.fakebot import FakeBotAPI, FakeUser, buttons
from tests.flows import grid_centre
from tests.images import make_jpeg
from tests.test_casework import claim, file_and_dispatch, state, world  # noqa: F401  (fixture)

GRID = "33010200100101"


async def _draft_to_summary(user: FakeUser, db: Database) -> None:
    lat, lon = grid_centre(db, GRID)
    await user.send_photo(make_jpeg(), caption="小区门口垃圾堆放好几天了")
    await user.send_location(lat, lon)
    card = user.last_message()
    await user.press(card, buttons(card)[0][0])


async def test_reporter_gets_the_code_when_every_direct_reply_fails(
    world: dict,  # noqa: F811
    api: FakeBotAPI,
    app: object,
    db: Database,
    clock: ManualClock,
) -> None:
    worker: FakeUser = world["worker"]
    await _draft_to_summary(worker, db)
    summary = worker.last_message()
    assert "请确认上报内容" in summary.body
    # Telegram answers the press, the receipt's edit and the main menu's send with 502 Bad Gateway.
    api.fail_next("answerCallbackQuery", 502)
    api.fail_next("editMessageText", 502)
    api.fail_next("sendMessage", 502)
    before = len(worker.texts())
    await worker.press(summary, "✅ 确认上报")
    with db.session() as s:
        case = s.exec(select(Case)).one()
    said = worker.texts()[before:]
    assert not any("出错" in text or "内部错误" in text for text in said), said  # never "something went wrong"
    # The acknowledgement waits in the outbox for its retry, and arrives with the code.
    with db.session() as s:
        owed = [r for r in s.exec(select(Outbox).where(Outbox.chat_id == worker.id)) if r.state != "sent"]
    assert len(owed) == 1 and owed[0].payload["params"]["code"] == case.code
    assert case.code not in worker.chat.message(summary.message_id).body  # not yet
    clock.advance(timedelta(seconds=30))
    await drain(app)  # type: ignore[arg-type]
    shown = worker.chat.message(summary.message_id)  # the summary became the receipt
    assert case.code in shown.body and "请确认上报内容" in shown.body and not buttons(shown)
    assert [m.message_id for m in worker.messages() if case.code in m.body] == [summary.message_id]  # once


async def test_an_acknowledgement_sent_again_after_a_crash_shows_once(
    world: dict,  # noqa: F811
    api: FakeBotAPI,
    app: object,
    db: Database,
    rt: Runtime,
    clock: ManualClock,
) -> None:
    """A process killed after Telegram took the acknowledgement but before the outbox
    recorded it sends it again at its next start: the receipt is an edit of the summary, so
    the second one changes nothing the reporter sees ("not modified") and counts as sent."""
    worker: FakeUser = world["worker"]
    await _draft_to_summary(worker, db)
    summary = worker.last_message()
    await worker.press(summary, "✅ 确认上报")
    with db.session() as s:
        case = s.exec(select(Case)).one()
        (ack,) = [r for r in s.exec(select(Outbox).where(Outbox.chat_id == worker.id)) if r.payload.get("receipt")]
        assert ack.state == "sent"
        ack.state = "sending"  # as the killed process left it
        s.add(ack)
    seen = len(worker.messages())
    edits = len(api.calls_to("editMessageText"))
    assert recover_after_crash(rt) == 1
    clock.advance(timedelta(seconds=1))
    await drain(app)  # type: ignore[arg-type]
    assert len(api.calls_to("editMessageText")) == edits + 1  # sent again…
    assert len(worker.messages()) == seen  # …and nothing new shows
    assert [m.message_id for m in worker.messages() if case.code in m.body] == [summary.message_id]
    with db.session() as s:
        assert s.get(Outbox, ack.id).state == "sent"  # type: ignore[union-attr]


@pytest.mark.parametrize("length", [1800, 5000])
async def test_long_return_reason_still_updates_the_command_room_card(
    length: int,
    world: dict,  # noqa: F811
    db: Database,
    api: FakeBotAPI,
) -> None:
    case = await file_and_dispatch(world, db)
    await claim(world, world["staff"], case)
    await world["staff"].press(world["team"].last_message(), "🔙 退回", chat=world["team"])
    reason = ("不属于执法平台职责，应由便民服务处理。" * 100)[:length]
    await world["staff"].send(reason)
    await world["staff"].press(world["staff"].last_message(), "✅ 完成")
    fresh = state(db, pk(case))
    assert fresh.state == "returned"
    with db.session() as s:
        failed = [r for r in s.exec(select(Outbox).where(Outbox.state == "failed"))]
    assert failed == [], [(r.kind, r.chat_id, r.error) for r in failed]
    room = world["room"]
    card = room.message(room.last_message().message_id)
    assert any("派遣至" in row[0] for row in buttons(card)), buttons(card)  # it can be dispatched again
    await world["dispatcher"].press(card, buttons(card)[0][0], chat=room)
    assert state(db, pk(case)).state == "dispatched"
