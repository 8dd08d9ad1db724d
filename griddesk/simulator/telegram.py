"""The player API: users and groups that talk to the application through the fake server.

``await alice.send("/start")`` builds a Telegram-shaped update, feeds it to
``Application.process_update`` and waits until everything the update started has finished
(see :meth:`FakeTelegram.deliver`).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import mimetypes
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from telegram import Message, Update
from telegram.ext import Application, ExtBot

from griddesk.simulator.api import FakeBotAPI, media_json
from griddesk.simulator.formatting import detect_entities, utf16_slice
from griddesk.simulator.model import JSON, SENDING_METHODS, Call, ChatState, member_json


class SettleTimeout(AssertionError):
    """Tasks started by an update were still running after ``settle_timeout`` seconds."""


@dataclass
class Turn:
    """What happened when one update was delivered.

    ``delivered`` is False when Telegram would not have given the update to the bot at all
    (privacy mode in groups, bot not in the group). ``calls`` are the Bot API calls made while
    the update was processed (including by tasks it started); ``errors`` are exceptions that
    reached the application's error handlers.
    """

    data: JSON
    delivered: bool = True
    update: Update | None = None
    calls: list[Call] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    answer: Call | None = None  # the answerCallbackQuery for a press, if any

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    @property
    def replies(self) -> list[JSON]:
        """Messages the bot sent while handling this update (as sent)."""
        out: list[JSON] = []
        for call in self.calls:
            if call.method in SENDING_METHODS and call.ok:
                out.extend(call.result if isinstance(call.result, list) else [call.result])
        return out

    @property
    def texts(self) -> list[str]:
        return [str(m.get("text", m.get("caption"))) for m in self.replies if "text" in m or "caption" in m]

    @property
    def edits(self) -> list[Call]:
        return [call for call in self.calls if call.method.startswith("editMessage") and call.ok]

    @staticmethod
    def combine(turns: Sequence[Turn]) -> Turn:
        first = turns[0]
        return Turn(
            data=first.data,
            delivered=any(t.delivered for t in turns),
            update=first.update,
            calls=[c for t in turns for c in t.calls],
            errors=[e for t in turns for e in t.errors],
            answer=next((t.answer for t in turns if t.answer), None),
        )


class BotMessage(Message):
    """A bot message as the player API hands it out: a PTB :class:`~telegram.Message` plus
    ``body`` and ``caption_text``, which read as ``str`` (AssertionError when the message has
    none), so a test writes ``assert "..." in message.body``."""

    __slots__ = ()

    @classmethod
    def of(cls, data: JSON, bot: ExtBot[Any]) -> BotMessage:
        return cast(BotMessage, cls.de_json(data, bot))

    @property
    def body(self) -> str:
        """The message's text (AssertionError if it has none, e.g. a photo)."""
        if self.text is None:
            raise AssertionError(f"message {self.message_id} has no text (caption: {self.caption!r})")
        return self.text

    @property
    def caption_text(self) -> str:
        """The message's caption (AssertionError if it has none)."""
        if self.caption is None:
            raise AssertionError(f"message {self.message_id} has no caption (text: {self.text!r})")
        return self.caption


# Ways to point at a message: a PTB Message, its JSON, (chat_id, message_id), a bare
# message_id (in the acting user's private chat, or ``chat=``), or the Turn that carried it.
MessageRef = Message | JSON | tuple[int, int] | int | Turn


def buttons(message: Message | JSON | None) -> list[list[str]]:
    """Texts of the inline keyboard of a message, row by row ([] if none)."""
    if message is None:
        return []
    markup = message.get("reply_markup") if isinstance(message, dict) else message.reply_markup
    if markup is None:
        return []
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else markup.inline_keyboard
    return [[b["text"] if isinstance(b, dict) else b.text for b in row] for row in rows]


