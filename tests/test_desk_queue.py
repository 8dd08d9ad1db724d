"""/queue and /find: a street's or team's open cases with filters, 10 a page, time left in
words, a stale page, a tap opening the card in private with the presser's own actions."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.clock import ManualClock
from bot.runtime import Runtime
from handlers.desk_queue import time_left
from storage.models import Case, CaseState, Street, Unit
from tests import desk_example as ex
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import onboard
from tests.test_claim import join_directly


@pytest.fixture
async def room(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock) -> FakeUser:
    ex.build(rt.db)
    clock.set(ex.NOW)
    dispatcher = tg.user(9802, "调度员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    return dispatcher


def shown(user: FakeUser) -> str:
    """The text of the bot's last message as it stands now (edits included)."""
    message = user.last_message()
    assert message is not None
    return message.text or message.caption or ""


def labels(message: object) -> list[str]:
    return [label for row in buttons(message) for label in row]  # type: ignore[arg-type]


async def test_queue_filters_and_lines(room: FakeUser, rt: Runtime) -> None:
    text = (await room.send("/queue")).texts[0]
    lines = text.splitlines()
    assert "待办队列" in lines[0] and "全部" in lines[0]
    codes = [line.split("<code>")[0] for line in lines]
    assert len(lines) == 4  # G, F, C: open in 清波街道, newest first (A B closed, D rejected, E duplicate)
    assert "QB-2609G" in lines[1] and "QB-2609F" in lines[2] and "QB-2609C" in lines[3], codes
    assert "超期 9 天" in lines[2] and "未认领" in lines[2] and "劳动路社区第1网格" in lines[2]
    assert "超期 10 天" in lines[3] and "王五" in lines[3] and "电动自行车" in lines[3]
    message = room.last_message()
    await room.press(message, "超期")
    text = shown(room)
    assert "QB-2609F" in text and "QB-2609C" in text and "QB-2609G" not in text
    await room.press(room.last_message(), "未认领")
    text = shown(room)
    assert "QB-2609F" in text and "QB-2609G" in text and "QB-2609C" not in text
    await room.press(room.last_message(), "待验收")
    assert "没有案件" in shown(room)
    await room.press(room.last_message(), "今日到期")
    assert "没有案件" in shown(room)
    await room.press(room.last_message(), "按平台")
    assert "选择" in shown(room)
    await room.press(room.last_message(), "清波街道综合执法平台")
    text = shown(room)
    assert "综合执法" in text.splitlines()[0] and "QB-2609F" in text and "QB-2609C" not in text
    await room.press(room.last_message(), "按网格")
    await room.press(room.last_message(), "劳动路社区第2网格")
    assert "没有案件" in shown(room)


async def test_queue_pages_and_a_stale_page(room: FakeUser, rt: Runtime) -> None:
    with rt.db.session() as s:
        street = s.exec(select(Street).where(Street.code == "330102001")).one()
        for i in range(11):
            s.add(Case(code=f"QB-261001-{i:04d}", state=CaseState.REPORTED, street_id=street.id,
                       description="积水", created_at=ex.t(10, 1, 9, i)))  # fmt: skip
    await room.send("/queue")
    first = room.last_message()
    assert len(shown(room).splitlines()) == 11  # the title and ten lines
    assert "下一页 ➡️" in labels(first)
    await room.press(first, "下一页 ➡️")
    text = shown(room)
    assert "第 2 页" in text and len(text.splitlines()) == 5 and "11. " in text
    # The cases moved on: page 2 no longer exists.
    with rt.db.session() as s:
        for case in s.exec(select(Case).where(Case.state == CaseState.REPORTED)):
            case.state = CaseState.REJECTED
            s.add(case)
    answer = await room.press(room.last_message(), "⬅️ 上一页")
    assert answer is not None
    page = room.last_message()
    answer = await room.press_data(
        page.chat_id if hasattr(page, "chat_id") else room.id, page.message_id, "v1:dqueue:all:0:4"
    )
    assert answer is not None and "已经没有了" in answer.params["text"]
    assert "第 1 页" in shown(room)


