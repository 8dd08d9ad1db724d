"""The field's rough edges, each by what the user sees: onboarding, the location button,
rating buttons, the QR caption, names, the handler's button, hints outside a report."""

from __future__ import annotations

import json
import re

from sqlmodel import select

from bot.runtime import Runtime
from storage.db import Database
from storage.models import Case, User
from tests.conftest import ADMIN_ID
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons
from tests.flows import LINK, bound_group, grid_centre, onboard
from tests.images import make_jpeg

GRID = "33010200100101"


def chat_menu(api: FakeBotAPI, chat_id: int) -> list[str]:
    """The commands of the menu scoped to one private chat."""
    for (scope, _lang), commands in api.commands.items():
        if json.loads(scope) == {"type": "chat", "chat_id": chat_id}:
            return [c["command"] for c in commands]
    return []


async def test_invite_welcome_has_the_menu_and_how_to_report(
    tg: FakeTelegram, admin: FakeUser, api: FakeBotAPI
) -> None:
    worker = tg.user(5101, "刘", last_name="网格", language_code="zh-hans")
    turn = await admin.send(f"/invite worker {GRID}")
    found = LINK.search(turn.texts[-1])
    assert found
    turn = await worker.send(f"/start {found.group(1)}")
    welcome = turn.replies[0]
    assert "欢迎，刘网格！" in welcome["text"]  # two Chinese names joined without a space
    assert "📝 上报问题：点下方“📝 上报问题”，或直接发一张现场照片" in welcome["text"]
    assert worker.reply_keyboard() == [["📝 上报问题", "📋 我的上报"]]
    # the command menu of the worker's own chat: their commands, not the staff's or the admin's
    menu = chat_menu(api, worker.id)
    assert "report" in menu and "ratelink" in menu and "tasks" not in menu and "invite" not in menu
    staff = tg.user(5102, "王执法", language_code="zh-hans")
    await onboard(admin, staff, "staff", "QB-ZF")
    assert "tasks" in chat_menu(api, staff.id)
    await admin.send("/start")
    assert {"invite", "bind", "stats"} <= set(chat_menu(api, ADMIN_ID))


async def test_after_a_photo_the_location_button_is_there(tg: FakeTelegram, admin: FakeUser) -> None:
    worker = tg.user(5103, "赵网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    turn = await worker.send_photo(make_jpeg(), caption="井盖缺失")
    ack, hint = turn.replies
    assert "发送我的位置" in ack["text"] and buttons(ack) == [["🏠 使用我的网格中心点"]]
    keyboard = turn.calls_to("sendMessage")[-1].params["reply_markup"]["keyboard"]
    assert keyboard[0][0] == {"text": "📍 发送我的位置", "request_location": True}
    assert "发送我的位置" in hint["text"]


async def test_rating_buttons_qr_caption_and_the_handlers_button(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database
) -> None:
    worker = tg.user(5104, "钱网格", language_code="zh-hans")
    dispatcher = tg.user(5105, "陈调度", language_code="zh-hans")
    staff = tg.user(5106, "王", last_name="执法", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    await onboard(admin, staff, "staff", "QB-ZF")
    room = await bound_group(tg, admin, -100601, "QB-CMD")
    team = await bound_group(tg, admin, -100602, "QB-ZF")
    lat, lon = grid_centre(db, GRID)
    await worker.send_photo(make_jpeg(), caption="小区违建")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "违法建设")
    await worker.press(worker.last_message(), "✅ 确认上报")
    card = room.last_message()
    await dispatcher.press(card, buttons(card)[0][0], chat=room)
    # Chinese without spaces around names: "已派遣至清波街道综合执法平台办理"
    assert any("已派遣至清波街道综合执法平台办理" in text for text in worker.texts())
    card = team.last_message()
    await staff.press(card, "🙋 认领", chat=team)
    card = team.message(card.message_id)
    assert "认领人：王执法" in card.caption_text  # "王" + "执法": one name
    assert buttons(card)[0][0] == "✅ 处置完毕"  # 办结 is for closure only
    await staff.press(card, "✅ 处置完毕", chat=team)
    await staff.send_photo(make_jpeg(color=(0, 200, 0)), caption="已拆除")
    await staff.press(staff.last_message(), "✅ 完成")
    await worker.press(worker.last_message(), "✅ 确认已解决")
    with db.session() as s:
        code = s.exec(select(Case)).one().code
    turn = await worker.send(f"/ratelink {code}")
    assert "用 Telegram 扫码" in turn.replies[-1]["caption"] and "微信" in turn.replies[-1]["caption"]
    payload = re.search(r"start=(rate-[\w-]+)", turn.replies[-1]["caption"])
    assert payload
    resident = tg.user(5107, "王阿姨", language_code="zh-hans")
    await resident.send(f"/start {payload.group(1)}")
    question = resident.last_message()
    assert buttons(question) == [["😀 非常满意", "🙂 满意", "😐 基本满意"], ["🙁 不满意", "😠 非常不满意"]]
    await resident.press(question, "😀 非常满意")
    assert "非常满意" in resident.chat.message(question.message_id).body


async def test_text_and_voice_outside_a_report_get_a_hint(tg: FakeTelegram) -> None:
    resident = tg.user(5108, "Lin", language_code="en")
    hint = (await resident.send("hello, is anyone there?")).texts[0]
    assert "report a problem" in hint and "send a photo" in hint and "/my" in hint
    zh = tg.user(5109, "李阿姨", language_code="zh-hans")
    text = (await zh.send("你好")).texts[0]
    assert "我能帮您" in text and "直接发一张照片" in text and "我没有理解" not in text
    voice = (await zh.send_voice()).texts[0]
    assert "上报问题" in voice and "语音可作为问题描述" in voice


def test_display_names_join_like_telegram() -> None:
    assert User(telegram_id=1, first_name="刘", last_name="网格").display_name == "刘网格"
    assert User(telegram_id=1, first_name="Lin", last_name="Wei").display_name == "Lin Wei"
    assert User(telegram_id=1, first_name="刘", last_name="Wei").display_name == "刘 Wei"


async def test_invite_accepts_chinese_role_names(admin: FakeUser) -> None:
    for role in ("网格员", "调度员", "平台工作人员", "督导"):
        scope = {"网格员": GRID, "调度员": "QB-CMD", "平台工作人员": "QB-ZF", "督导": "330102001"}[role]
        turn = await admin.send(f"/invite {role} {scope}")
        assert "start=join-" in turn.texts[-1], (role, turn.texts)


def test_english_team_names_and_states_read_as_sentences() -> None:
    from bot.i18n import t
    from bot.org.org_file import DEFAULT_ORG_FILE, load_org_file

    teams = {u.code: u.name.en for u in load_org_file(DEFAULT_ORG_FILE).teams()}
    assert teams["QB-ZF"] == "Qingbo Subdistrict comprehensive law enforcement team"
    assert t("zh_CN", "state.returned") == "已退回指挥中心"  # says to whom


def test_due_times_in_words() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.cases.timewords import due_words

    sh = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 11, 23, 16, 28, tzinfo=sh)
    assert due_words("zh_CN", datetime(2026, 11, 23, 17, 30, tzinfo=sh), now, sh) == "今天 17:30 · 剩 1 小时"
    assert due_words("zh_CN", datetime(2026, 11, 24, 10, 28, tzinfo=sh), now, sh) == "明天 10:28 · 剩 18 小时"
    assert due_words("en", datetime(2026, 11, 23, 16, 58, tzinfo=sh), now, sh) == "today 16:58 · 30 minutes left"
    assert due_words("en", datetime(2026, 11, 23, 14, 28, tzinfo=sh), now, sh) == "today 14:28 · ⚠️ overdue by 2 hours"
    assert due_words("zh_CN", datetime(2026, 11, 30, 9, 0, tzinfo=sh), now, sh) == "11-30 09:00"


