"""Who reads what, in which language: a button's pop-up is read by the one who pressed it
(their language), a group's post by the whole group (the group's language, set with /lang).
The main loop walked with groups in one language and every person in the other."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlmodel import col, select

from bot.cases.timewords import more_time_words, when_words
from bot.i18n import plain, t, t_plain
from bot.runtime import Runtime
from storage.db import Database
from storage.models import Case, ExtensionRequest, FollowUp
from tests.fakebot import FakeChat, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard, statements_of
from tests.images import make_jpeg
from tests.test_rating import close_residents_case, report_and_dispatch, w  # noqa: F401  (w: a fixture)

GRID = "33010200100101"  # 清波: the command room dispatches by hand
TEAM = {"zh_CN": "清波街道综合执法平台", "en": "Qingbo Subdistrict comprehensive law enforcement team"}
CATEGORY = {"zh_CN": "违法建设", "en": "Illegal construction"}
TELEGRAM_CODE = {"zh_CN": "zh-hans", "en": "en"}


def _body(message) -> str:
    return message.caption or message.text or ""


def _popup(answer) -> str:
    assert answer is not None, "the press got no answer"
    return str(answer.params.get("text") or "")


async def _group(tg: FakeTelegram, admin: FakeUser, chat_id: int, code: str, lang: str) -> FakeChat:
    group = await bound_group(tg, admin, chat_id, code)
    turn = await admin.send(f"/lang {lang}", chat=group)
    assert turn.texts == [plain(t(lang, "lang.set", language=t(lang, f"lang.{lang}")))]
    return group


@pytest.mark.parametrize(("group_lang", "lang"), [("en", "zh_CN"), ("zh_CN", "en")])
async def test_popups_speak_the_pressers_language_and_posts_the_groups(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database, group_lang: str, lang: str
) -> None:
    g, p = group_lang, lang
    code = TELEGRAM_CODE[p]
    worker = tg.user(9701, "Liu", language_code=code)
    dispatcher = tg.user(9702, "Zhou", language_code=code)
    staff = tg.user(9703, "Chen", language_code=code)
    other = tg.user(9704, "Wu", language_code=code)
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    await onboard(admin, staff, "staff", "QB-ZF")
    await onboard(admin, other, "staff", "QB-ZF")
    room = await _group(tg, admin, -100971, "QB-CMD", g)
    team = await _group(tg, admin, -100972, "QB-ZF", g)

    # the worker reports in private, in their own language
    await worker.send_photo(make_jpeg(), caption="违章搭建彩钢棚")
    await worker.send_location(*grid_centre(db, GRID))
    await worker.press(worker.last_message(), CATEGORY[p])
    summary = worker.last_message()
    await worker.press(summary, next(label for row in buttons(summary) for label in row if label.startswith("✅")))
    with db.session() as s:
        case = s.exec(select(Case).order_by(col(Case.id).desc()).limit(1)).one()

    # the command room's card is the group's; the dispatcher's pop-up is the dispatcher's
    card = room.last_message()
    assert CATEGORY[g] in _body(card) and CATEGORY[p] not in _body(card)
    dispatch_label = t(g, "card.dispatch_to", team=TEAM[g])
    assert buttons(card)[0][0] == dispatch_label
    answer = await dispatcher.press(card, dispatch_label, chat=room)
    assert _popup(answer) == t_plain(p, "dispatch.done", code=case.code, team=TEAM[p])

    # the team's card; claiming, and a second claim refused, each in the presser's language
    team_card = team.last_message()
    assert CATEGORY[g] in _body(team_card) and buttons(team_card) == [[t(g, "card.claim")]]
    answer = await staff.press(team_card, t(g, "card.claim"), chat=team)
    assert _popup(answer) == t_plain(p, "claim.done", code=case.code)
    answer = await other.press_data(team.id, team_card.message_id, f"v1:claim:{case.id}")
    assert _popup(answer) == t_plain(p, "claim.taken", code=case.code, owner="Chen")

    # more time: asked in private, posted in the command room in the group's language
    answer = await staff.press(team.message(team_card.message_id), t(g, "card.extend"), chat=team)
    assert _popup(answer) == t_plain(p, "work.see_private")
    await staff.press(staff.last_message(), "+" + more_time_words(p, 8, "wh"))
    await staff.send("等业主回来")
    await staff.press(staff.last_message(), t(p, "work.btn_done"))
    request = room.last_message()
    assert more_time_words(g, 8, "wh") in request.body and more_time_words(p, 8, "wh") not in request.body
    await dispatcher.press(request, t(g, "work.btn_approve"), chat=room)
    decided = room.message(request.message_id).body
    assert plain(t(g, "work.extension_decided_approved", code=case.code, name="Zhou")) in decided
    with db.session() as s:
        due_at = s.exec(select(ExtensionRequest)).one().new_due_at
    now, tz = rt.clock.now(), rt.settings.tz
    assert plain(t(g, "work.extension_due_now", due=when_words(g, due_at, now, tz))) in decided
    assert staff.last_text() == plain(
        t(p, "work.extension_approved", code=case.code, due=when_words(p, due_at, now, tz))
    )

    # resolving: the pop-up is the staff member's, the prompt too; one photo is "1 photo"
    answer = await staff.press(team.message(team_card.message_id), t(g, "card.resolve"), chat=team)
    assert _popup(answer) == t_plain(p, "work.see_private")
    await staff.send_photo(make_jpeg(color=(0, 200, 0)), caption="已拆除")
    assert t_plain(p, "work.status_photos", count=1) in staff.last_text()
    if p == "en":
        assert "1 photo" in staff.last_text() and "1 photos" not in staff.last_text()
    await staff.press(staff.last_message(), t(p, "work.btn_done"))

    # the worker verifies in private; the cards in both groups say it is closed, in their language
    verify = worker.last_message()
    answer = await worker.press(verify, t(p, "card.confirm_fixed"))
    assert _popup(answer) == t_plain(p, "work.done_confirm", code=case.code)
    for group, message_id in ((team, team_card.message_id), (room, card.message_id)):
        body = _body(group.message(message_id))
        assert t(g, "state.closed") in body and t(p, "state.closed") not in body

    # a forged press in a group is refused in the presser's language
    answer = await other.press_data(team.id, team_card.message_id, "v1:claim:999999")
    assert _popup(answer) == t_plain(p, "button.stale")


async def test_the_follow_up_cards_popup_is_the_dispatchers(
    w: SimpleNamespace,  # noqa: F811
    tg: FakeTelegram,
    admin: FakeUser,
) -> None:
    """The command room reads English; its Chinese dispatcher's pop-ups stay Chinese."""
    lin = tg.user(9760, "林女士", language_code="zh-hans")
    case = await report_and_dispatch(w, lin, "违章搭建彩钢棚")
    await close_residents_case(w, case)
    await admin.send("/lang en", chat=w.room)
    await lin.press(lin.last_message(), "🙁")
    with w.db.session() as s:
        followup = s.exec(select(FollowUp)).one()
    card = w.room.message(followup.card_message_id)
    assert plain(t("en", "rate.fu_title", code=case.code, category=CATEGORY["en"])) in card.text
    answer = await w.dispatcher.press(card, t("en", "rate.btn_contacted"), chat=w.room)
    assert _popup(answer) == t_plain("zh_CN", "rate.fu_contacted_ok", code=case.code)
    answer = await w.dispatcher.press(w.room.message(card.message_id), t("en", "rate.btn_resolved"), chat=w.room)
    outcome = t_plain("zh_CN", "rate.outcome_resolved")
    assert _popup(answer) == t_plain("zh_CN", "rate.fu_done_ok", code=case.code, outcome=outcome)
    assert plain(t("en", "rate.outcome_resolved")) in w.room.message(card.message_id).text