class FakeChat:
    """A chat as the tests see it: a view over the fake server's state for that chat."""

    def __init__(self, tg: FakeTelegram, chat_id: int) -> None:
        self.tg = tg
        self.id = chat_id

    def __repr__(self) -> str:
        return f"FakeChat({self.id}, {self.state.type}, {self.state.title or self.state.first_name!r})"

    @property
    def state(self) -> ChatState:
        return self.tg.api.chats[self.id]

    @property
    def title(self) -> str | None:
        return self.state.title

    @property
    def type(self) -> str:
        return self.state.type

    def json(self) -> JSON:
        return self.state.json()

    def messages(self) -> list[BotMessage]:
        """The bot's messages in this chat as they are now (edited, not deleted), oldest first."""
        return self.tg.messages(self.id)

    def last_message(self) -> BotMessage:
        """The bot's latest message here (AssertionError if it has sent none)."""
        return self.tg.last_message(self.id)

    def texts(self) -> list[str]:
        """Texts/captions the bot sent here, in order, as sent."""
        return self.tg.texts(self.id)

    def last_text(self) -> str:
        """Text/caption of the bot's latest message here (AssertionError if there is none)."""
        text = self.tg.api.last_text(self.id)
        if text is None:
            raise AssertionError(f"the bot sent no text to chat {self.id}")
        return text

    def message(self, message_id: int) -> BotMessage:
        return self.tg.message(self.id, message_id)

    def set_member(self, user: FakeUser, status: str) -> None:
        """Set ``user``'s status in this group (what getChatMember answers)."""
        self.tg.api.set_member_status(self.id, user.id, status)

    def add_admin(self, user: FakeUser) -> None:
        self.set_member(user, "administrator")

    @property
    def bot_status(self) -> str:
        return self.state.bot_status


