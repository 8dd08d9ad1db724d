"""The whole loop through the real Application, every party in their own chat:
report → dispatch → claim (with a race) → note → whistle and report-in → resolve →
not fixed → resolve → confirmed → closed."""

from __future__ import annotations

import asyncio
import io

from PIL import Image
from sqlmodel import col, select

from bot.runtime import Runtime
from storage.db import Database
from storage.models import AuditEvent, Case, CaseMedia, Whistle
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg, rgb
from tests.rows import fetch
from tests.test_claim import join_directly

GRID = "33010200100101"


async def test_the_whole_loop(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> None:
    worker = tg.user(9001, "张网格", language_code="zh-hans")
    dispatcher = tg.user(9002, "指挥员", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    room = await bound_group(tg, admin, -100901, "QB-CMD")
    team = await bound_group(tg, admin, -100902, "QB-ZF")
    housing = await bound_group(tg, admin, -100903, "HOUSING")
    staff = []
    for i in range(5):
        join_directly(rt, 9100 + i, f"执法{i}", "staff", "QB-ZF")
        staff.append(tg.user(9100 + i, f"执法{i}", language_code="zh-hans"))
    join_directly(rt, 9200, "住建小刘", "department", "HOUSING")
    officer = tg.user(9200, "住建小刘", language_code="zh-hans")

    # 1. report
    lat, lon = grid_centre(db, GRID)
    await worker.send_photo(make_jpeg(color=(200, 30, 30)), caption="小区围墙私自加盖违建")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "违法建设")
    await worker.press(worker.last_message(), "✅ 确认上报")
    with db.session() as s:
        case = s.exec(select(Case)).one()
    command_card = room.last_message()
    assert case.code in command_card.caption_text

    # 2. dispatch by the command room
    await dispatcher.press(command_card, buttons(command_card)[0][0], chat=room)
    team_card = team.last_message()
    assert case.code in team_card.caption_text and buttons(team_card) == [["🙋 认领"]]
    assert any(case.code in text and "派" in text for text in worker.texts())

    # 3. claim, five at once: one owner
    answers = await asyncio.gather(*(u.press_data(team.id, team_card.message_id, f"v1:claim:{case.id}") for u in staff))
    assert sum("您已认领" in (a.params.get("text") or "") for a in answers if a) == 1
    with db.session() as s:
        owner_id = fetch(s, Case, case.id).owner_user_id
    owner = next(u for u in staff if u.first_name in team.message(team_card.message_id).caption_text)

    # 4. a progress note with a photo, from the card into private chat
    await owner.press(team.message(team_card.message_id), "📝 进展", chat=team)
    assert "添加进展" in owner.last_text()
    await owner.send("已联系业主，明天上午现场查看")
    await owner.send_photo(make_jpeg(color=(10, 10, 200)))
    await owner.press(owner.last_message(), "✅ 完成")
    assert "已为" in owner.last_message().body

    # 5. whistle to the housing bureau, which reports in and replies
    await owner.press(team.message(team_card.message_id), "📣 吹哨", chat=team)
    prompt = owner.last_message()
    await owner.press(prompt, "区住建局")
    await owner.send("需要住建部门认定违建并出具意见")
    await owner.press(owner.last_message(), "✅ 完成")
    dept_card = housing.last_message()
    assert case.code in dept_card.caption_text and buttons(dept_card) == [["📍 报到"]]
    answer = await officer.press(dept_card, "📍 报到", chat=housing)
    assert answer is not None and "已就案件" in answer.params["text"]
    assert "区住建局已就" in owner.last_text()
    assert "已报到" in housing.message(dept_card.message_id).caption_text
    await officer.send("已安排执法人员明日到场", chat=housing, reply_to=dept_card.message_id)
    assert "已安排执法人员明日到场" in owner.last_text()

    # 6. resolve without the required photo: refused; with it: resolved, reporter asked
    await owner.press(team.message(team_card.message_id), "✅ 处置完毕", chat=team)
    await owner.send("违建已拆除")
    turn = await owner.press(owner.last_message(), "✅ 完成")
    assert turn is not None and "需要上传处置后照片" in turn.params["text"]
    await owner.send_photo(make_jpeg(color=(30, 200, 30)))
    await owner.press(owner.last_message(), "✅ 完成")
    verify = worker.last_message()
    # one photo (before and after side by side), the handler's note, the department's reply
    assert verify.photo and "请核查" in verify.caption_text and buttons(verify) == [["✅ 确认已解决", "❌ 未解决"]]
    assert "🟥 处置前 ｜ 🟩 处置后" in verify.caption_text
    assert "📝 处置说明：违建已拆除" in verify.caption_text
    assert "💬 区住建局回复：已安排执法人员明日到场" in verify.caption_text
    composite = worker.tg.api.file_bytes(verify.photo[-1].file_id)
    with Image.open(io.BytesIO(composite)) as image:
        left, right = rgb(image, (5, 5)), rgb(image, (image.width - 5, 5))
    assert left[0] > 150 > left[1] and right[1] > 120 > right[0]  # red bar over before, green over after

    # 7. not fixed (an empty reason is refused), back to the same owner
    await worker.press(verify, "❌ 未解决")
    turn = await worker.press(worker.last_message(), "✅ 完成")
    assert turn is not None and "请先发一段文字" in turn.params["text"]
    await worker.send("只拆了一半，顶棚还在")
    await worker.press(worker.last_message(), "✅ 完成")
    assert "核查未通过" in owner.last_text()
    assert any("核查未通过" in text for text in team.texts())
    with db.session() as s:
        fresh = fetch(s, Case, case.id)
    assert fresh.state == "reopened" and fresh.owner_user_id == owner_id

    # 8. resolve again, confirmed: closed
    await owner.press(team.message(team_card.message_id), "✅ 处置完毕", chat=team)
    await owner.send_photo(make_jpeg(color=(30, 220, 60)), caption="顶棚已全部拆除")
    await owner.press(owner.last_message(), "✅ 完成")
    verify = worker.last_message()
    assert "第 2 轮处置" in verify.caption_text and "📝 处置说明：顶棚已全部拆除" in verify.caption_text
    await worker.press(verify, "✅ 确认已解决")
    assert "已解决并结案" not in worker.last_text()  # the worker confirmed it themself
    assert "已核查结案" in owner.last_text()

    with db.session() as s:
        fresh = fetch(s, Case, case.id)
        trail = [
            (e.action, e.from_state, e.to_state)
            for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case.id).order_by(col(AuditEvent.id)))
        ]
        stages = [
            m.stage for m in s.exec(select(CaseMedia).where(CaseMedia.case_id == case.id).order_by(col(CaseMedia.id)))
        ]
        whistle = s.exec(select(Whistle)).one()
    assert fresh.state == "closed" and fresh.closed_at is not None
    assert [a for a, _, _ in trail] == [
        "case.reported",
        "case.dispatched",
        "case.due_set",
        "case.claimed",
        "case.note",
        "case.escalated",
        "case.reported_in",
        "case.department_reply",
        "case.resolved",
        "case.not_fixed",
        "case.due_set",
        "case.resolved",
        "case.closed",
    ]
    assert ("case.not_fixed", "resolved", "reopened") in trail and ("case.closed", "resolved", "closed") in trail
    assert stages == ["report", "progress", "after", "after"]
    assert whistle.reported_in_at is not None
    final = team.message(team_card.message_id)
    assert "已结案" in final.caption_text and buttons(final) == []