async def test_answers_to_commands_in_a_group_are_the_groups(tg: FakeTelegram, admin: FakeUser) -> None:
    room = await _group(tg, admin, -100973, "QB-CMD", "en")
    worker = tg.user(9770, "刘", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    assert (await admin.send("/invite", chat=room)).texts == [plain(t("en", "invite.private_only"))]
    assert (await worker.send("/my", chat=room)).texts == [plain(t("en", "my.none"))]
    assert (await admin.send("/revoke", chat=room)).texts == [plain(t("en", "revoke.usage"))]


async def test_a_groups_language_is_read_once_and_a_change_is_followed_at_once(
    tg: FakeTelegram, admin: FakeUser, db: Database
) -> None:
    room = await _group(tg, admin, -100974, "QB-CMD", "en")
    worker = tg.user(9771, "刘", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    assert (await worker.send("/my", chat=room)).texts == [plain(t("en", "my.none"))]
    with statements_of(db) as seen:
        assert (await worker.send("/my", chat=room)).texts == [plain(t("en", "my.none"))]
    assert seen and not [sql for sql in seen if "FROM chat" in sql]  # the group is known: not read again
    await admin.send("/lang zh_CN", chat=room)
    assert (await worker.send("/my", chat=room)).texts == [plain(t("zh_CN", "my.none"))]