class FakeUser:
    """A Telegram user who talks to the bot. Private chat id == user id."""

    def __init__(self, tg: FakeTelegram, user: JSON) -> None:
        self.tg = tg
        self.json: JSON = user
        self.id: int = user["id"]
        self.chat = FakeChat(tg, self.id)

    def __repr__(self) -> str:
        return f"FakeUser({self.id}, {self.json.get('first_name')!r})"

    @property
    def first_name(self) -> str:
        return str(self.json["first_name"])

    @property
    def username(self) -> str | None:
        return self.json.get("username")

    @property
    def language_code(self) -> str | None:
        return self.json.get("language_code")

    # ---- what the user sees in the private chat ------------------------------------------

    def messages(self) -> list[BotMessage]:
        return self.chat.messages()

    def last_message(self) -> BotMessage:
        return self.chat.last_message()

    def texts(self) -> list[str]:
        return self.chat.texts()

    def last_text(self) -> str:
        return self.chat.last_text()

    def reply_keyboard(self, chat: FakeChat | None = None) -> list[list[str]] | None:
        """Button texts of the reply keyboard currently shown (None if none)."""
        markup = (chat or self.chat).state.reply_keyboard
        if markup is None:
            return None
        return [[b if isinstance(b, str) else b["text"] for b in row] for row in markup["keyboard"]]

    # ---- actions --------------------------------------------------------------------------

    async def send(
        self,
        text: str,
        *,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
        entities: list[JSON] | None = None,
        message_thread_id: int | None = None,
    ) -> Turn:
        """A text message; commands, mentions and URLs get the entities Telegram adds."""
        content: JSON = {"text": text}
        found = entities if entities is not None else detect_entities(text)
        if found:
            content["entities"] = found
        if message_thread_id is not None:
            content.update(message_thread_id=message_thread_id, is_topic_message=True)
        return await self.tg._send_from(self, chat, content, reply_to)

    async def send_photo(
        self,
        data: bytes | None = None,
        *,
        caption: str | None = None,
        chat: FakeChat | None = None,
        media_group_id: str | None = None,
        reply_to: MessageRef | None = None,
        size: tuple[int, int] | None = None,
    ) -> Turn:
        """A compressed photo. The bytes are stored so getFile + download of the largest size
        returns them unchanged (smaller sizes are real thumbnails). ``size``: its (width,
        height) when the sender made it and knows (see :meth:`FakeBotAPI.add_photo`)."""
        if data is None:
            from griddesk.simulator.images import plain_jpeg

            data = plain_jpeg()
        content: JSON = {"photo": self.tg.api.add_photo(data, size=size)}
        if caption:
            content["caption"] = caption
            if found := detect_entities(caption):
                content["caption_entities"] = found
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return await self.tg._send_from(self, chat, content, reply_to)

    async def send_album(
        self, photos: Sequence[bytes], *, caption: str | None = None, chat: FakeChat | None = None
    ) -> list[Turn]:
        """Several photos sent together: one update per photo, sharing a media_group_id, the
        caption on the first (as Telegram clients do)."""
        group_id = str(next(self.tg._media_group_ids))
        turns = []
        for index, data in enumerate(photos):
            turns.append(
                await self.send_photo(data, caption=caption if index == 0 else None, chat=chat, media_group_id=group_id)
            )
        return turns

    async def send_document(
        self,
        data: bytes,
        *,
        file_name: str = "file.bin",
        mime_type: str | None = None,
        caption: str | None = None,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
    ) -> Turn:
        """A file sent uncompressed ("as file"): bytes, name and EXIF all preserved."""
        mime = mime_type or mimetypes.guess_type(file_name, strict=False)[0] or "application/octet-stream"
        stored = self.tg.api.add_file(data, kind="document", file_name=file_name, mime_type=mime)
        content: JSON = {"document": media_json(stored)}
        if caption:
            content["caption"] = caption
        return await self.tg._send_from(self, chat, content, reply_to)

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        *,
        live_period: int | None = None,
        horizontal_accuracy: float | None = None,
        chat: FakeChat | None = None,
        reply_to: MessageRef | None = None,
    ) -> Turn:
        location: JSON = {"latitude": latitude, "longitude": longitude}
        if live_period is not None:
            location["live_period"] = live_period
        if horizontal_accuracy is not None:
            location["horizontal_accuracy"] = horizontal_accuracy
        return await self.tg._send_from(self, chat, {"location": location}, reply_to)

    async def edit_live_location(self, message: MessageRef, latitude: float, longitude: float) -> Turn:
        """Telegram delivers live-location movement as ``edited_message`` updates."""

        def change(stored: JSON) -> None:
            location = stored.get("location")
            if not location or not location.get("live_period"):
                raise AssertionError("that message is not a live location")
            stored["location"] = {**location, "latitude": latitude, "longitude": longitude}

        return await self.tg._edit_from(self, message, change)

    async def send_venue(
        self,
        latitude: float,
        longitude: float,
        title: str,
        address: str,
        *,
        chat: FakeChat | None = None,
    ) -> Turn:
        location = {"latitude": latitude, "longitude": longitude}
        content = {"venue": {"location": location, "title": title, "address": address}, "location": location}
        return await self.tg._send_from(self, chat, content, None)

    async def send_sticker(self, emoji: str = "👍", *, chat: FakeChat | None = None) -> Turn:
        stored = self.tg.api.add_file(b"RIFF\x00\x00\x00\x00WEBPVP8 ", kind="sticker", file_name="sticker.webp")
        sticker = {**media_json(stored), "emoji": emoji}
        return await self.tg._send_from(self, chat, {"sticker": sticker}, None)

    async def send_video(
        self,
        data: bytes = b"\x00\x00\x00\x18ftypmp42fake-video",
        *,
        duration: int = 3,
        width: int = 640,
        height: int = 360,
        caption: str | None = None,
        chat: FakeChat | None = None,
    ) -> Turn:
        stored = self.tg.api.add_file(
            data, kind="video", file_name="video.mp4", mime_type="video/mp4", width=width, height=height
        )
        video = {**media_json(stored), "duration": duration}
        content: JSON = {"video": video}
        if caption:
            content["caption"] = caption
        return await self.tg._send_from(self, chat, content, None)

    async def send_voice(
        self, data: bytes = b"OggS\x00\x02fake-voice", duration: int = 2, *, chat: FakeChat | None = None
    ) -> Turn:
        stored = self.tg.api.add_file(data, kind="voice", mime_type="audio/ogg")
        voice = {**media_json(stored), "duration": duration}
        return await self.tg._send_from(self, chat, {"voice": voice}, None)

    async def send_contact(
        self,
        phone_number: str = "+8613800138000",
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        user_id: int | None = None,
        own: bool = True,
        chat: FakeChat | None = None,
    ) -> Turn:
        """Share a contact; by default the user's own (what a request_contact button sends:
        ``contact.user_id`` == the sender)."""
        contact: JSON = {"phone_number": phone_number, "first_name": first_name or self.first_name}
        if last_name:
            contact["last_name"] = last_name
        if user_id is not None or own:
            contact["user_id"] = user_id if user_id is not None else self.id
        return await self.tg._send_from(self, chat, {"contact": contact}, None)

    async def press(self, message: MessageRef, label: str, *, chat: FakeChat | None = None) -> Call | None:
        """Press the inline button whose text (or else callback_data) is ``label`` on a bot
        message as it currently is. Returns the answerCallbackQuery call (None if the bot did
        not answer); the whole turn is ``tg.last_turn``."""
        return await self.tg._press(self, message, label, chat)

    async def press_data(self, chat_id: int, message_id: int, data: str) -> Call | None:
        """A callback query with arbitrary data (forged/stale buttons)."""
        return await self.tg._press_data(self, chat_id, message_id, data)

    async def press_data_turn(self, chat_id: int, message_id: int, data: str) -> Turn:
        """:meth:`press_data`, returning the whole turn (``turn.answer`` is the answer): what
        concurrent callers need, since ``tg.last_turn`` may be someone else's by then."""
        return await self.tg._press_turn(self, chat_id, message_id, data)

    async def join(self, group: FakeChat) -> Turn:
        """Join a group: ``new_chat_members`` service message (always delivered)."""
        self.tg.api.set_member_status(group.id, self.id, "member")
        return await self.tg._send_from(self, group, {"new_chat_members": [self.json]}, None)


