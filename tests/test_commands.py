"""/start, /help, /whoami, /lang, /cancel, unknown input, stale buttons and the error handler."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.people import identity as people
from storage.db import Database
from storage.models import User
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons


async def test_start_for_a_resident_in_each_language(tg: FakeTelegram) -> None:
    zh = tg.user(4001, "小王", language_code="zh-hans")
    en = tg.user(4002, "Wang", language_code="en")
    fr = tg.user(4003, "Jean", language_code="fr")
    assert "您好，小王" in (await zh.send("/start")).texts[0]
    assert (await en.send("/start")).texts[0].startswith("Hello, Wang!")
    assert "您好" in (await fr.send("/start")).texts[0]  # the default language


async def test_help_is_role_aware(tg: FakeTelegram, admin: FakeUser) -> None:
    resident = tg.user(4004, "R", language_code="en")
    text = (await resident.send("/help")).texts[0]
    assert "/start" in text and "/invite" not in text and "/bind" not in text
    text = (await admin.send("/help")).texts[0]
    assert "/invite" in text and "/bind" in text


async def test_whoami_for_a_resident(tg: FakeTelegram) -> None:
    text = (await tg.user(4005, "R", language_code="en").send("/whoami")).texts[0]
    assert "You are a resident" in text and "Language: English" in text


async def test_lang_button_switches_and_persists(tg: FakeTelegram, db: Database) -> None:
    user = tg.user(4006, "Li", language_code="zh-hans")
    turn = await user.send("/lang")
    assert buttons(turn.replies[0]) == [["简体中文", "English"]]
    answer = await user.press(turn.replies[0], "English")
    assert answer is not None and answer.params["text"] == "Language set to English."
    assert user.last_message().text == "Language set to English."  # the menu message was edited
    with db.session() as s:
        assert s.exec(select(User).where(User.telegram_id == 4006)).one().language == "en"
    assert "What you can do" in (await user.send("/help")).texts[0]


async def test_cancel_with_nothing_to_cancel(tg: FakeTelegram) -> None:
    assert (await tg.user(4007, "R", language_code="en").send("/cancel")).texts == ["There is nothing to cancel."]


async def test_unknown_command_and_stray_messages(tg: FakeTelegram, admin: FakeUser) -> None:
    user = tg.user(4008, "R", language_code="en")
    assert "I don't know the command /frobnicate" in (await user.send("/frobnicate now")).texts[0]
    assert "I can help you" in (await user.send("hello?")).texts[0]
    assert "can't use that kind of message" in (await user.send_sticker()).texts[0]
    group = tg.group(-100200, "team", admins=[admin], bot_status="administrator")
    # another bot's command in a group: stay quiet; one addressed to us: answer
    assert (await admin.send("/frobnicate", chat=group)).texts == []
    assert "/frobnicate" in (await admin.send("/frobnicate@GridDeskTestBot", chat=group)).texts[0]


@pytest.mark.parametrize("data", ["v1:nope:1", "garbage", "v0:lang:en", "v1:lang:xx", "v1:lang"])
async def test_forged_or_stale_buttons(tg: FakeTelegram, db: Database, data: str) -> None:
    user = tg.user(4009, "R", language_code="en")
    turn = await user.send("/lang")
    message_id = turn.replies[0]["message_id"]
    answer = await user.press_data(user.id, message_id, data)
    assert answer is not None and answer.params["show_alert"] is True
    assert "no longer valid" in answer.params["text"]
    with db.session() as s:
        assert s.exec(select(User).where(User.telegram_id == 4009)).one().language is None


async def test_error_handler_answers_politely(app, api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    tg = FakeTelegram(app, api, raise_errors=False)
    user = tg.user(4010, "R", language_code="en")
    await user.send("/start")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire at /secret/path")

    monkeypatch.setattr(people, "set_language", broken)
    turn = await user.send("/lang en")
    assert turn.errors and isinstance(turn.errors[0], RuntimeError)
    assert turn.texts == ["Sorry, something went wrong on our side; it has been logged. Please try again shortly."]
    assert "secret" not in turn.texts[0]


async def test_command_menus_per_language(api: FakeBotAPI, tg: FakeTelegram) -> None:
    calls = api.calls_to("setMyCommands")
    by_lang = {c.params.get("language_code"): [cmd["command"] for cmd in c.params["commands"]] for c in calls}
    assert set(by_lang) == {None, "zh", "en"}
    assert by_lang["en"] == by_lang["zh"] == by_lang[None]
    descriptions = {
        c.params.get("language_code"): next(
            cmd["description"] for cmd in c.params["commands"] if cmd["command"] == "help"
        )
        for c in calls
    }
    assert descriptions["zh"] == descriptions[None] == "查看帮助" and descriptions["en"] == "show help"
