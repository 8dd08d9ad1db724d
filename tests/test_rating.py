"""Satisfaction (好差评) through the real Application: residents rate closed cases, a bad
rating is followed up (回访) by the command room and may reopen the case; links and QR
codes, reminders, the numbers, and every kind of bad input."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlmodel import col, select

from bot.cases import deadlines
from bot.clock import ManualClock
from bot.rating import ratings as rating
from bot.runtime import Runtime
from handlers import rate as rate_handlers
from handlers.common import off_loop
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import AuditEvent, Case, CaseCard, FollowUp, Outbox, Rating, RatingLink, RatingRequest, pk
from tests.fakebot import MAX_MESSAGE_LENGTH, FakeChat, FakeTelegram, FakeUser, buttons, utf16_len
from tests.flows import bound_group, grid_centre, onboard, statements_of
from tests.images import make_jpeg
from tests.rows import fetch
from tests.test_claim import join_directly

GRID = "33010200100101"  # 清波街道: the command room dispatches by hand
FACES = ["😀", "🙂", "😐", "🙁", "😠"]


def faces(message) -> list[str]:
    """The faces on a rating question's buttons (each button is a face and its words)."""
    return [label.split(" ")[0] for row in buttons(message) for label in row]


LINK = re.compile(r"https://t\.me/GridDeskTestBot\?start=(rate-[A-Za-z0-9_-]+)")