# --------------------------------------------------------------------------------------------
# Which tasks belong to a turn
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _TurnTasks:
    """Tasks started (directly or transitively) while one update was processed."""

    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    open: bool = True


# Set while a turn runs. Tasks copy the context they are created in, so tasks started by a
# task of the turn (and theirs) see the same _TurnTasks: attribution is exact even when many
# users' updates are in flight at once, and needs no scan of asyncio.all_tasks().
_current_turn: contextvars.ContextVar[_TurnTasks | None] = contextvars.ContextVar("fakebot_turn", default=None)
# Which task started which (recorded by the task factory), so the children of an ignored
# long-lived task (say, a sender's per-send tasks) are ignored with it.
_parents: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Task[Any]] = weakref.WeakKeyDictionary()


def _install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Record every task created under a turn in that turn's _TurnTasks (chaining any task
    factory already installed)."""
    previous = loop.get_task_factory()
    if getattr(previous, "fakebot", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made = previous(loop, coro, **kwargs) if previous is not None else asyncio.Task(coro, loop=loop, **kwargs)
        task: asyncio.Task[Any] = made  # type: ignore[assignment]
        parent = asyncio.current_task(loop)
        if parent is not None:
            _parents[task] = parent
        context = kwargs.get("context")
        turn = context.get(_current_turn) if context is not None else _current_turn.get()
        if turn is not None and turn.open:
            turn.tasks.append(task)
        return task

    factory.fakebot = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)


class FakeTelegram:
    """Drives an initialized PTB ``Application`` wired to a :class:`FakeBotAPI`.

    ``raise_errors``: an exception that reaches the application's error handlers (i.e. a
    handler crashed) is re-raised from the ``send``/``press`` that caused it, with its original
    traceback; set False to collect them in ``tg.errors`` / ``turn.errors`` instead. The
    project's own error handlers still run (ours is registered first and only records).
    ``expected_errors``: exception types that are part of normal flow (a project's typed
    "a rule said no" errors that its error handler answers); they are recorded, not raised.

    ``settle_timeout``/``ignore_task``: see :meth:`deliver`. Pass ``ignore_task`` (e.g.
    ``lambda t: t.get_name().startswith("griddesk-")``) for tasks an update legitimately
    leaves running forever; they (and tasks they start) are never awaited, neither by
    :meth:`deliver` nor by :meth:`settle`.

    ``after_update``: awaited by :meth:`deliver` after each update has been processed and
    its background tasks have settled, still inside the turn (Bot API calls it causes are in
    ``turn.calls``, tasks it starts are settled too). Use it to wait for work the update
    handed to a long-lived task, e.g. ``after_update=sender.drain`` for an outbox sender.
    """

    def __init__(
        self,
        app: Application,
        api: FakeBotAPI | None = None,
        *,
        raise_errors: bool = True,
        expected_errors: tuple[type[BaseException], ...] = (),
        settle_timeout: float = 5.0,
        ignore_task: Callable[[asyncio.Task[Any]], bool] | None = None,
        after_update: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if api is None:
            request = app.bot.request
            if not isinstance(request, FakeBotAPI):
                raise TypeError("the application is not wired to a FakeBotAPI; pass api=")
            api = request
        self.app = app
        self.api = api
        self.raise_errors = raise_errors
        self.expected_errors = expected_errors
        self.settle_timeout = settle_timeout
        self.ignore_task = ignore_task
        self.after_update = after_update
        self.errors: list[BaseException] = []
        self.turns: list[Turn] = []
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._media_group_ids = itertools.count(14000000000000001)
        self._error_recorder = self._record_error  # one bound method, so dict lookups match

    # ---- world building -------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        is_bot: bool = False,
        started: bool = True,
    ) -> FakeUser:
        """A user with a private chat. ``started=False``: the user never opened the bot, so
        the bot cannot message them (403) until they send something."""
        if user_id <= 0:
            raise ValueError("user ids are positive")
        data: JSON = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            data["last_name"] = last_name
        if username:
            data["username"] = username
        if language_code:
            data["language_code"] = language_code
        self.api.add_private_chat(data, started=started)
        return FakeUser(self, data)

    def group(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "supergroup",  # Telegram's field name
        bot_status: str = "member",
        username: str | None = None,
        is_forum: bool = False,
        members: Iterable[FakeUser] = (),
        admins: Iterable[FakeUser] = (),
    ) -> FakeChat:
        """A group the bot is already in (``bot_status``; use ``"left"`` plus
        :meth:`bot_added_to` to play the joining)."""
        self.api.add_group(chat_id, title, type=type, bot_status=bot_status, username=username, is_forum=is_forum)
        chat = FakeChat(self, chat_id)
        for member in members:
            chat.set_member(member, "member")
        for admin in admins:
            chat.add_admin(admin)
        return chat

    def chat(self, chat_id: int) -> FakeChat:
        self.api._known_chat(chat_id)
        return FakeChat(self, chat_id)

    # ---- reading state --------------------------------------------------------------------

    @property
    def last_turn(self) -> Turn | None:
        return self.turns[-1] if self.turns else None

    def message(self, chat_id: int, message_id: int) -> BotMessage:
        """A message as it currently is, as a PTB object bound to the app's bot."""
        # de_json copies what it reads; the stored dict is never changed in place.
        return BotMessage.of(self.api.message(chat_id, message_id), self.app.bot)

    def _bot_messages(self, chat_id: int) -> list[JSON]:
        bot_id = self.api.bot_id
        return [m for m in self.api.chat_messages(chat_id) if m.get("from", {}).get("id") == bot_id]

    def bot_message_ids(self, chat_id: int) -> list[int]:
        """Ids of the bot's messages that still exist in ``chat_id``, ascending."""
        return [m["message_id"] for m in self._bot_messages(chat_id)]

    def messages(self, chat_id: int) -> list[BotMessage]:
        return [BotMessage.of(m, self.app.bot) for m in self._bot_messages(chat_id)]

    def last_message(self, chat_id: int) -> BotMessage:
        """The bot's latest message in ``chat_id`` (AssertionError if it has sent none there)."""
        bot_id = self.api.bot_id
        for message in reversed(self.api.chat_messages(chat_id)):
            if message.get("from", {}).get("id") == bot_id:
                return BotMessage.of(message, self.app.bot)
        raise AssertionError(f"the bot sent no message to chat {chat_id}")

    def texts(self, chat_id: int) -> list[str]:
        """Texts/captions the bot sent to ``chat_id``, in order, as sent (see FakeBotAPI.texts)."""
        return self.api.texts(chat_id)

    # ---- bot membership -------------------------------------------------------------------

    async def bot_added_to(self, group: FakeChat, *, by: FakeUser, status: str = "member") -> Turn:
        """The bot is added to ``group`` by ``by``: a my_chat_member update (left -> status),
        then the ``new_chat_members`` service message, as Telegram sends both."""
        old = group.state.bot_status if group.state.bot_status in ("left", "kicked") else "left"
        group.state.member_status.setdefault(by.id, "member")
        first = await self._my_chat_member(group, by, old, status)
        second = await self._send_from(by, group, {"new_chat_members": [self.api.public_bot_user]}, None)
        return Turn.combine([first, second])

    async def bot_removed_from(self, group: FakeChat, *, by: FakeUser, status: str = "kicked") -> Turn:
        """The bot is removed (``"kicked"``) or leaves (``"left"``): my_chat_member only (the
        bot is no longer there to see the service message)."""
        return await self._my_chat_member(group, by, group.state.bot_status, status)

    # ---- delivery -------------------------------------------------------------------------

    async def deliver(self, payload: JSON, *, delivered: bool = True) -> Turn:
        """Feed one update (without ``update_id``; one is assigned) and wait for it to settle.

        Waiting: ``Application.process_update`` awaits blocking handlers itself. Work it starts
        in the background (``block=False`` handlers, ConversationHandler non-blocking states,
        ``application.create_task``, plain ``asyncio.create_task``, and whatever those start)
        is recorded by a task factory while the update is processed and awaited until no new
        tasks appear; tasks ``ignore_task`` matches are left alone. This uses no PTB internals
        (``Application`` only tracks its tasks while *running*), also catches tasks handlers
        start themselves, and does not wait for other users' updates in flight. Then
        ``after_update`` (if given) is awaited. Tasks that outlive ``settle_timeout`` raise
        :class:`SettleTimeout`.
        """
        data = {"update_id": next(self._update_ids), **payload}
        turn = Turn(data=data, delivered=delivered)
        self.turns.append(turn)
        if not delivered:
            return turn
        update = Update.de_json(data, self.app.bot)
        bot = self.app.bot
        if isinstance(bot, ExtBot) and bot.callback_data_cache is not None:
            # What Updater/webhook do for arbitrary_callback_data before processing.
            bot.insert_callback_data(update)
        turn.update = update
        self._install_error_recorder()
        _install_task_factory(asyncio.get_running_loop())
        errors_before = len(self.errors)
        tasks = _TurnTasks()
        token = _current_turn.set(tasks)
        try:
            with self.api.recording() as calls, warnings.catch_warnings():
                # PTB warns that create_task() tasks of a non-running application are not
                # awaited for us; here they are (see _settle), so the warning is only noise.
                warnings.filterwarnings("ignore", message="Tasks created via `Application.create_task`")
                await self.app.process_update(update)
                await self._settle(tasks)
                if self.after_update is not None:
                    await self.after_update()
                    await self._settle(tasks)
        finally:
            tasks.open = False
            _current_turn.reset(token)
        turn.calls = calls
        turn.errors = self.errors[errors_before:]
        unexpected = [e for e in turn.errors if not isinstance(e, self.expected_errors)]
        if unexpected and self.raise_errors:
            error = unexpected[0]
            error.add_note(f"(raised by a handler while processing update {data['update_id']}: {_summary(data)})")
            raise error
        return turn

    async def settle(self) -> None:
        """Wait for every background task still running (for work started outside a turn,
        e.g. a job triggered by the test), except those ``ignore_task`` matches."""
        current = asyncio.current_task()
        await self._wait_quiet(
            lambda: [t for t in asyncio.all_tasks() if t is not current and not t.done() and not self._ignored(t)]
        )

    def _ignored(self, task: asyncio.Task[Any]) -> bool:
        """``ignore_task`` matches the task or one of the tasks that (transitively) started it."""
        if self.ignore_task is None:
            return False
        seen: asyncio.Task[Any] | None = task
        while seen is not None:
            if self.ignore_task(seen):
                return True
            seen = _parents.get(seen)
        return False

    async def _settle(self, tasks: _TurnTasks) -> None:
        if not tasks.tasks:
            return  # nothing was started: no need to even yield to the loop
        await self._wait_quiet(lambda: [t for t in tasks.tasks if not t.done() and not self._ignored(t)])

    async def _wait_quiet(self, pending_now: Callable[[], list[asyncio.Task[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        quiet_rounds = 0
        while quiet_rounds < 2:  # an empty round more: done-callbacks may start more tasks
            pending = pending_now()
            if not pending:
                quiet_rounds += 1
                await asyncio.sleep(0)
                continue
            quiet_rounds = 0
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = ", ".join(t.get_name() for t in pending)
                raise SettleTimeout(f"tasks still running after {self.settle_timeout}s: {names}")
            await asyncio.wait(pending, timeout=remaining)

    def _install_error_recorder(self) -> None:
        handlers = self.app.error_handlers
        if next(iter(handlers), None) == self._error_recorder:
            return
        others = {callback: block for callback, block in handlers.items() if callback != self._error_recorder}
        handlers.clear()
        handlers[self._error_recorder] = True  # block=True: recorded before the turn ends
        handlers.update(others)

    async def _record_error(self, update: object, context: Any) -> None:
        if context.error is not None:
            self.errors.append(context.error)

    # ---- building updates -----------------------------------------------------------------

    def _chat_state(self, user: FakeUser, chat: FakeChat | None) -> ChatState:
        return self.api.chats[chat.id if chat is not None else user.id]

    def _locate(self, ref: MessageRef, default_chat: int) -> tuple[int, int]:
        if isinstance(ref, Turn):
            if ref.update is None or ref.update.effective_message is None:
                raise AssertionError("that turn carried no message (was it delivered?)")
            ref = ref.update.effective_message
        if isinstance(ref, Message):
            return ref.chat.id, ref.message_id
        if isinstance(ref, dict):
            return int(ref["chat"]["id"]), int(ref["message_id"])
        if isinstance(ref, tuple):
            return int(ref[0]), int(ref[1])
        return default_chat, int(ref)

    def _reply_json(self, ref: MessageRef | None, chat_id: int) -> JSON | None:
        if ref is None:
            return None
        key = self._locate(ref, chat_id)
        original = self.api.messages.get(key)
        if original is None:
            raise AssertionError(f"cannot reply to message {key}: it does not exist")
        return {k: v for k, v in original.items() if k != "reply_to_message"}

    async def _send_from(
        self, user: FakeUser, chat: FakeChat | None, content: JSON, reply_to: MessageRef | None
    ) -> Turn:
        state = self._chat_state(user, chat)
        message: JSON = {
            "message_id": self.api.next_message_id(state.id),
            "from": user.json,
            "chat": state.json(),
            "date": self.api.timestamp(),
        }
        reply = self._reply_json(reply_to, state.id)
        if reply is not None:
            message["reply_to_message"] = reply
        message.update(content)
        self.api.store_message(message)
        if state.type == "private":
            # Writing to the bot (re)starts the conversation; a blocked bot must have been
            # unblocked for the user to write at all.
            state.started = True
            state.blocked = False
        else:
            state.member_status.setdefault(user.id, "member")
        return await self.deliver({"message": message}, delivered=self._reaches_bot(state, message))

    async def _edit_from(self, user: FakeUser, ref: MessageRef, change: Callable[[JSON], None]) -> Turn:
        key = self._locate(ref, user.id)
        stored = self.api.messages.get(key)
        if stored is None or stored.get("from", {}).get("id") != user.id:
            raise AssertionError(f"message {key} is not {user!r}'s")
        edited = dict(stored)  # a new version: the old one stays in the turn that sent it
        change(edited)
        edited["edit_date"] = self.api.timestamp()
        self.api.store_message(edited)
        state = self.api.chats[key[0]]
        return await self.deliver({"edited_message": edited}, delivered=self._reaches_bot(state, edited))

    def _reaches_bot(self, state: ChatState, message: JSON) -> bool:
        """Would Telegram deliver this message to the bot? (privacy mode rules)"""
        if state.type == "private":
            return True
        if state.bot_status in ("left", "kicked"):
            return False
        if self.api.bot_user["can_read_all_group_messages"] or state.bot_status in ("administrator", "creator"):
            return True
        service = ("new_chat_members", "left_chat_member", "new_chat_title", "pinned_message", "group_chat_created")
        if any(key in message for key in service):
            return True
        reply = message.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == self.api.bot_id:
            return True
        text = str(message.get("text", message.get("caption")) or "")
        username = str(self.api.bot_user["username"]).lower()
        for entity in message.get("entities") or message.get("caption_entities") or []:
            token = utf16_slice(text, entity["offset"], entity["length"])
            if entity["type"] == "bot_command":
                target = token.partition("@")[2]
                if not target or target.lower() == username:
                    return True
            elif entity["type"] == "mention" and token[1:].lower() == username:
                return True
        return False

    async def _my_chat_member(self, chat: FakeChat, by: FakeUser, old: str, new: str) -> Turn:
        if chat.type != "private":
            self.api.set_bot_status(chat.id, new)
        bot = self.api.public_bot_user
        payload = {
            "my_chat_member": {
                "chat": chat.json(),
                "from": by.json,
                "date": self.api.timestamp(),
                "old_chat_member": member_json(bot, old),
                "new_chat_member": member_json(bot, new),
            }
        }
        return await self.deliver(payload)

    async def _press(self, user: FakeUser, ref: MessageRef, label: str, chat: FakeChat | None) -> Call | None:
        chat_id, message_id = self._locate(ref, chat.id if chat is not None else user.id)
        message = self.api.messages.get((chat_id, message_id))
        if message is None:
            raise AssertionError(f"message ({chat_id}, {message_id}) does not exist (deleted?)")
        rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
        flat = [button for row in rows for button in row]
        button = (
            next((b for b in flat if b.get("text") == label), None)
            or next((b for b in flat if b.get("callback_data") == label), None)
            # "😀" presses "😀 非常满意": a label's first word, when only one button starts so
            or _only([b for b in flat if str(b.get("text", "")).startswith(label + " ")])
        )
        if button is None:
            raise AssertionError(f"no button {label!r} on message ({chat_id}, {message_id}); it has {buttons(message)}")
        if "callback_data" not in button:
            raise AssertionError(f"button {label!r} has no callback_data: {button}")
        return await self._press_data(user, chat_id, message_id, button["callback_data"])

    async def _press_data(self, user: FakeUser, chat_id: int, message_id: int, data: str) -> Call | None:
        return (await self._press_turn(user, chat_id, message_id, data)).answer

    async def _press_turn(self, user: FakeUser, chat_id: int, message_id: int, data: str) -> Turn:
        message = self.api.messages.get((chat_id, message_id))
        if message is None:
            # What Telegram sends for a message the bot can no longer access.
            message = {"chat": self.api.chats[chat_id].json(), "message_id": message_id, "date": 0}
        query_id = str(5000000000000000000 + next(self._query_ids))
        self.api.callback_queries[query_id] = False
        payload = {
            "callback_query": {
                "id": query_id,
                "from": user.json,
                "chat_instance": str(abs(chat_id) * 7919 % 10**18),
                "message": message,
                "data": data,
            }
        }
        turn = await self.deliver(payload)
        answers = [c for c in turn.calls_to("answerCallbackQuery") if c.params.get("callback_query_id") == query_id]
        turn.answer = answers[-1] if answers else None
        return turn


def _only(found: list[JSON]) -> JSON | None:
    return found[0] if len(found) == 1 else None


def _summary(data: JSON) -> str:
    for key in ("message", "edited_message", "callback_query", "my_chat_member"):
        if key in data:
            inner = data[key]
            detail = inner.get("text") or inner.get("data") or inner.get("caption") or ""
            return f"{key} {detail!r}"[:120]
    return "update"
