"""The command room decides on a new case through the real Application: dispatch to the
suggested team or another one, mark it a duplicate (button or /duplicate), reject it (preset
reason or /reject); outsiders, stale and forged buttons, late presses and a race."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import Application

from bot.cases import dispatch
from bot.i18n import t
from bot.intake.photos import process_photo
from bot.intake.submit import PhotoIn, ReportIn, submit_report
from bot.people import identity as people
from bot.runtime import Runtime
from handlers.outbox_sender import drain
from storage import people as people_store
from storage.db import Database
from storage.models import AuditEvent, Case, CaseMedia, CaseState, Category, Grid, SupportingReport, Unit, pk
from tests.conftest import START
from tests.fakebot import Call, FakeChat, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard, statements_of
from tests.images import make_jpeg

GRID = "33010200100101"  # 清波街道 (QB), which dispatches by hand
HB_GRID = "33010200200101"  # 湖滨街道 (HB), which dispatches automatically
QB, HB = "330102001", "330102002"
ZF_ZH, ZF_EN = "清波街道综合执法平台", "Qingbo Subdistrict comprehensive law enforcement team"
BM_ZH = "清波街道便民服务平台"
DISPATCH_ZF = f"派遣至{ZF_ZH}"
STALE = t("zh_CN", "button.stale")
NOT_ALLOWED = t("zh_CN", "dispatch.not_allowed")

# After dispatch the command room's card keeps one button: 更正分类 (issue 11).
FIX_ONLY = [["✏️ 更正分类"]]


# --- the world --------------------------------------------------------------------


@pytest.fixture
async def dispatcher(tg: FakeTelegram, admin: FakeUser) -> FakeUser:
    user = tg.user(7001, "李调度", language_code="zh-hans")
    await onboard(admin, user, "dispatcher", QB)
    return user


@pytest.fixture
async def command_room(tg: FakeTelegram, admin: FakeUser) -> FakeChat:
    return await bound_group(tg, admin, -100500, "QB-CMD")


@pytest.fixture
async def team(tg: FakeTelegram, admin: FakeUser) -> FakeChat:
    return await bound_group(tg, admin, -100601, "QB-ZF")


@pytest.fixture
async def resident(tg: FakeTelegram) -> FakeUser:
    user = tg.user(6001, "Ms Zhou", language_code="en")
    await user.send("/start")
    return user


def unit_id(db: Database, code: str) -> int:
    with db.session() as s:
        return s.exec(select(Unit).where(Unit.code == code)).one().id  # type: ignore[return-value]


def load(db: Database, case_id: int) -> Case:
    with db.session() as s:
        case = s.get(Case, case_id)
        assert case is not None
        return case


def events(db: Database, case_id: int) -> list[AuditEvent]:
    with db.session() as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(col(AuditEvent.id))))


def user_id(db: Database, telegram_id: int) -> int:
    with db.session() as s:
        user = people_store.get_user_by_telegram_id(s, telegram_id)
        assert user is not None
        return user.id  # type: ignore[return-value]


async def file_case(
    app: Application,
    rt: Runtime,
    db: Database,
    reporter: FakeUser,
    *,
    grid: str = GRID,
    category: str = "CLEAN-EXPOSED-GARBAGE",
    description: str = "Garbage piled at the gate for days",
    north_m: float = 0.0,
    photo: bool = False,
) -> Case:
    """A report as intake registers it, its cards posted by the outbox."""
    lat, lon = grid_centre(db, grid)
    lat += 0.00001  # a measured point near the centre (the exact centre is approximate)
    with db.session() as s:
        category_id = s.exec(select(Category).where(Category.code == category)).one().id
        grid_id = s.exec(select(Grid).where(Grid.code == grid)).one().id
    photos: tuple[PhotoIn, ...] = ()
    if photo:
        stored = process_photo(
            make_jpeg(color=(int(north_m) % 255, 90, 30)), rt.settings.media_dir, default_tz=rt.settings.tz
        )
        photos = (
            PhotoIn(
                file_id=f"photo-{stored.sha256[:8]}",
                sha256=stored.sha256,
                original_path=str(stored.original_path),
                jpeg_path=str(stored.jpeg_path),
                thumb_path=str(stored.thumb_path),
                width=stored.width,
                height=stored.height,
            ),
        )
    done = submit_report(
        rt,
        ReportIn(
            reporter_user_id=user_id(db, reporter.id),
            source="resident",
            latitude=lat + north_m / 111_195,
            longitude=lon,
            grid_id=grid_id,  # type: ignore[arg-type]
            category_id=category_id,  # type: ignore[arg-type]
            description=description,
            photos=photos,
        ),
    )
    await drain(app)
    return load(db, done.case_id)


def card_of(chat: FakeChat, code: str):
    found = [m for m in chat.messages() if (m.caption or m.text or "").startswith(code)]
    assert len(found) == 1, [m.caption or m.text for m in chat.messages()]
    return found[0]


def answered(call: Call | None) -> tuple[str, bool]:
    assert call is not None, "the press was not answered"
    return str(call.params.get("text", "")), bool(call.params.get("show_alert", False))


# --- dispatch ---------------------------------------------------------------------


async def test_dispatcher_sends_the_case_to_the_suggested_team(
    app: Application,
    rt: Runtime,
    db: Database,
    dispatcher: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    case = await file_case(app, rt, db, resident, photo=True)
    card = command_room.last_message()
    assert card is not None and card.photo and case.code in card.caption_text
    assert buttons(card)[0] == [DISPATCH_ZF]
    posted = len(command_room.messages())

    text, alert = answered(await dispatcher.press(card, DISPATCH_ZF))

    assert text == f"✅ {case.code}已派遣至{ZF_ZH}" and not alert
    # the team's group gets the card, without the command room's buttons
    team_card = card_of(team, case.code)
    assert team_card.photo and "已派遣" in team_card.caption
    assert not {"选择其他平台", "标记重复", "不予受理"} & {label for row in buttons(team_card) for label in row}
    # the command room's card is edited in place: it shows the team and asks nothing more
    after = command_room.message(card.message_id)
    assert len(command_room.messages()) == posted
    assert (
        buttons(after) == FIX_ONLY and f"承办：{ZF_ZH}" in after.caption_text and "状态：已派遣" in after.caption_text
    )
    # the reporter hears it in their own language
    assert (
        resident.last_text()
        == f"Your report {case.code} has been sent to {ZF_EN} to deal with. We will keep you posted."
    )
    # and the database holds it, with who did it
    stored = load(db, pk(case))
    assert (stored.state, stored.unit_id, stored.dispatched_at, stored.version) == (
        "dispatched",
        unit_id(db, "QB-ZF"),
        START,
        2,
    )
    event = [e for e in events(db, pk(case)) if e.action == "case.dispatched"][-1]
    assert (event.action, event.from_state, event.to_state) == ("case.dispatched", "reported", "dispatched")
    assert event.actor_user_id == user_id(db, dispatcher.id)
    assert event.data["unit_code"] == "QB-ZF" and event.data["auto"] is False


async def test_admin_chooses_another_team_and_goes_back(
    app: Application,
    rt: Runtime,
    db: Database,
    admin: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    case = await file_case(app, rt, db, resident)
    card = command_room.last_message()
    original = buttons(card)

    text, _ = answered(await admin.press(card, "选择其他平台"))
    assert text == "请选择承办平台"
    menu = buttons(command_room.message(card.message_id))
    assert menu == [["清波街道综治工作平台"], ["清波街道市场监管平台"], [f"⭐ {ZF_ZH}"], [BM_ZH], ["↩️ 返回"]]
    assert command_room.message(card.message_id).text == card.text  # only the keyboard changed

    await admin.press(card, "↩️ 返回")
    assert buttons(command_room.message(card.message_id)) == original

    await admin.press(card, "选择其他平台")
    text, alert = answered(await admin.press(card, BM_ZH))
    # 便民服务 has no group yet: say so loudly, the case is still theirs
    assert alert and "还没有绑定群组" in text and BM_ZH in text
    stored = load(db, pk(case))
    assert (stored.state, stored.unit_id) == ("dispatched", unit_id(db, "QB-BM"))
    assert [e.action for e in events(db, pk(case))] == [
        "case.reported",
        "case.dispatched",
        "case.due_set",
        "notify.no_chat",
    ]
    after = command_room.message(card.message_id)
    assert buttons(after) == FIX_ONLY and f"承办：{BM_ZH}" in after.body
    assert all(case.code not in (m.caption or m.text or "") for m in team.messages())  # not 执法's
    assert resident.last_text() is not None and "Qingbo Subdistrict convenience services team" in resident.last_text()


async def test_a_returned_case_is_dispatched_again(
    app: Application,
    rt: Runtime,
    db: Database,
    dispatcher: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    case = await file_case(app, rt, db, resident)
    await dispatcher.press(command_room.last_message(), DISPATCH_ZF)
    with db.session() as s:  # the team hands it back (another feature's job; set it here)
        row = s.get(Case, case.id)
        assert row is not None
        row.state, row.version = CaseState.RETURNED, row.version + 1
        s.add(row)
    bm = unit_id(db, "QB-BM")
    card = command_room.last_message()
    text, _ = answered(await dispatcher.press_data(command_room.id, card.message_id, f"v1:dispatch:{case.id}:{bm}"))
    assert BM_ZH in text
    stored = load(db, pk(case))
    assert (stored.state, stored.unit_id) == ("dispatched", bm)
    last = [e for e in events(db, pk(case)) if e.action == "case.dispatched"][-1]
    assert (last.from_state, last.to_state) == ("returned", "dispatched")
    # 执法's old card is refreshed: it now names the team that has the case
    assert f"承办：{BM_ZH}" in card_of(team, case.code).text


# --- duplicate --------------------------------------------------------------------


async def test_mark_duplicate_with_the_buttons(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    dispatcher: FakeUser,
    command_room: FakeChat,
    resident: FakeUser,
) -> None:
    first = await file_case(app, rt, db, resident, description="Garbage piled at the gate for days", photo=True)
    neighbour = tg.user(6002, "王大妈", language_code="zh-hans")
    await neighbour.send("/start")
    second = await file_case(app, rt, db, neighbour, description="门口垃圾堆了好几天", north_m=12, photo=True)
    card = card_of(command_room, second.code)

    text, alert = answered(await dispatcher.press(card, "标记重复"))
    assert f"/duplicate {second.code}" in text and not alert
    assert buttons(command_room.message(card.message_id)) == [[f"{first.code} · 12 米 · Garbage piled a…"], ["↩️ 返回"]]
    text, _ = answered(await dispatcher.press(card, f"{first.code} · 12 米 · Garbage piled a…"))
    assert text == f"✅ {second.code}已标记为{first.code}的重复案件"

    stored = load(db, pk(second))
    assert (stored.state, stored.duplicate_of_id) == ("duplicate", first.id)
    after = command_room.message(card.message_id)
    assert buttons(after) == [] and f"重复案件，原案件：{first.code}" in after.caption_text
    # nothing is lost: the neighbour and the photo join the original, whose card says so
    with db.session() as s:
        supports = s.exec(select(SupportingReport).where(SupportingReport.case_id == first.id)).all()
        copied = s.exec(select(CaseMedia).where(CaseMedia.case_id == first.id, CaseMedia.stage == "support")).all()
    assert [x.reporter_user_id for x in supports] == [user_id(db, neighbour.id)]
    assert len(copied) == 1 and copied[0].support_id == supports[0].id
    original_card = card_of(command_room, first.code)
    assert "另有 1 人次反映同一问题" in original_card.caption and buttons(original_card)[0] == [DISPATCH_ZF]
    assert neighbour.last_text() is not None and f"与案件{first.code}是同一问题" in neighbour.last_text()
    assert [e.action for e in events(db, pk(second))][-1] == "case.marked_duplicate"
    assert events(db, pk(second))[-1].data["original_code"] == first.code


async def test_mark_duplicate_with_the_command(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    dispatcher: FakeUser,
    command_room: FakeChat,
    resident: FakeUser,
) -> None:
    # far apart (different grids), so the buttons would not offer it
    first = await file_case(app, rt, db, resident, grid="33010200100301")
    second = await file_case(app, rt, db, resident, description="Same pile, seen from the lane")
    card = card_of(command_room, second.code)
    await dispatcher.press(card, "标记重复")
    assert buttons(command_room.message(card.message_id)) == [["↩️ 返回"]]

    turn = await dispatcher.send("/duplicate", chat=command_room)
    assert turn.texts == [t("zh_CN", "dispatch.duplicate_usage")]
    turn = await dispatcher.send(f"/duplicate {second.code} QB-000000-9999", chat=command_room)
    assert turn.texts == ["没有编号为QB-000000-9999的案件。"]
    turn = await dispatcher.send(f"/duplicate {second.code} {second.code}", chat=command_room)
    assert turn.texts == ["案件不能标记为与自己重复。"]

    turn = await dispatcher.send(f"/duplicate {second.code.lower()} {first.code}", chat=command_room)
    assert turn.texts[0] == f"✅ {second.code}已标记为{first.code}的重复案件"
    assert load(db, pk(second)).duplicate_of_id == first.id
    assert buttons(command_room.message(card.message_id)) == []  # the menu left open is gone too
    assert f"Your report {second.code} is about the same problem as case {first.code}" in (resident.last_text() or "")

    turn = await dispatcher.send(f"/duplicate {second.code} {first.code}", chat=command_room)
    assert turn.texts == [f"{second.code}已被李调度标记为{first.code}的重复案件，本次操作未执行。"]
    # a closed-off case cannot be the original
    third = await file_case(app, rt, db, resident, description="Third")
    turn = await dispatcher.send(f"/duplicate {third.code} {second.code}", chat=command_room)
    assert turn.texts == [f"案件{second.code}已结束，不能作为原案件。请选择一个未结案件。"]
    assert load(db, pk(third)).state == "reported"


# --- reject -----------------------------------------------------------------------


async def test_reject_with_a_preset_reason(
    app: Application, rt: Runtime, db: Database, dispatcher: FakeUser, command_room: FakeChat, resident: FakeUser
) -> None:
    case = await file_case(app, rt, db, resident)
    card = command_room.last_message()
    text, _ = answered(await dispatcher.press(card, "不予受理"))
    assert f"/reject {case.code}" in text
    assert buttons(command_room.message(card.message_id)) == [
        ["不属于本街道职责范围"],
        ["信息不足，无法核实"],
        ["已处理完毕"],
        ["经核实不存在问题"],
        ["↩️ 返回"],
    ]
    text, _ = answered(await dispatcher.press(card, "不属于本街道职责范围"))
    assert text == f"✅ {case.code}已不予受理：不属于本街道职责范围"

    stored = load(db, pk(case))
    assert (stored.state, stored.decision_note) == ("rejected", "不属于本街道职责范围")
    after = command_room.message(card.message_id)
    assert buttons(after) == [] and "备注：不属于本街道职责范围" in after.body and "状态：不予受理" in after.body
    # the reporter reads the reason in English
    assert resident.last_text() == (
        f"Sorry, your report {case.code} was not taken up.\nReason: Not our responsibility\n"
        "If you disagree, you can report it again with more detail."
    )
    event = events(db, pk(case))[-1]
    assert (event.action, event.to_state, event.data["reason"], event.note) == (
        "case.rejected",
        "rejected",
        "scope",
        "不属于本街道职责范围",
    )


async def test_reject_with_the_dispatchers_own_words(
    app: Application, rt: Runtime, db: Database, dispatcher: FakeUser, command_room: FakeChat, resident: FakeUser
) -> None:
    case = await file_case(app, rt, db, resident)
    turn = await dispatcher.send(f"/reject {case.code}", chat=command_room)
    assert turn.texts == [t("zh_CN", "dispatch.reject_usage")]
    reason = "属于<高速公路>管理处 & 交警的职责"
    turn = await dispatcher.send(f"/reject {case.code} {reason}", chat=command_room)
    assert turn.texts[0] == f"✅ {case.code}已不予受理：{reason}"
    assert load(db, pk(case)).decision_note == reason
    assert f"Reason: {reason}\n" in (resident.last_text() or "")
    assert f"备注：{reason}" in card_of(command_room, case.code).text
    assert events(db, pk(case))[-1].data["reason"] == "other"


# --- who may ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "dispatch:{case}:{zf}",
        "dispatch_menu:teams:{case}",
        "dispatch_menu:originals:{case}",
        "dispatch_menu:reasons:{case}",
        "dispatch_menu:back:{case}",
        "duplicate:{case}:{case2}",
        "reject:{case}:scope",
    ],
)
async def test_outsiders_cannot_decide(
    data: str,
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    admin: FakeUser,
    command_room: FakeChat,
    resident: FakeUser,
) -> None:
    staff = tg.user(7101, "执法队员", language_code="zh-hans")
    await onboard(admin, staff, "staff", "QB-ZF")
    other = tg.user(7102, "湖滨调度", language_code="zh-hans")
    await onboard(admin, other, "dispatcher", HB)
    case2 = await file_case(app, rt, db, resident)
    case = await file_case(app, rt, db, resident, north_m=5)
    card = command_room.last_message()
    before = buttons(card)
    payload = "v1:" + data.format(case=case.id, case2=case2.id, zf=unit_id(db, "QB-ZF"))
    # each hears it in their own language (a pop-up is the presser's), in the group or not
    for presser, lang in ((resident, "en"), (staff, "zh_CN"), (other, "zh_CN")):
        expected = (t(lang, "dispatch.not_allowed"), True)
        assert answered(await presser.press_data(command_room.id, card.message_id, payload)) == expected
    text, _ = answered(await resident.press_data(resident.id, 999, payload))
    assert text == t("en", "dispatch.not_allowed")
    assert buttons(command_room.message(card.message_id)) == before
    assert load(db, pk(case)).state == "reported" and load(db, pk(case2)).state == "reported"
    assert [e.action for e in events(db, pk(case))] == ["case.reported"]


async def test_outsiders_cannot_use_the_commands(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    admin: FakeUser,
    command_room: FakeChat,
    resident: FakeUser,
) -> None:
    other = tg.user(7102, "湖滨调度", language_code="zh-hans")
    await onboard(admin, other, "dispatcher", HB)
    first = await file_case(app, rt, db, resident)
    second = await file_case(app, rt, db, resident)
    turn = await resident.send(f"/reject {first.code} nope")
    assert turn.texts == [t("en", "dispatch.not_allowed")]
    turn = await resident.send("/reject QB-000000-0001 probing")  # no answer says whether it exists
    assert turn.texts == [t("en", "dispatch.not_allowed")]
    turn = await other.send(f"/duplicate {second.code} {first.code}")
    assert turn.texts == [NOT_ALLOWED]
    turn = await other.send(f"/reject {first.code} 不是我们的")
    assert turn.texts == [NOT_ALLOWED]
    assert load(db, pk(first)).state == load(db, pk(second)).state == "reported"


async def test_a_dispatcher_invited_by_command_room_code_may_decide(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    admin: FakeUser,
    command_room: FakeChat,
    resident: FakeUser,
) -> None:
    user = tg.user(7003, "赵调度", language_code="zh-hans")
    await onboard(admin, user, "dispatcher", "QB-CMD")
    case = await file_case(app, rt, db, resident)
    turn = await user.send(f"/reject {case.code} 信息不全", chat=command_room)
    assert turn.texts[0] == f"✅ {case.code}已不予受理：信息不全"


# --- stale, forged, late ----------------------------------------------------------


async def test_forged_and_stale_buttons_change_nothing(
    app: Application, rt: Runtime, db: Database, dispatcher: FakeUser, command_room: FakeChat, resident: FakeUser
) -> None:
    case = await file_case(app, rt, db, resident)
    card = command_room.last_message()
    forged = [
        "v1:dispatch:99999:3",  # no such case
        f"v1:dispatch:{case.id}:{unit_id(db, 'HB-ZF')}",  # another street's team
        f"v1:dispatch:{case.id}:{unit_id(db, 'QB-CMD')}",  # not a team
        f"v1:dispatch:{case.id}:99999",
        f"v1:dispatch:{case.id}",  # no team at all
        "v1:dispatch:abc:3",
        f"v1:dispatch_zz:{case.id}",  # no such action
        f"v0:dispatch:{case.id}:3",  # another version
        f"v1:reject:{case.id}:bogus",  # no such reason
        f"v1:duplicate:{case.id}:{case.id}",  # itself
        f"v1:duplicate:{case.id}:99999",
        f"v1:dispatch_menu:teams:{case.id}x",
        "v1:dispatch_menu:back:99999",
    ]
    for data in forged:
        assert answered(await dispatcher.press_data(command_room.id, card.message_id, data)) == (STALE, True), data
    stored = load(db, pk(case))
    assert (stored.state, stored.version, stored.unit_id) == ("reported", 1, None)
    assert [e.action for e in events(db, pk(case))] == ["case.reported"]
    assert buttons(command_room.message(card.message_id)) == buttons(card)


async def test_a_late_press_says_who_decided_and_refreshes_the_card(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    admin: FakeUser,
    dispatcher: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    colleague = tg.user(7002, "周调度", language_code="zh-hans")
    await onboard(admin, colleague, "dispatcher", QB)
    case = await file_case(app, rt, db, resident)
    card = command_room.last_message()
    # decided elsewhere, and the card not updated yet (the sender has not run)
    person = people.identify(rt, people.Profile(telegram_id=dispatcher.id, first_name="李调度"))
    dispatch.dispatch_case(rt, person, case_id=pk(case), unit_id=unit_id(db, "QB-ZF"))
    assert buttons(command_room.message(card.message_id)) == buttons(card)

    bm = unit_id(db, "QB-BM")
    text, alert = answered(await colleague.press_data(command_room.id, card.message_id, f"v1:dispatch:{case.id}:{bm}"))
    assert alert and text == f"{case.code}已派遣至{ZF_ZH}（操作：李调度），本次操作未执行。"
    assert buttons(command_room.message(card.message_id)) == FIX_ONLY  # refreshed
    assert load(db, pk(case)).unit_id == unit_id(db, "QB-ZF")
    # an old copy of the card elsewhere loses its spent buttons
    copy = await app.bot.send_message(
        colleague.id,
        "copy",
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("x", callback_data=f"v1:dispatch_menu:teams:{case.id}")]]
        ),
    )
    text, _ = answered(await colleague.press(copy.message_id, "x"))
    assert "已派遣至" in text and buttons(tg.message(colleague.id, copy.message_id)) == []

    # a rejected case: who rejected it and why
    other = await file_case(app, rt, db, resident, description="Another")
    other_card = command_room.last_message()
    await dispatcher.send(f"/reject {other.code} 重复上报", chat=command_room)
    text, _ = answered(
        await colleague.press_data(command_room.id, other_card.message_id, f"v1:dispatch_menu:originals:{other.id}")
    )
    assert text == f"{other.code}已被李调度不予受理（重复上报），本次操作未执行。"


async def test_a_late_press_on_an_auto_dispatched_case(
    app: Application, rt: Runtime, db: Database, tg: FakeTelegram, admin: FakeUser, resident: FakeUser
) -> None:
    hb_room = await bound_group(tg, admin, -100700, "HB-CMD")
    hb = tg.user(7201, "Hubin desk", language_code="en")
    await onboard(admin, hb, "dispatcher", HB)
    case = await file_case(app, rt, db, resident, grid=HB_GRID)
    assert load(db, pk(case)).state == "dispatched"
    card = hb_room.last_message()
    assert buttons(card) == FIX_ONLY  # auto-dispatched: the card informs, it asks nothing
    text, _ = answered(await hb.press_data(hb_room.id, card.message_id, f"v1:dispatch_menu:reasons:{case.id}"))
    # a pop-up speaks the presser's language (the group's is Chinese)
    assert case.code in text and t("en", "dispatch.by_auto") in text and "<" not in text


async def test_two_dispatchers_race_and_exactly_one_wins(
    app: Application,
    rt: Runtime,
    db: Database,
    tg: FakeTelegram,
    admin: FakeUser,
    dispatcher: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    colleague = tg.user(7002, "周调度", language_code="zh-hans")
    await onboard(admin, colleague, "dispatcher", QB)
    case = await file_case(app, rt, db, resident)
    card = command_room.last_message()
    zf, bm = unit_id(db, "QB-ZF"), unit_id(db, "QB-BM")

    first, second = await asyncio.gather(
        dispatcher.press_data(command_room.id, card.message_id, f"v1:dispatch:{case.id}:{zf}"),
        colleague.press_data(command_room.id, card.message_id, f"v1:dispatch:{case.id}:{bm}"),
    )
    answers = [answered(first)[0], answered(second)[0]]
    won = [a for a in answers if a.startswith("✅")]
    lost = [a for a in answers if "本次操作未执行" in a]
    assert len(won) == 1 and len(lost) == 1, answers
    stored = load(db, pk(case))
    winner = zf if ZF_ZH in won[0] else bm
    assert (stored.state, stored.unit_id, stored.version) == ("dispatched", winner, 2)
    assert [e.action for e in events(db, pk(case))].count("case.dispatched") == 1
    # one card in the team's group however the loser's refresh interleaved (便民服务 has no group)
    posted = [m for m in team.messages() if case.code in (m.caption or m.text or "")]
    assert len(posted) == (1 if winner == zf else 0)
    assert buttons(command_room.message(card.message_id)) == FIX_ONLY


async def test_a_teams_group_is_read_once_and_a_new_binding_is_followed_at_once(
    app: Application,
    tg: FakeTelegram,
    rt: Runtime,
    db: Database,
    admin: FakeUser,
    dispatcher: FakeUser,
    command_room: FakeChat,
    team: FakeChat,
    resident: FakeUser,
) -> None:
    first = await file_case(app, rt, db, resident)
    await dispatcher.press(card_of(command_room, first.code), DISPATCH_ZF)
    assert card_of(team, first.code)
    second = await file_case(app, rt, db, resident, north_m=40)
    with statements_of(db) as seen:
        await dispatcher.press(card_of(command_room, second.code), DISPATCH_ZF)
    assert card_of(team, second.code)
    assert seen and not [sql for sql in seen if "WHERE chat.unit_id" in sql]  # both groups known: not read again
    moved = await bound_group(tg, admin, -100602, "QB-ZF")  # the team moves to a new group
    third = await file_case(app, rt, db, resident, north_m=80)
    await dispatcher.press(card_of(command_room, third.code), DISPATCH_ZF)
    assert card_of(moved, third.code)
    assert not [m for m in team.messages() if (m.caption or m.text or "").startswith(third.code)]