@pytest.fixture
async def w(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> SimpleNamespace:
    worker = tg.user(9501, "网格员甲", language_code="zh-hans")
    dispatcher = tg.user(9502, "调度员乙", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    room = await bound_group(tg, admin, -100951, "QB-CMD")
    team = await bound_group(tg, admin, -100952, "QB-ZF")
    join_directly(rt, 9510, "执法丙", "staff", "QB-ZF")
    staff = tg.user(9510, "执法丙", language_code="zh-hans")
    return SimpleNamespace(tg=tg, db=db, rt=rt, worker=worker, dispatcher=dispatcher, room=room, team=team, staff=staff)


# --- steps --------------------------------------------------------------------------------


async def report_and_dispatch(w: SimpleNamespace, who: FakeUser, caption: str) -> Case:
    lat, lon = grid_centre(w.db, GRID)
    await who.send_photo(make_jpeg(color=(200, 40, 40)), caption=caption)
    await who.send_location(lat, lon)
    await who.press(
        who.last_message(), "违法建设" if (who.language_code or "").startswith("zh") else "Illegal construction"
    )
    summary = who.last_message()
    await who.press(summary, next(label for row in buttons(summary) for label in row if label.startswith("✅")))
    card = w.room.last_message()
    await w.dispatcher.press(card, buttons(card)[0][0], chat=w.room)
    with w.db.session() as s:
        return s.exec(select(Case).order_by(col(Case.id).desc())).first()


def card_id(w: SimpleNamespace, case: Case, chat: FakeChat, purpose: str) -> int:
    with w.db.session() as s:
        row = s.exec(
            select(CaseCard).where(
                CaseCard.case_id == case.id, CaseCard.chat_id == chat.id, CaseCard.purpose == purpose
            )
        ).one()
        return row.message_id


async def resolve(w: SimpleNamespace, case: Case, note: str = "已拆除") -> None:
    """The staff member claims it (if nobody owns it) and resolves it with an after photo."""
    team_card = card_id(w, case, w.team, "team")
    if ["🙋 认领"] in buttons(w.team.message(team_card)):
        await w.staff.press(w.team.message(team_card), "🙋 认领", chat=w.team)
    await w.staff.press(w.team.message(team_card), "✅ 处置完毕", chat=w.team)
    await w.staff.send_photo(make_jpeg(color=(20, 200, 40)), caption=note)
    await w.staff.press(w.staff.last_message(), "✅ 完成")


async def verify_in_room(w: SimpleNamespace, case: Case) -> None:
    await w.dispatcher.press(w.room.message(card_id(w, case, w.room, "verify")), "✅ 确认已解决", chat=w.room)


async def close_residents_case(w: SimpleNamespace, case: Case) -> None:
    await resolve(w, case)
    await verify_in_room(w, case)
    assert state(w.db, pk(case)) == "closed"


async def close_patrol_case(w: SimpleNamespace, case: Case) -> None:
    await resolve(w, case)
    verify = w.worker.last_message()
    await w.worker.press(verify, "✅ 确认已解决")
    assert state(w.db, pk(case)) == "closed"


def state(db: Database, case_id: int) -> str:
    with db.session() as s:
        return fetch(s, Case, case_id).state


def rating_rows(db: Database) -> list[Rating]:
    with db.session() as s:
        return list(s.exec(select(Rating).order_by(col(Rating.id))))


def request_of(db: Database, case: Case, telegram_user: FakeUser) -> RatingRequest:
    from storage.models import User

    with db.session() as s:
        user = s.exec(select(User).where(User.telegram_id == telegram_user.id)).one()
        return s.exec(
            select(RatingRequest).where(RatingRequest.case_id == case.id, RatingRequest.user_id == user.id)
        ).one()


async def make_link(w: SimpleNamespace, who: FakeUser, case: Case) -> str:
    turn = await who.send(f"/ratelink {case.code}")
    photo = turn.replies[-1]
    assert "photo" in photo, turn.texts
    found = LINK.search(photo["caption"])
    assert found, photo["caption"]
    return found.group(1)


def questions(user: FakeUser) -> list:
    """The rating questions the user has now (messages still showing the five faces)."""
    return [m for m in user.messages() if faces(m) == FACES]


# --- the whole story ------------------------------------------------------------------------


async def test_residents_rate_and_a_bad_rating_reopens_the_case(
    w: SimpleNamespace, tg: FakeTelegram, api, rt: Runtime, db: Database
) -> None:
    # A resident reports through the bot; the case is worked and verified by the command room.
    lin = tg.user(9550, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)

    # Closed: the resident gets the before and after photos, a short history and the five levels.
    question = lin.last_message()
    assert faces(question) == FACES
    assert f"Please rate how {case.code}" in question.body
    assert "reported" in question.body and "resolved" in question.body and "verified and closed" in question.body
    assert buttons(question) == [
        ["😀 very satisfied", "🙂 satisfied", "😐 fairly satisfied"],
        ["🙁 dissatisfied", "😠 very dissatisfied"],
    ]
    album = [m for m in lin.messages() if m.photo]
    assert [m.caption for m in album] == ["before", "after"]
    assert any("fixed and closed" in text for text in lin.texts())

    answer = await lin.press(question, "😀")
    assert answer is not None and "recorded" in answer.params["text"]
    edited = lin.chat.message(question.message_id)
    assert "Thank you for your rating: 😀 very satisfied" in edited.body and buttons(edited) == [["Skip"]]
    await lin.press(edited, "Skip")
    assert buttons(lin.chat.message(question.message_id)) == []
    # the same level again, from the old buttons: one rating per resident per case
    request = request_of(db, case, lin)
    answer = await lin.press_data(lin.id, question.message_id, f"v1:rate:{request.id}:4")
    assert answer is not None and "already rated" in answer.params["text"]
    assert [(r.level, r.case_id) for r in rating_rows(db)] == [(5, case.id)]

    # The grid worker makes a rating link for a neighbour: a deep link and its QR code.
    payload = await make_link(w, w.worker, case)
    assert len(payload) <= 64 and len(payload) - len("rate-") >= 16
    png = api.calls_to("sendPhoto")[-1].files["photo"]
    check_qr(png, f"https://t.me/GridDeskTestBot?start={payload}")

    # The neighbour opens it: the case is closed, so the request comes at once.
    neighbour = tg.user(9551, "王阿姨", language_code="zh-hans")
    turn = await neighbour.send(f"/start {payload}")
    assert "请在下方" in turn.texts[0]
    question = neighbour.last_message()
    assert faces(question) == FACES and case.code in question.body and "办理经过" in question.body
    await neighbour.press(question, "🙁")
    edited = neighbour.chat.message(question.message_id)
    assert "不满意" in edited.body and "回访" in edited.body and "3 个工作日" in edited.body
    await neighbour.send("围墙是拆了，可是建筑垃圾一直没清走")
    assert "已收到您的意见" in neighbour.last_text()
    assert buttons(neighbour.chat.message(question.message_id)) == []  # Skip is gone

    # The command room gets the follow-up card, with the comment.
    with db.session() as s:
        followup = s.exec(select(FollowUp)).one()
    card = w.room.message(followup.card_message_id)
    assert (
        case.code in card.text and "回访" in card.text and "建筑垃圾一直没清走" in card.text and "王阿姨" in card.text
    )
    assert buttons(card) == [["📞 已联系"], ["✅ 已沟通解决", "📵 联系不上"], ["🔁 重新办理"]]
    # Monday 09:30 plus three working days of 7.5 hours is Thursday 09:30 (Shanghai); the
    # first reminder comes at half the allowed time, like a case's
    assert followup.due_at - followup.created_at == timedelta(days=3)
    assert followup.created_at < followup.next_reminder_at < followup.due_at  # type: ignore[operator]

    # Late, the follow-up is supervised like a case: the command room hears of it once.
    back = rt.clock.now()
    rt.clock.set(followup.due_at + timedelta(minutes=5))  # type: ignore[attr-defined]
    swept = deadlines.sweep(rt)
    assert swept.kinds.get("followup_rung1") == 1 and deadlines.sweep(rt).reminders == 0
    await drain(tg.app)
    assert any("回访已超时" in text and case.code in text for text in w.room.texts())
    rt.clock.set(back)  # type: ignore[attr-defined]

    # Only the command room decides: a team member's press is refused.
    answer = await w.staff.press(card, "🔁 重新办理", chat=w.room)
    assert answer is not None and "没有权限" in answer.params["text"]
    await w.dispatcher.press(card, "📞 已联系", chat=w.room)
    card = w.room.message(card.message_id)
    assert "已联系" in card.text and buttons(card) == [["✅ 已沟通解决", "📵 联系不上"], ["🔁 重新办理"]]
    answer = await w.dispatcher.press(card, "🔁 重新办理", chat=w.room)
    assert answer is not None and "已重新办理" in answer.params["text"]

    # The case is back with its team and owner; everyone concerned is told.
    assert state(db, pk(case)) == "reopened"
    card = w.room.message(card.message_id)
    assert "结果：🔁 已重新办理" in card.text and buttons(card) == []
    team_card = w.team.message(card_id(w, case, w.team, "team"))
    assert "✅ 处置完毕" in [label for row in buttons(team_card) for label in row]
    assert "重新打开" in w.staff.last_text()
    assert "重新交办" in neighbour.last_text()
    with db.session() as s:
        reopened = s.exec(select(AuditEvent).where(AuditEvent.action == "case.reopened")).one()
        fresh = fetch(s, Case, case.id)
    assert (reopened.from_state, reopened.to_state, reopened.case_id) == ("closed", "reopened", case.id)
    assert (
        fresh.closed_at is None and fresh.due_at is not None and fresh.due_at > fresh.updated_at
    )  # a fresh time limit
    # The same outcome again: already done.
    answer = await w.dispatcher.press_data(w.room.id, card.message_id, f"v1:followup:{followup.id}:r")
    assert answer is not None and "已经完成" in answer.params["text"]

    # The numbers: two asked, two rated, one of two satisfied, one bad, one follow-up reopened.
    numbers = rating.stats(
        rt,
        street_code="330102001",
        since=rt.clock.now() - timedelta(days=1),
        until=rt.clock.now() + timedelta(seconds=1),
    )
    assert (numbers.requests_sent, numbers.responded, numbers.ratings) == (2, 2, 2)
    assert numbers.response_rate == 1.0 and numbers.satisfaction_rate == 0.5 and numbers.bad == 1
    assert numbers.by_level == {5: 1, 2: 1} and numbers.followups == {"reopened": 1}
    text = (await w.dispatcher.send("/stats")).texts[0]  # the desk's figures (issue 11)
    assert "清波街道" in text and "满意率 50%" in text.splitlines() and "返工 1" in text.splitlines()
    team_text = (await w.dispatcher.send("/stats QB-ZF 7d")).texts[0]
    assert "综合执法" in team_text and "满意率 50%" in team_text.splitlines()
    other_street = rating.stats(
        rt,
        street_code="330102002",
        since=rt.clock.now() - timedelta(days=1),
        until=rt.clock.now() + timedelta(seconds=1),
    )
    assert other_street.ratings == 0 and other_street.response_rate is None

    # Staff see the ratings of a case; its reporter never sees another resident's rating.
    lines = rate_handlers.rating_lines(rt, "zh_CN", await off_loop(rating.case_ratings_for_staff, rt, case.id))
    joined = "\n".join(lines)
    assert "😀 非常满意" in joined and "🙁 不满意" in joined and "建筑垃圾" in joined and "已重新办理" in joined
    mine = (await lin.send(f"/case {case.code}")).texts[0]
    assert "王阿姨" not in mine and "dissatisfied" not in mine and "建筑垃圾" not in mine
    staff_view = (await w.dispatcher.send(f"/case {case.code}")).texts[0]
    assert "🙁 不满意" in staff_view and "建筑垃圾" in staff_view  # /case shows staff the ratings

    # Worked and closed again: the residents who rated are not asked again.
    await close_residents_case(w, case)
    with db.session() as s:
        rows = s.exec(select(Outbox).where(Outbox.kind == "rating_request")).all()
    assert len(rows) == 2  # one for each resident, both from the first close


def check_qr(png: bytes, link: str) -> None:
    """Decode the QR code (zxing-cpp, a wheel: no system library needed)."""
    import zxingcpp

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width >= 300
    assert [found.text for found in zxingcpp.read_barcodes(image)] == [link]


def test_qr_card_decodes_to_the_link() -> None:
    from bot.rating.qrcard import qr_png

    link = "https://t.me/GridDeskTestBot?start=rate-" + "A1b2_C3d4-E5f6G7h8I9j0kL"
    check_qr(qr_png(link, "QB-261123-0007"), link)


# --- links: when the case is still open, reopened, closed again ---------------------------


async def test_link_on_an_open_case_and_a_rating_after_a_reopen(
    w: SimpleNamespace, tg: FakeTelegram, db: Database
) -> None:
    case = await report_and_dispatch(w, w.worker, "违章搭建彩钢棚")  # a worker's patrol report
    first = await make_link(w, w.staff, case)
    second = await make_link(w, w.dispatcher, case)
    chen = tg.user(9560, "陈先生", language_code="zh-hans")
    zhao = tg.user(9561, "赵女士", language_code="zh-hans")
    turn = await chen.send(f"/start {first}")
    assert "还在办理中" in turn.texts[0] and questions(chen) == []
    await zhao.send(f"/start {second}")
    # opening their own link again is harmless; nobody else can use it
    assert "还在办理中" in (await chen.send(f"/start {first}")).texts[0]
    assert "已被其他人使用" in (await zhao.send(f"/start {first}")).texts[0]

    await close_patrol_case(w, case)
    assert len(questions(chen)) == 1 and len(questions(zhao)) == 1
    old_question = questions(chen)[0]
    await zhao.press(questions(zhao)[0], "😠")  # very dissatisfied
    await zhao.press(zhao.last_message(), "跳过")
    with db.session() as s:
        followup = s.exec(select(FollowUp)).one()
    await w.dispatcher.press(w.room.message(followup.card_message_id), "🔁 重新办理", chat=w.room)
    assert state(db, pk(case)) == "reopened"

    # Chen presses the request of the first close: the case was reopened since.
    answer = await chen.press(old_question, "😀")
    assert (
        answer is not None
        and "已重新办理" in answer.params["text"]
        and "办结后我们会再请您评价" in answer.params["text"]
    )
    assert [r.user_id for r in rating_rows(db)] == [request_of(db, case, zhao).user_id]

    # Closed again: Chen is asked again (Zhao, who rated, is not), and rates.
    zhao_before = len(zhao.messages())
    await close_patrol_case(w, case)
    assert len([m for m in chen.messages() if "请评价" in (m.text or "")]) == 2
    assert not any("请评价" in (m.text or "") for m in zhao.messages()[zhao_before:])
    await chen.press(chen.last_message(), "🙂")
    assert sorted(r.level for r in rating_rows(db)) == [1, 4]
    # the first request's buttons once more: already rated
    answer = await chen.press(old_question, "😐")
    assert answer is not None and "已评价过" in answer.params["text"]
    assert len(rating_rows(db)) == 2


# --- bad links and people who must not rate ---------------------------------------------------


async def test_bad_links(w: SimpleNamespace, tg: FakeTelegram, clock: ManualClock, db: Database) -> None:
    case = await report_and_dispatch(w, w.worker, "违章搭建彩钢棚")
    resident = tg.user(9570, "Mr Sun", language_code="en")
    for payload in ("rate-xyz", "rate-", "rate-" + "x" * 59 + "!", "rate-" + "A" * 24, "rate-" + "Z" * 60):
        turn = await resident.send(f"/start {payload}")
        assert "not valid" in turn.texts[0], payload
    # an expired link
    expired = await make_link(w, w.worker, case)
    clock.advance(timedelta(days=31))
    assert "expired" in (await resident.send(f"/start {expired}")).texts[0]
    # a used one
    used = await make_link(w, w.worker, case)
    await tg.user(9571, "Ms Wu", language_code="en").send(f"/start {used}")
    assert "already used" in (await resident.send(f"/start {used}")).texts[0]
    with db.session() as s:
        links = s.exec(select(RatingLink).order_by(col(RatingLink.id))).all()
        requests = s.exec(select(RatingRequest)).all()
    assert [link.used_at is not None for link in links] == [False, True]
    assert len(requests) == 1
    # a staff member of the case's team, the dispatcher, the grid worker: no rating of their own work
    staff_link = await make_link(w, w.worker, case)
    turn = await w.staff.send(f"/start {staff_link}")
    assert "不能为它评价" in turn.texts[0]
    for who in (w.dispatcher, w.worker):
        assert "不能为它评价" in (await who.send(f"/start {staff_link}")).texts[0]
    # …and the link is still there for a resident
    assert "still being handled" in (await resident.send(f"/start {staff_link}")).texts[0]
    # who may make links: not a resident who has nothing to do with the case, not a stranger's code
    assert "Only the case's grid worker" in (await resident.send(f"/ratelink {case.code}")).texts[0]
    assert "No case" in (await resident.send("/ratelink QB-000000-0000")).texts[0]
    assert "Usage" in (await resident.send("/ratelink")).texts[0]
    group_turn = await w.worker.send(f"/ratelink {case.code}", chat=w.room)
    assert "私聊" in group_turn.texts[0]


async def test_forged_and_foreign_rating_buttons(w: SimpleNamespace, tg: FakeTelegram, db: Database) -> None:
    lin = tg.user(9580, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)
    request = request_of(db, case, lin)
    question = lin.last_message()
    stranger = tg.user(9581, "Mr Ma", language_code="en")
    for who, data in (
        (stranger, f"v1:rate:{request.id}:5"),  # someone else's request
        (w.staff, f"v1:rate:{request.id}:1"),
        (lin, f"v1:rate:{request.id}:9"),  # no such level
        (lin, "v1:rate:999999:5"),
        (lin, f"v1:rate:{request.id}"),
        (lin, "v1:skip_comment:424242"),
        (lin, "v1:followup:1:c"),
    ):
        answer = await who.press_data(lin.id, question.message_id, data)
        assert answer is not None and answer.params.get("show_alert") is True, data
    assert rating_rows(db) == []
    # a team member who somehow holds a request is refused politely, not silently
    from storage import ratings as rows

    with db.session() as s:
        from storage.models import User

        staff_user = s.exec(select(User).where(User.telegram_id == w.staff.id)).one()
        own, _ = rows.attach(s, case_id=case.id, user_id=staff_user.id, origin="link", now=w.rt.clock.now())  # type: ignore[arg-type]
        own_id = own.id
    answer = await w.staff.press_data(w.staff.id, 1, f"v1:rate:{own_id}:5")
    assert answer is not None and "不能为它评价" in answer.params["text"]
    assert rating_rows(db) == []


async def test_a_long_comment_is_shortened(w: SimpleNamespace, tg: FakeTelegram, db: Database) -> None:
    lin = tg.user(9590, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)
    await lin.press(lin.last_message(), "😠")
    assert "follow-up within 3 working days" in lin.last_message().body
    await lin.send("很" * 4990 + "不满意的理由")
    assert "first 1000 characters" in lin.last_text()
    [row] = rating_rows(db)
    assert row.comment is not None and len(row.comment) == rating.MAX_COMMENT and row.comment_truncated
    with db.session() as s:
        followup = s.exec(select(FollowUp)).one()
    card = w.room.message(followup.card_message_id)
    assert "很很很" in card.text and utf16_len(card.text) <= MAX_MESSAGE_LENGTH
    # the window closed with the comment: the next message starts a report as usual
    await lin.send("Another problem: a broken streetlight")
    assert "Another problem" not in (rating_rows(db)[0].comment or "")
    # nothing the bot sent is over Telegram's limits
    for chat in (lin.chat, w.room):
        for text in chat.texts():
            assert utf16_len(text) <= MAX_MESSAGE_LENGTH


async def test_a_voice_comment_and_a_command_that_ends_the_wait(
    w: SimpleNamespace, tg: FakeTelegram, db: Database
) -> None:
    lin = tg.user(9595, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)
    await lin.press(lin.last_message(), "🙁")
    await lin.send_voice(duration=7)
    assert "comment is saved" in lin.last_text()
    [row] = rating_rows(db)
    assert row.comment_voice_file_id and row.comment is None
    with db.session() as s:
        followup = s.exec(select(FollowUp)).one()
    assert "语音意见 7 秒" in w.room.message(followup.card_message_id).text
    # a second case: a command during the wait ends it and is answered as a command
    case2 = await report_and_dispatch(w, lin, "Illegal construction: another shed")
    await close_residents_case(w, case2)
    await lin.press(lin.last_message(), "😀")
    turn = await lin.send("/my")
    assert case2.code in turn.texts[0]
    await lin.send("thanks")
    assert all(r.comment is None for r in rating_rows(db))


async def test_a_window_open_at_a_restart_is_still_ended_by_a_command(
    w: SimpleNamespace, tg: FakeTelegram, db: Database, rt: Runtime
) -> None:
    """Which windows may be open is kept in memory; a new process reads them at start-up."""
    lin = tg.user(9596, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed on the roof")
    await close_residents_case(w, case)
    await lin.press(lin.last_message(), "😀")
    [row] = rating_rows(db)
    rt.cache.pop("comment_windows")  # a restart: nothing known, until read
    assert rating.window_may_be_open(rt, row.user_id)
    rating.remember_windows(rt)  # what start-up does (griddesk/app.py warm_caches)
    assert rt.cache["comment_windows"] == {row.user_id: row.comment_until}
    turn = await lin.send("/my")
    assert case.code in turn.texts[0]
    await lin.send("thanks")  # not a comment: the command ended the wait
    assert [r.comment for r in rating_rows(db)] == [None]
    assert not rating.window_may_be_open(rt, row.user_id)  # and what is known says so


async def test_a_residents_command_with_no_window_open_asks_the_database_nothing_first(
    w: SimpleNamespace, tg: FakeTelegram, db: Database, rt: Runtime
) -> None:
    lin = tg.user(9597, "Ms Lin", language_code="en")
    await lin.send("/help")  # registered
    with statements_of(db) as seen:
        await lin.send("/my")
    assert not any("FROM rating" in sql for sql in seen)  # no comment window asked for
    ours = [sql for sql in seen if not sql.startswith("BEGIN") and "outbox" not in sql]  # not the harness's drain
    assert len(ours) == 1 and "FROM cases" in ours[0]  # /my's own read, and nothing before it


# --- reminders --------------------------------------------------------------------------------


async def test_one_reminder_to_rate(
    w: SimpleNamespace, tg: FakeTelegram, rt: Runtime, clock: ManualClock, app, db: Database
) -> None:
    lin = tg.user(9600, "Ms Lin", language_code="en")
    sun = tg.user(9601, "Mr Sun", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await sun.send(f"/start {await make_link(w, w.worker, case)}")
    await close_residents_case(w, case)
    await sun.press(sun.last_message(), "🙂")  # Sun rates at once; Lin does not
    assert rating.remind_unrated(rt) == 0
    clock.advance(timedelta(hours=23))
    assert rating.remind_unrated(rt) == 0
    clock.advance(timedelta(hours=2))
    # two sweeps at once (two processes): one reminder
    results = await asyncio.gather(off_loop(rating.remind_unrated, rt), off_loop(rating.remind_unrated, rt))
    assert sorted(results) == [0, 1]
    assert rating.remind_unrated(rt) == 0
    await drain(app)
    reminder = lin.last_message()
    assert "A reminder" in reminder.body and faces(reminder) == FACES
    assert not any("reminder" in text for text in sun.texts())
    clock.advance(timedelta(days=10))
    assert rating.remind_unrated(rt) == 0  # none after that
    await lin.press(reminder, "😐")
    assert [r.level for r in rating_rows(db)] == [4, 3]
    assert "rating_reminders" in [job.name for job in app.job_queue.jobs()]


async def test_a_request_rated_before_it_was_sent_is_not_sent(
    w: SimpleNamespace, tg: FakeTelegram, rt: Runtime, app, db: Database
) -> None:
    lin = tg.user(9610, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)
    request = request_of(db, case, lin)
    # a reminder row waiting in the outbox when the resident rates: it renders to nothing
    with db.session() as s:
        from storage import outbox as rows

        rows.enqueue(
            s,
            chat_id=lin.id,
            kind="rating_request",
            case_id=case.id,
            payload={"request": request.id, "reminder": True},
            now=rt.clock.now(),
        )
    await lin.press_data(lin.id, lin.last_message().message_id, f"v1:rate:{request.id}:5")
    before = len(lin.messages())
    await drain(app)
    assert len(lin.messages()) == before


# --- who sees the numbers -----------------------------------------------------------------------


async def test_stats_permissions(w: SimpleNamespace, tg: FakeTelegram, admin: FakeUser, rt: Runtime) -> None:
    assert "综合执法" in (await w.staff.send("/stats")).texts[0]  # team staff: their team (issue 11)
    assert "not allowed" in (await tg.user(9620, "Mr Sun", language_code="en").send("/stats")).texts[0]
    assert "无权查看330102002" in (await w.dispatcher.send("/stats 330102002")).texts[0]
    assert "无权查看HB-ZF" in (await w.dispatcher.send("/stats HB-ZF")).texts[0]
    assert "用法" in (await w.dispatcher.send("/stats 330102001 QB-ZF")).texts[0]
    assert "上城区" in (await admin.send("/stats")).texts[0]
    assert "湖滨街道" in (await admin.send("/stats 330102002 7d")).texts[0]
    supervisor = tg.user(9621, "督查", language_code="zh-hans")
    await onboard(admin, supervisor, "supervisor", "330102")
    text = (await supervisor.send("/stats")).texts[0]
    assert "上城区" in text and "参评率 —" in text
    help_text = (await w.dispatcher.send("/help")).texts[0]
    assert "/ratelink" in help_text and "/stats" in help_text
    assert "/ratelink" in (await w.worker.send("/help")).texts[0]


async def test_a_resident_who_skipped_rating_rates_from_my(w: SimpleNamespace, tg: FakeTelegram, db: Database) -> None:
    lin = tg.user(9700, "Ms Lin", language_code="en")
    case = await report_and_dispatch(w, lin, "Illegal construction: a shed built on the roof")
    await close_residents_case(w, case)  # asked to rate; Lin does not answer
    listing = (await lin.send("/my")).replies[0]
    rate_button = listing["reply_markup"]["inline_keyboard"][0][0]
    assert rate_button["text"] == f"⭐ Rate {case.code}" and "start=ratereq-" in rate_button["url"]
    payload = rate_button["url"].split("start=", 1)[1]
    await lin.send(f"/start {payload}")
    question = lin.last_message()
    assert faces(question) == FACES and case.code in question.body
    await lin.press(question, "😀")
    # rated: no button any more, and the old link says so
    assert "reply_markup" not in (await lin.send("/my")).replies[0]
    assert "already rated" in (await lin.send(f"/start {payload}")).texts[0]
    # somebody else's request: refused the same way
    other = tg.user(9701, "Mr Sun", language_code="en")
    assert "already rated" in (await other.send(f"/start {payload}")).texts[0]