async def test_tap_opens_the_card_with_the_pressers_actions(room: FakeUser, tg: FakeTelegram, rt: Runtime) -> None:
    await room.send("/queue")
    await room.press(room.last_message(), "QB-2609G-0007")
    card = room.last_message()
    assert "QB-2609G-0007" in shown(room)
    assert any("平台" in label or "派遣" in label for label in labels(card)), labels(card)
    join_directly(rt, 9810, "执法", "staff", "QB-ZF")
    staff = tg.user(9810, "执法", language_code="zh-hans")
    await staff.send("/queue")
    text = shown(staff)
    assert "QB-2609F" in text and "QB-2609C" not in text and "QB-2609G" not in text  # their team's only
    await staff.press(staff.last_message(), "QB-2609F-0006")
    assert labels(staff.last_message()) == ["🙋 认领"] or "认领" in " ".join(labels(staff.last_message()))
    claim = next(label for label in labels(staff.last_message()) if "认领" in label)
    await staff.press(staff.last_message(), claim)
    with rt.db.read() as s:
        f = s.exec(select(Case).where(Case.code == "QB-2609F-0006")).one()
    assert f.state == CaseState.CLAIMED  # the card's button works from the private chat
    # Forged: a case the presser has no relation to.
    with rt.db.read() as s:
        hb = s.exec(select(Unit).where(Unit.code == "HB-ZF")).one()
        assert hb.id is not None
    answer = await staff.press_data(staff.id, staff.last_message().message_id, "v1:dopen:999999")
    assert answer is not None and ("无效" in answer.params["text"] or "失效" in answer.params["text"])


async def test_find(room: FakeUser, tg: FakeTelegram, rt: Runtime) -> None:
    text = (await room.send("/find 劳动路")).texts[0]
    assert "找到 7 件" in text  # A to G: substring of the descriptions, no word boundaries
    text = (await room.send("/find 案例F")).texts[0]
    assert "找到 1 件" in text and "QB-2609F" in text
    assert "QB-2609F" in (await room.send("/find qb-2609f")).texts[0]
    assert "找到 7 件" in (await room.send("/find QB-2609")).texts[0]  # a code prefix: the code index
    text = (await room.send("/find 0007")).texts[0]  # inside a code, not its start: the substring search
    assert "找到 1 件" in text and "QB-2609G-0007" in text
    assert "没有找到" in (await room.send("/find 100%_")).texts[0]
    assert "找到 7 件" in (await room.send("/find 占道")).texts[0]  # a two-character word, the text's end
    text = (await room.send("/find F")).texts[0]  # one character
    assert "找到 1 件" in text and "QB-2609F" in text
    assert "没有找到" in (await room.send("/find 井盖")).texts[0]
    assert "用法" in (await room.send("/find")).texts[0]
    join_directly(rt, 9811, "执法", "staff", "QB-ZF")
    staff = tg.user(9811, "执法", language_code="zh-hans")
    assert "找到 3 件" in (await staff.send("/find 劳动路")).texts[0]
    resident = tg.user(9812, "居民", language_code="zh-hans")
    assert "没有权限" in (await resident.send("/queue")).texts[0]
    assert "没有权限" in (await resident.send("/find 劳动路")).texts[0]


def test_time_left_in_words() -> None:
    now = ex.NOW
    from datetime import timedelta

    assert time_left("zh_CN", now + timedelta(hours=3, minutes=20), now) == "剩 3 小时"
    assert time_left("zh_CN", now - timedelta(days=1, hours=2), now) == "超期 1 天"
    assert time_left("zh_CN", now + timedelta(minutes=5), now) == "剩 5 分钟"
    assert time_left("en", now + timedelta(hours=1, minutes=1), now) == "1 hour left"
    assert time_left("en", now - timedelta(days=2), now) == "2 days overdue"
    assert time_left("zh_CN", None, now) == "未定时限"