async def test_work_lists_show_time_left_owner_and_open_on_a_tap(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database
) -> None:
    from tests.test_claim import file_garbage_case, join_directly

    worker = tg.user(5201, "周网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", "33010200200101")
    team = await bound_group(tg, admin, -100801, "HB-ZF")
    join_directly(rt, 5202, "吴执法", "staff", "HB-ZF")
    staff = tg.user(5202, "吴执法", language_code="zh-hans")
    # nothing at all: one answer, not one "none" per list
    turn = await staff.send("/tasks")
    assert turn.texts == ["✅ 暂无待办：没有您认领的案件，也没有待认领的案件。"]
    case = await file_garbage_case(worker, db)
    team_list = (await staff.send("/tasks")).texts[1]
    assert case.code in team_list and "⏳今天 15:30 · 剩 6 小时" in team_list
    await staff.press(team.last_message(), "🙋 认领", chat=team)
    dispatcher = tg.user(5203, "陈调度", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "HB-CMD")
    street = (await dispatcher.send("/tasks")).texts[-1]
    assert case.code in street and "👤吴执法" in street
    # the code is a link that opens the case in this chat
    reply = (await dispatcher.send("/tasks")).replies[-1]
    link = next(e["url"] for e in reply["entities"] if e["type"] == "text_link")
    assert link.endswith(f"start=case-{case.code}")
    opened = (await dispatcher.send(f"/start case-{case.code}")).texts[0]
    assert case.code in opened and "吴执法" in opened
    mine = (await worker.send("/my")).replies[0]
    assert any(e.get("url", "").endswith(f"case-{case.code}") for e in mine["entities"])


async def test_a_grid_centre_is_approximate_has_no_pin_and_no_duplicates(
    tg: FakeTelegram, admin: FakeUser, db: Database
) -> None:
    worker = tg.user(5301, "孙网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    room = await bound_group(tg, admin, -100901, "QB-CMD")
    for caption in ("路边垃圾成堆", "垃圾好几天没人收"):
        turn = await worker.send_photo(make_jpeg(), caption=caption)
        ack = worker.tg.message(worker.id, turn.replies[0]["message_id"])
        await worker.press(ack, "🏠 使用我的网格中心点")
        await worker.press(worker.last_message(), "暴露垃圾")
        summary = worker.last_message()
        # the second report at the same centre is not offered as a duplicate of the first
        assert "附近已有" not in summary.body
        await worker.press(summary, "✅ 确认上报")
    with db.session() as s:
        assert len(s.exec(select(Case)).all()) == 2
    card = room.last_message()
    # the place said once, marked approximate, and no map pin
    assert "📍 劳动路社区第1网格 · 清波街道 · 📌 网格中心点（大致位置）" in card.caption_text
    assert not [e for e in card.caption_entities if e.type == "text_link"]
