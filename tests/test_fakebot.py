"""Self-tests of the fake Telegram (tests/fakebot/) against a minimal PTB application.

These pin down the behaviour the project's tests rely on: Telegram-shaped answers, Telegram's
errors surfacing as PTB's exceptions, the player API, and "send() returns only when the bot
is done".
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    EndPointNotFound,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    filters,
)

from tests.fakebot import (
    BOT_ID,
    BOT_USERNAME,
    NOT_MODIFIED,
    FakeBotAPI,
    FakeTelegram,
    buttons,
    parse_formatted,
    utf16_len,
)
from tests.images import corrupt_jpeg, dms_to_degrees, make_jpeg, make_png

Context = ContextTypes.DEFAULT_TYPE

# ---------------------------------------------------------------------------------------------
# A tiny bot to drive the fake with
# ---------------------------------------------------------------------------------------------


class Probe:
    """Collects what handlers observed, so tests can assert on it."""

    def __init__(self) -> None:
        self.seen: list[Any] = []


async def echo(update: Update, context: Context) -> None:
    assert update.effective_message is not None
    await update.effective_message.reply_text(" ".join(context.args or []) or "(nothing)")


async def card(update: Update, context: Context) -> None:
    assert update.effective_message is not None
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("认领 Claim", callback_data="v1:claim:42")],
            [InlineKeyboardButton("Docs", url="https://example.org/docs")],
        ]
    )
    await update.effective_message.reply_text("<b>Case #42</b> open", parse_mode=ParseMode.HTML, reply_markup=keyboard)


async def on_press(update: Update, context: Context) -> None:
    query = update.callback_query
    assert query is not None and query.message is not None
    probe: Probe = context.bot_data["probe"]
    probe.seen.append(("press", query.data, query.message.message_id, query.from_user.id))
    if query.data == "v1:claim:42":
        await query.answer("Claimed")
        await query.edit_message_text(f"Case #42 claimed by {query.from_user.first_name}")
    elif query.data == "v1:noop":
        await query.answer()
        # Same text, same (absent) markup: Telegram says "message is not modified".
        assert isinstance(query.message, Message)
        await query.edit_message_text(query.message.text or "")
    else:
        await query.answer("Unknown button", show_alert=True)


async def on_photo(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and message.photo
    probe: Probe = context.bot_data["probe"]
    data = bytes(await (await message.photo[-1].get_file()).download_as_bytearray())
    probe.seen.append(("photo", data, [(p.width, p.height) for p in message.photo], message.caption))
    await message.reply_text(f"got {len(data)} bytes sha1 {hashlib.sha1(data).hexdigest()[:8]}")


async def on_document(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and message.document is not None
    probe: Probe = context.bot_data["probe"]
    data = bytes(await (await message.document.get_file()).download_as_bytearray())
    probe.seen.append(("document", data, message.document.file_name, message.document.mime_type))


async def on_location(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None and message.location is not None
    probe: Probe = context.bot_data["probe"]
    edited = update.edited_message is not None
    probe.seen.append(("location", message.location.latitude, message.location.longitude, edited))


async def on_text(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None
    probe: Probe = context.bot_data["probe"]
    probe.seen.append(("text", message.text, message.chat.id))


async def send_too_long(update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    await context.bot.send_message(update.effective_chat.id, "x" * 4097)


async def send_forged_button(update: Update, context: Context) -> None:
    assert update.effective_chat is not None
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("too long", callback_data="v1:" + "9" * 62)]])
    await context.bot.send_message(update.effective_chat.id, "buttons", reply_markup=keyboard)


async def slow_background(update: Update, context: Context) -> None:
    await asyncio.sleep(0.05)
    assert update.effective_chat is not None
    await context.bot.send_message(update.effective_chat.id, "done in the background")


async def crash(update: Update, context: Context) -> None:
    raise ValueError("handler bug")


async def on_my_chat_member(update: Update, context: Context) -> None:
    change = update.my_chat_member
    assert change is not None
    probe: Probe = context.bot_data["probe"]
    probe.seen.append(("my_chat_member", change.chat.id, change.old_chat_member.status, change.new_chat_member.status))


async def on_new_members(update: Update, context: Context) -> None:
    message = update.effective_message
    assert message is not None
    probe: Probe = context.bot_data["probe"]
    probe.seen.append(("joined", [u.id for u in message.new_chat_members]))


# A two-step ConversationHandler whose steps run non-blocking: exercises task settling.
ASK_NAME = 1


async def conv_start(update: Update, context: Context) -> int:
    assert update.effective_message is not None
    await update.effective_message.reply_text("What is the place called?")
    return ASK_NAME


async def conv_name(update: Update, context: Context) -> int:
    assert update.effective_message is not None
    await asyncio.sleep(0.01)
    await update.effective_message.reply_text(f"Recorded: {update.effective_message.text}")
    return ConversationHandler.END


def build_app(api: FakeBotAPI, probe: Probe, **builder: Any) -> Application:
    app_builder = ApplicationBuilder().token("123:ABC").request(api).get_updates_request(api)
    if builder.get("arbitrary_callback_data"):
        app_builder = app_builder.arbitrary_callback_data(True)
    app = app_builder.build()
    app.bot_data["probe"] = probe
    app.add_handler(
        ConversationHandler(
            entry_points=[CommandHandler("report", conv_start, block=False)],
            states={ASK_NAME: [MessageHandler(filters.TEXT & ~filters.COMMAND, conv_name, block=False)]},
            fallbacks=[],
        )
    )
    app.add_handler(CommandHandler("echo", echo))
    app.add_handler(CommandHandler("card", card))
    app.add_handler(CommandHandler("toolong", send_too_long))
    app.add_handler(CommandHandler("forged", send_forged_button))
    app.add_handler(CommandHandler("bg", slow_background, block=False))
    app.add_handler(CommandHandler("crash", crash))
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(MessageHandler(filters.PHOTO, on_photo))
    app.add_handler(MessageHandler(filters.Document.ALL, on_document))
    app.add_handler(MessageHandler(filters.LOCATION, on_location))
    app.add_handler(MessageHandler(filters.StatusUpdate.NEW_CHAT_MEMBERS, on_new_members))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, on_text))
    app.add_handler(ChatMemberHandler(on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    return app


@pytest.fixture
def api() -> FakeBotAPI:
    return FakeBotAPI()


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
async def app(api: FakeBotAPI, probe: Probe) -> AsyncIterator[Application]:
    application = build_app(api, probe)
    await application.initialize()
    try:
        yield application
    finally:
        await application.shutdown()


@pytest.fixture
def tg(app: Application, api: FakeBotAPI) -> FakeTelegram:
    return FakeTelegram(app, api)


# ---------------------------------------------------------------------------------------------
# Server basics
# ---------------------------------------------------------------------------------------------


async def test_get_me_identifies_the_test_bot(app: Application, api: FakeBotAPI) -> None:
    assert app.bot.id == BOT_ID
    assert app.bot.username == BOT_USERNAME
    assert app.bot.first_name == "GridDesk"
    assert app.bot.can_join_groups is True
    assert [c.method for c in api.calls] == ["getMe"]


async def test_commands_are_stored_per_language(app: Application, api: FakeBotAPI) -> None:
    await app.bot.set_my_commands([BotCommand("start", "开始"), BotCommand("bind", "Bind this group")])
    await app.bot.set_my_commands([BotCommand("start", "Start")], language_code="en")
    default = api.commands[('{"type": "default"}', "")]
    assert [c["command"] for c in default] == ["start", "bind"]
    assert [c["description"] for c in api.commands[('{"type": "default"}', "en")]] == ["Start"]
    with pytest.raises(BadRequest, match="(?i)bot_command_invalid"):
        await app.bot.set_my_commands([BotCommand("Bind-Group", "x")])
    assert await app.bot.get_updates() == ()


async def test_methods_the_bot_does_not_use_are_404(app: Application, api: FakeBotAPI) -> None:
    # The fake models only what GridDesk calls: a new method must be added deliberately.
    with pytest.raises(TelegramError):  # PTB reads a 404 as InvalidToken here
        await app.bot.set_webhook("https://example.org/hook")
    assert (api.calls[-1].method, api.calls[-1].status) == ("setWebhook", 404)


async def test_unknown_method_is_404(app: Application) -> None:
    with pytest.raises(EndPointNotFound):
        await app.bot.do_api_request("frobnicateChat", api_kwargs={"chat_id": 1})


async def test_chat_not_found_for_unknown_chats(app: Application) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await app.bot.send_message(424242, "hello?")


# ---------------------------------------------------------------------------------------------
# Conversation basics
# ---------------------------------------------------------------------------------------------


async def test_command_echo_and_message_numbering(tg: FakeTelegram, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice", language_code="zh-hans", username="alice")
    turn = await alice.send("/echo 你好 world")
    assert turn.texts == ["你好 world"]
    assert alice.last_text() == "你好 world"
    assert turn.update is not None and turn.update.message is not None
    entity = turn.update.message.entities[0]
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 5)
    # Users and the bot share the per-chat message counter.
    assert turn.update.message.message_id == 1
    reply = alice.last_message()
    assert reply is not None and reply.message_id == 2
    assert reply.from_user is not None and reply.from_user.id == BOT_ID
    assert reply.reply_to_message is None  # PTB quotes by default only in groups
    await alice.send("/echo again")
    assert alice.texts() == ["你好 world", "again"]
    assert tg.bot_message_ids(alice.id) == [2, 4]
    assert [c.method for c in api.calls_to("sendMessage")] == ["sendMessage", "sendMessage"]
    api.clear()
    assert api.calls == [] and tg.bot_message_ids(alice.id) == [2, 4]  # state survives clear()


async def test_inline_button_press_edits_the_card(tg: FakeTelegram, api: FakeBotAPI, probe: Probe) -> None:
    alice = tg.user(1001, "Alice")
    await alice.send("/card")
    card_msg = alice.last_message()
    assert card_msg is not None
    assert card_msg.text == "Case #42 open"  # HTML parsed away, like Telegram
    assert card_msg.text_html == "<b>Case #42</b> open"
    assert buttons(card_msg) == [["认领 Claim"], ["Docs"]]

    answer = await alice.press(card_msg, "认领 Claim")
    assert answer is not None and answer.params["text"] == "Claimed"
    assert probe.seen[-1] == ("press", "v1:claim:42", card_msg.message_id, alice.id)
    now = tg.message(alice.id, card_msg.message_id)
    assert now.text == "Case #42 claimed by Alice"
    assert now.edit_date is not None
    assert now.reply_markup is None  # edit without reply_markup drops the keyboard
    assert api.message(alice.id, card_msg.message_id)["text"] == "Case #42 claimed by Alice"
    assert alice.texts() == ["Case #42 open"]  # history is as sent; edits show in messages()
    assert [c.params["text"] for c in tg.last_turn.edits] == ["Case #42 claimed by Alice"]  # type: ignore[union-attr]

    with pytest.raises(AssertionError, match="no button"):
        await alice.press(card_msg, "认领 Claim")  # the keyboard is gone now


async def test_press_by_callback_data_and_url_buttons(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    await alice.send("/card")
    card_msg = alice.last_message()
    assert card_msg is not None
    with pytest.raises(AssertionError, match="no callback_data"):
        await alice.press(card_msg, "Docs")
    answer = await alice.press((alice.id, card_msg.message_id), "v1:claim:42")
    assert answer is not None and answer.ok


async def test_forged_press_reaches_the_handler(tg: FakeTelegram, probe: Probe) -> None:
    alice = tg.user(1001, "Alice")
    await alice.send("/card")
    card_msg = alice.last_message()
    assert card_msg is not None
    answer = await alice.press_data(alice.id, card_msg.message_id, "v1:forged:1")
    assert answer is not None and answer.params == {
        "callback_query_id": answer.params["callback_query_id"],
        "text": "Unknown button",
        "show_alert": True,
    }
    # A press on a message that no longer exists arrives as an inaccessible message.
    answer = await alice.press_data(alice.id, 999, "v1:forged:2")
    assert probe.seen[-1][:3] == ("press", "v1:forged:2", 999)


async def test_edit_with_identical_content_is_not_modified(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    alice_chat = alice.id
    await tg.app.bot.send_message(
        alice_chat, "same", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("noop", callback_data="v1:noop")]])
    )
    msg = alice.last_message()
    assert msg is not None
    # First press: same text but the keyboard is dropped -> a real modification.
    await alice.press(msg, "noop")
    assert tg.message(alice_chat, msg.message_id).reply_markup is None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await tg.app.bot.edit_message_text("same", alice_chat, msg.message_id)
    assert NOT_MODIFIED.startswith("Bad Request: message is not modified")


async def test_edit_and_delete_missing_messages(tg: FakeTelegram, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await app.bot.edit_message_text("x", alice.id, 77)
    sent = await app.bot.send_message(alice.id, "to be deleted")
    assert await app.bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await app.bot.delete_message(alice.id, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await app.bot.edit_message_text("x", alice.id, sent.message_id)
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await app.bot.send_message(alice.id, "reply", reply_to_message_id=sent.message_id)


async def test_user_messages_cannot_be_edited_by_the_bot(tg: FakeTelegram, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    turn = await alice.send("hello")
    assert turn.update is not None and turn.update.message is not None
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await app.bot.edit_message_text("hijack", alice.id, turn.update.message.message_id)


# ---------------------------------------------------------------------------------------------
# Telegram's validation errors
# ---------------------------------------------------------------------------------------------


async def test_too_long_message_raises_bad_request(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    with pytest.raises(BadRequest, match="Message is too long"):
        await alice.send("/toolong")
    assert tg.last_turn is not None and tg.last_turn.calls[-1].status == 400


async def test_length_counts_utf16_after_html_parsing(app: Application, tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    # 4096 visible characters wrapped in markup: fine (tags and &amp; do not count).
    text = "<b>" + "a" * 4000 + "</b>" + "&amp;" * 96
    sent = await app.bot.send_message(alice.id, text, parse_mode=ParseMode.HTML)
    assert sent.text is not None and len(sent.text) == 4096
    # 2049 emoji are 2049 Python characters but 4098 UTF-16 code units.
    with pytest.raises(BadRequest, match="Message is too long"):
        await app.bot.send_message(alice.id, "🚧" * 2049)
    assert utf16_len("🚧") == 2
    with pytest.raises(BadRequest, match="Message text is empty"):
        await app.bot.send_message(alice.id, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await app.bot.send_photo(alice.id, make_jpeg(64, 64), caption="c" * 1025)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<br>", 'Unsupported start tag "br"'),
        ("<b>x</i>", "Unmatched end tag"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler"'),
        ("网格 <div>x</div>", 'Unsupported start tag "div" at byte offset 7'),
    ],
)
async def test_invalid_html_is_rejected(app: Application, tg: FakeTelegram, html: str, error: str) -> None:
    alice = tg.user(1001, "Alice")
    with pytest.raises(BadRequest) as caught:
        await app.bot.send_message(alice.id, html, parse_mode=ParseMode.HTML)
    assert "can't parse entities" in caught.value.message.lower()
    assert error.lower() in caught.value.message.lower()


def test_supported_html_parses_to_entities() -> None:
    formatted = parse_formatted(
        "<b>B</b><strong>S</strong><i>I</i><u>U</u><s>S</s><tg-spoiler>P</tg-spoiler>"
        '<span class="tg-spoiler">Q</span><a href="https://e.org">L</a><code>C</code>'
        '<pre><code class="language-python">x</code></pre><blockquote expandable>Z</blockquote>'
        "&lt;&gt;&quot;&#21306;",
        "HTML",
    )
    assert formatted.text == 'BSIUSPQLCxZ<>"区'
    kinds = [e["type"] for e in formatted.entities]
    assert kinds == [
        "bold", "bold", "italic", "underline", "strikethrough", "spoiler", "spoiler",
        "text_link", "code", "pre", "expandable_blockquote",
    ]  # fmt: skip
    assert formatted.entities[9]["language"] == "python"


async def test_markdown_is_refused_loudly(app: Application, tg: FakeTelegram) -> None:
    # Only HTML is modelled; a switch to MarkdownV2 must not pass tests unparsed.
    alice = tg.user(1001, "Alice")
    with pytest.raises(BadRequest, match="not modelled"):
        await app.bot.send_message(alice.id, r"*Case 1\.2* closed", parse_mode=ParseMode.MARKDOWN_V2)


async def test_forged_long_callback_data_is_rejected(tg: FakeTelegram, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await alice.send("/forged")
    assert alice.messages() == []  # nothing was sent


async def test_answer_callback_query_limits(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await app.bot.answer_callback_query("123")
    api.callback_queries["q1"] = False
    with pytest.raises(BadRequest, match="(?i)message_too_long"):
        await app.bot.answer_callback_query("q1", text="x" * 201)
    assert await app.bot.answer_callback_query("q1", text="x" * 200)
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await app.bot.answer_callback_query("q1")  # answered twice


# ---------------------------------------------------------------------------------------------
# Reachability: blocked users, kicked bots, privacy mode
# ---------------------------------------------------------------------------------------------


async def test_blocked_user_raises_forbidden(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    api.block(alice.id)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await app.bot.send_message(alice.id, "ping")
    # Writing to the bot again means the user unblocked it.
    await alice.send("/echo back")
    assert alice.last_text() == "back"


async def test_user_who_never_started_the_bot(tg: FakeTelegram, app: Application) -> None:
    bob = tg.user(1002, "Bob", started=False)
    with pytest.raises(Forbidden, match="can't initiate conversation"):
        await app.bot.send_message(bob.id, "you have a new case")
    await bob.send("/echo hi")
    assert bob.last_text() == "hi"


async def test_kicked_from_group_raises_forbidden(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    group = tg.group(-1001234, "综合执法 team")
    api.kick(group.id)
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        await app.bot.send_message(group.id, "hello")
    basic = tg.group(-555, "old group", type="group")
    api.kick(basic.id)
    with pytest.raises(Forbidden, match="bot was kicked from the group chat"):
        await app.bot.send_message(basic.id, "hello")


async def test_group_privacy_mode(tg: FakeTelegram, probe: Probe) -> None:
    alice = tg.user(1001, "Alice")
    group = tg.group(-1001234, "综合执法 team")
    chatter = await alice.send("just chatting", chat=group)
    assert not chatter.delivered and probe.seen == []
    turn = await alice.send("/echo bound", chat=group)
    assert turn.delivered and group.texts() == ["bound"]
    quoted = group.last_message()
    assert quoted is not None and quoted.reply_to_message is not None
    assert turn.update is not None and turn.update.message is not None
    assert quoted.reply_to_message.message_id == turn.update.message.message_id
    await alice.send(f"hey @{BOT_USERNAME} look", chat=group)
    assert probe.seen[-1] == ("text", f"hey @{BOT_USERNAME} look", group.id)
    bot_msg = group.last_message()
    assert bot_msg is not None
    await alice.send("a reply to the bot", chat=group, reply_to=bot_msg)
    assert probe.seen[-1] == ("text", "a reply to the bot", group.id)
    other = await alice.send("/echo x@OtherBot", chat=group)
    assert other.delivered  # "/echo" is a generic command
    addressed = await alice.send("/echo@OtherBot hi", chat=group)
    assert not addressed.delivered
    # As an administrator the bot sees everything.
    tg.api.set_bot_status(group.id, "administrator")
    assert (await alice.send("now visible", chat=group)).delivered


async def test_bot_added_and_removed(tg: FakeTelegram, probe: Probe, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    group = tg.group(-1001234, "综合执法 team", bot_status="left")
    with pytest.raises(Forbidden, match="not a member"):
        await app.bot.send_message(group.id, "hi")
    turn = await tg.bot_added_to(group, by=alice)
    assert ("my_chat_member", group.id, "left", "member") in probe.seen
    assert ("joined", [BOT_ID]) in probe.seen
    assert turn.delivered and group.bot_status == "member"
    tg.api.set_bot_status(group.id, "administrator")
    member = await app.bot.get_chat_member(group.id, BOT_ID)
    assert member.status == "administrator"
    await tg.bot_removed_from(group, by=alice)
    assert probe.seen[-1] == ("my_chat_member", group.id, "administrator", "kicked")
    with pytest.raises(Forbidden):
        await app.bot.send_message(group.id, "hi")


async def test_chat_member_queries(tg: FakeTelegram, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    bob = tg.user(1002, "Bob")
    group = tg.group(-1001234, "综合执法 team", members=[bob], admins=[alice])
    assert (await app.bot.get_chat_member(group.id, alice.id)).status == "administrator"
    assert (await app.bot.get_chat_member(group.id, bob.id)).status == "member"
    group.set_member(bob, "restricted")
    assert (await app.bot.get_chat_member(group.id, bob.id)).status == "restricted"
    assert (await app.bot.get_chat_member(group.id, BOT_ID)).status == "member"
    assert (await app.bot.get_chat_member(alice.id, alice.id)).status == "member"


# ---------------------------------------------------------------------------------------------
# Injected failures
# ---------------------------------------------------------------------------------------------


async def test_injected_failures(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    api.fail_next("sendMessage", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await app.bot.send_message(alice.id, "flood")
    assert "Retry in 7 seconds" in str(caught.value)
    api.fail_next("sendMessage", status=502)
    with pytest.raises(NetworkError):
        await app.bot.send_message(alice.id, "gateway")
    api.fail_next("sendMessage", timeout=True)
    with pytest.raises(TimedOut):
        await app.bot.send_message(alice.id, "slow")
    api.fail_next("*", status=400, description="Bad Request: chat not found")
    with pytest.raises(BadRequest, match="Chat not found"):
        await app.bot.send_chat_action(alice.id, "typing")
    assert (await app.bot.send_message(alice.id, "fine now")).text == "fine now"
    statuses = [(c.method, c.status) for c in api.calls if c.method != "getMe"]
    assert statuses == [
        ("sendMessage", 429), ("sendMessage", 502), ("sendMessage", 0),
        ("sendChatAction", 400), ("sendMessage", 200),
    ]  # fmt: skip
    assert api.texts(alice.id) == ["fine now"]


async def test_retry_after_reaches_the_handler(tg: FakeTelegram, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    api.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter):
        await alice.send("/echo hi")
    tg.raise_errors = False
    api.fail_next("sendMessage", status=429, retry_after=3)
    turn = await alice.send("/echo hi")
    assert [type(e) for e in turn.errors] == [RetryAfter]


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


async def test_player_photo_is_downloadable(tg: FakeTelegram, probe: Probe, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    jpeg = make_jpeg(1600, 1200, exif_gps=(31.2304, 121.4737))
    turn = await alice.send_photo(jpeg, caption="垃圾堆放 #report")
    kind, data, sizes, caption = probe.seen[-1]
    assert kind == "photo" and data == jpeg  # the largest size carries the exact bytes
    assert sizes == sorted(sizes) and sizes[-1] == (1600, 1200) and len(sizes) == 4
    assert caption == "垃圾堆放 #report"
    gps = Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    assert round(dms_to_degrees(gps[2], gps[1]), 4) == 31.2304
    assert turn.texts == [f"got {len(jpeg)} bytes sha1 {hashlib.sha1(jpeg).hexdigest()[:8]}"]
    assert api.downloads and api.downloads[-1].endswith(".jpg")


async def test_player_document_keeps_name_and_bytes(tg: FakeTelegram, probe: Probe) -> None:
    alice = tg.user(1001, "Alice")
    jpeg = make_jpeg(exif_gps=(22.5431, 114.0579))
    await alice.send_document(jpeg, file_name="现场.jpg")
    assert probe.seen[-1] == ("document", jpeg, "现场.jpg", "image/jpeg")


async def test_bot_uploads_get_file_ids(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    png = make_png(300, 200)
    sent = await app.bot.send_photo(alice.id, png, caption="<i>map</i>", parse_mode=ParseMode.HTML)
    assert sent.caption == "map" and sent.caption_entities[0].type == "italic"
    largest = sent.photo[-1]
    assert (largest.width, largest.height) == (300, 200)
    assert largest.file_id.startswith("fake-file-")
    assert api.calls_to("sendPhoto")[-1].files["photo"] == png
    assert bytes(await (await largest.get_file()).download_as_bytearray()) == png
    # Re-sending by file_id reuses the same file and sizes.
    again = await app.bot.send_photo(alice.id, largest.file_id)
    assert [p.file_id for p in again.photo] == [p.file_id for p in sent.photo]
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await app.bot.send_photo(alice.id, "no-such-file-id")
    with pytest.raises(BadRequest, match="(?i)image_process_failed"):
        await app.bot.send_photo(alice.id, corrupt_jpeg())

    stored = api.add_file(b"hello", file_name="note.txt")
    with pytest.raises(BadRequest, match="(?i)can't use file of type document as photo"):
        await app.bot.send_photo(alice.id, stored.file_id)
    assert bytes(await (await app.bot.get_file(stored.file_id)).download_as_bytearray()) == b"hello"


async def test_the_bots_uploads_are_decoded_once_off_the_event_loop(
    tg: FakeTelegram, app: Application, api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram's servers decode an uploaded photo, not the bot: in the loop the bot shares
    with the fake, that work was charged to the bot (and to everyone's latency)."""
    from griddesk.simulator import images

    decoded_in: list[str] = []
    real_size = images.image_size

    def image_size(data: bytes) -> tuple[int, int] | None:
        decoded_in.append(threading.current_thread().name)
        return real_size(data)

    monkeypatch.setattr(images, "image_size", image_size)
    alice = tg.user(1001, "Alice")
    sent = await app.bot.send_photo(alice.id, make_jpeg(400, 300))
    assert (sent.photo[-1].width, sent.photo[-1].height) == (400, 300)
    assert len(decoded_in) == 1 and decoded_in[0].startswith("fake-telegram-images")
    with pytest.raises(BadRequest, match="(?i)image_process_failed"):
        await app.bot.edit_message_media(InputMediaPhoto(corrupt_jpeg()), chat_id=alice.id, message_id=sent.message_id)
    assert len(decoded_in) == 2 and decoded_in[1].startswith("fake-telegram-images")


async def test_media_group(tg: FakeTelegram, app: Application, api: FakeBotAPI) -> None:
    alice = tg.user(1001, "Alice")
    first, second = make_jpeg(100, 80), make_jpeg(120, 90, color=(1, 2, 3))
    album = await app.bot.send_media_group(
        alice.id, [InputMediaPhoto(first, caption="before"), InputMediaPhoto(second)]
    )
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert [m.caption for m in album] == ["before", None]
    assert api.texts(alice.id) == ["before"]
    assert len(api.sent_messages(alice.id)) == 2
    data = bytes(await (await album[1].photo[-1].get_file()).download_as_bytearray())
    assert data == second


async def test_player_album_and_other_media(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    turns = await alice.send_album([make_jpeg(64, 48), make_jpeg(64, 48)], caption="two")
    messages = [t.update.message for t in turns if t.update is not None and t.update.message is not None]
    assert len(messages) == 2 and messages[0].media_group_id == messages[1].media_group_id is not None
    assert [m.caption for m in messages] == ["two", None]

    sticker = await alice.send_sticker("🚧")
    video = await alice.send_video(duration=5)
    voice = await alice.send_voice(duration=4)
    contact = await alice.send_contact("+8613900000000")
    venue = await alice.send_venue(31.23, 121.47, "人民广场", "黄浦区")
    received = [t.update.message for t in (sticker, video, voice, contact, venue) if t.update and t.update.message]
    assert len(received) == 5
    m_sticker, m_video, m_voice, m_contact, m_venue = received
    assert m_sticker.sticker is not None and m_sticker.sticker.emoji == "🚧"
    assert m_video.video is not None and m_video.video.mime_type == "video/mp4"
    assert tg.api.message(alice.id, m_video.message_id)["video"]["duration"] == 5
    assert m_voice.voice is not None and m_voice.voice.mime_type == "audio/ogg"
    assert m_contact.contact is not None and m_contact.contact.user_id == alice.id
    assert m_venue.venue is not None and m_venue.venue.title == "人民广场"
    assert m_venue.location is not None and m_venue.location.latitude == 31.23


async def test_locations_and_live_updates(tg: FakeTelegram, probe: Probe, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    turn = await alice.send_location(31.2304, 121.4737, live_period=600)
    assert probe.seen[-1] == ("location", 31.2304, 121.4737, False)
    assert turn.update is not None and turn.update.message is not None
    await alice.edit_live_location(turn, 31.2310, 121.4740)
    assert probe.seen[-1] == ("location", 31.2310, 121.4740, True)


# ---------------------------------------------------------------------------------------------
# Settling, errors, keyboards, arbitrary callback data
# ---------------------------------------------------------------------------------------------


async def test_send_waits_for_non_blocking_handlers(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    turn = await alice.send("/bg")
    assert turn.texts == ["done in the background"]


async def test_conversation_with_non_blocking_states(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    await alice.send("/report")
    turn = await alice.send("人民广场东侧")
    assert turn.texts == ["Recorded: 人民广场东侧"]
    assert alice.texts() == ["What is the place called?", "Recorded: 人民广场东侧"]


async def test_send_waits_when_the_application_is_running(tg: FakeTelegram, app: Application) -> None:
    await app.start()
    try:
        alice = tg.user(1001, "Alice")
        turn = await alice.send("/bg")
        assert turn.texts == ["done in the background"]
    finally:
        await app.stop()


async def test_handler_exceptions_surface(tg: FakeTelegram) -> None:
    alice = tg.user(1001, "Alice")
    with pytest.raises(ValueError, match="handler bug"):
        await alice.send("/crash")
    tg.raise_errors = False
    turn = await alice.send("/crash")
    assert [str(e) for e in turn.errors] == ["handler bug"]
    assert len(tg.errors) == 2


async def test_project_error_handlers_still_run(tg: FakeTelegram, app: Application) -> None:
    seen: list[str] = []

    async def project_handler(update: object, context: Context) -> None:
        seen.append(str(context.error))

    app.add_error_handler(project_handler)
    tg.raise_errors = False
    alice = tg.user(1001, "Alice")
    await alice.send("/crash")
    assert seen == ["handler bug"] and [str(e) for e in tg.errors] == ["handler bug"]


async def test_reply_keyboard_is_tracked(tg: FakeTelegram, app: Application) -> None:
    alice = tg.user(1001, "Alice")
    keyboard = ReplyKeyboardMarkup([[KeyboardButton("📍 Share location", request_location=True)], ["Cancel"]])
    sent = await app.bot.send_message(alice.id, "Where?", reply_markup=keyboard)
    assert sent.reply_markup is None  # Telegram does not echo reply keyboards
    assert alice.reply_keyboard() == [["📍 Share location"], ["Cancel"]]


async def test_arbitrary_callback_data(api: FakeBotAPI, probe: Probe) -> None:
    seen: list[object] = []

    async def offer(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        markup = InlineKeyboardMarkup([[InlineKeyboardButton("Pick", callback_data=("case", 42))]])
        await update.effective_message.reply_text("choose", reply_markup=markup)

    async def picked(update: Update, context: Context) -> None:
        assert update.callback_query is not None
        seen.append(update.callback_query.data)
        await update.callback_query.answer()

    app = (
        ApplicationBuilder()
        .token("123:ABC")
        .request(api)
        .get_updates_request(api)
        .arbitrary_callback_data(True)
        .build()
    )
    app.add_handler(CommandHandler("offer", offer))
    app.add_handler(CallbackQueryHandler(picked))
    await app.initialize()
    try:
        tg = FakeTelegram(app)  # the api is found through app.bot.request
        alice = tg.user(1001, "Alice")
        await alice.send("/offer")
        msg = alice.last_message()
        assert msg is not None
        answer = await alice.press(msg, "Pick")
        assert answer is not None and seen == [("case", 42)]
    finally:
        await app.shutdown()


async def test_message_dates_follow_the_injected_clock(probe: Probe) -> None:
    from datetime import UTC, datetime

    fixed = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    api = FakeBotAPI(now=lambda: fixed)
    app = build_app(api, probe)
    await app.initialize()
    try:
        tg = FakeTelegram(app, api)
        alice = tg.user(1001, "Alice")
        turn = await alice.send("/echo hi")
        assert turn.update is not None and turn.update.message is not None
        assert turn.update.message.date == fixed
        last = alice.last_message()
        assert last is not None and last.date == fixed
    finally:
        await app.shutdown()


async def test_after_update_runs_inside_the_turn(app: Application, api: FakeBotAPI) -> None:
    later: list[int] = []

    async def send_queued() -> None:
        # What an outbox drain does: sends the update caused, after its handlers finished.
        while later:
            await app.bot.send_message(later.pop(), "queued notice")

    async def queue(update: Update, context: Context) -> None:
        assert update.effective_chat is not None
        later.append(update.effective_chat.id)

    app.add_handler(CommandHandler("queue", queue), group=-1)
    tg = FakeTelegram(app, api, after_update=send_queued)
    alice = tg.user(1001, "Alice")
    turn = await alice.send("/queue")
    assert turn.texts == ["queued notice"] and later == []


async def test_ignored_tasks_are_never_awaited(app: Application, api: FakeBotAPI) -> None:
    forever = asyncio.Event()
    started: list[asyncio.Task[None]] = []

    async def start_service(update: Update, context: Context) -> None:
        async def worker() -> None:
            await forever.wait()

        async def service() -> None:
            started.append(asyncio.create_task(worker()))  # its children are its business
            await forever.wait()

        started.append(asyncio.create_task(service(), name="griddesk-service"))

    app.add_handler(CommandHandler("service", start_service), group=-1)
    tg = FakeTelegram(app, api, ignore_task=lambda t: t.get_name().startswith("griddesk-"), settle_timeout=30)
    alice = tg.user(1001, "Alice")
    await alice.send("/service")
    await tg.settle()
    assert len(started) == 2 and not any(t.done() for t in started)
    forever.set()
    await asyncio.gather(*started)
