"""The fake Bot API server, plugged in as PTB's request object.

It implements the methods GridDesk calls (plus ``deleteMessage`` and ``sendChatAction``,
which are cheap and likely next); any other method answers 404 like an unknown endpoint,
so a new call in the bot shows up as a loud test failure rather than a silent success.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from telegram.error import TimedOut
from telegram.request import BaseRequest, RequestData

from griddesk.simulator import images
from griddesk.simulator.formatting import Formatted, parse_formatted, utf16_len
from griddesk.simulator.model import (
    BOT_FIRST_NAME,
    BOT_ID,
    BOT_USERNAME,
    JSON,
    JSON_PARAMS,
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CALLBACK_DATA_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_DOWNLOAD_BYTES,
    MAX_MEDIA_GROUP,
    MAX_MESSAGE_LENGTH,
    MEMBER_STATUSES,
    NOT_MODIFIED,
    SENDING_METHODS,
    ApiError,
    Call,
    ChatState,
    Failure,
    Hold,
    StoredFile,
    member_json,
)

_URL_SCHEMES = ("http://", "https://", "tg://", "ton://")
# Calls whose uploads are photos the server decodes, and the thread it does that in: one, as
# the fake's other work is one at a time too.
PHOTO_UPLOADING_METHODS = frozenset({"sendPhoto", "sendMediaGroup", "editMessageMedia"})
_IMAGE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="fake-telegram-images")
_NOT_FOUND = json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}).encode()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _plain(value: Any) -> Any:
    """A private copy of a parameter value in JSON's shapes (tuples become lists), so stored
    state never aliases objects the bot may mutate later. Cheaper than a JSON round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _inline_markup(markup: Any) -> JSON | None:
    """The inline keyboard a message keeps (Telegram echoes only inline keyboards, and an
    empty inline keyboard means "no keyboard")."""
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        rows = [row for row in markup["inline_keyboard"] if row]
        return {"inline_keyboard": rows} if rows else None
    return None


def _kind_name(kind: str) -> str:
    return {"photo": "Photo", "document": "Document", "video": "Video", "voice": "VoiceNote"}.get(
        kind, kind.capitalize()
    )


def media_json(stored: StoredFile) -> JSON:
    """The object a message carries for a stored non-photo file (players send these)."""
    data: JSON = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_size": stored.size}
    if stored.kind == "document":
        data.update(file_name=stored.file_name, mime_type=stored.mime_type)
    elif stored.kind in ("video", "animation"):
        data.update(width=stored.width or 640, height=stored.height or 360, duration=1)
        data.update(mime_type=stored.mime_type or "video/mp4")
    elif stored.kind == "voice":
        data.update(duration=1, mime_type=stored.mime_type or "audio/ogg")
    elif stored.kind == "audio":
        data.update(duration=1, mime_type=stored.mime_type or "audio/mpeg")
    elif stored.kind == "sticker":
        data.update(width=512, height=512, is_animated=False, is_video=False, type="regular")
    return {k: v for k, v in data.items() if v is not None}


class FakeBotAPI(BaseRequest):
    """Fake Telegram Bot API server plugged in as PTB's request object.

    State a test can read directly:

    * ``calls``: every call in order (:class:`Call`), failed ones included.
    * ``messages[(chat_id, message_id)]``: the current JSON of every message (bot's and
      players'), updated by edits, removed by deletes. Treat it as read-only: messages are
      replaced, never changed in place, so a ``Call.result`` stays the message as sent.
    * ``chats[chat_id]``: :class:`ChatState`; ``files[file_id]``: :class:`StoredFile`.
    * ``commands``: what setMyCommands stored, keyed by ``(scope json, language_code)``.
    * ``downloads``: URLs fetched through ``File.download_*``.
    """

    def __init__(
        self,
        *,
        bot_id: int = BOT_ID,
        bot_username: str = BOT_USERNAME,
        bot_first_name: str = BOT_FIRST_NAME,
        can_read_all_group_messages: bool = False,
        strict_chats: bool = True,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """``can_read_all_group_messages`` is the BotFather privacy setting (False = privacy
        mode on, Telegram's default); :class:`FakeTelegram` uses it to decide which group
        messages reach the bot. ``strict_chats`` makes sends to chats the test never created
        fail with "chat not found" like Telegram; turn it off to auto-create chats.
        ``now`` supplies message dates (e.g. ``runtime.clock.now``)."""
        self.bot_user: JSON = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.public_bot_user: JSON = {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}
        self.strict_chats = strict_chats
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))

        self.calls: list[Call] = []
        self.downloads: list[str] = []
        self.messages: dict[tuple[int, int], JSON] = {}
        self.deleted: set[tuple[int, int]] = set()
        self.chats: dict[int, ChatState] = {}
        self.users: dict[int, JSON] = {bot_id: self.public_bot_user}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        # callback_query_id -> answered?  (registered by FakeTelegram when a player presses)
        self.callback_queries: dict[str, bool] = {}
        # file_id -> the PhotoSize list it belongs to, so re-sending a photo by file_id
        # yields the same sizes (as Telegram does).
        self._photo_sets: dict[str, list[JSON]] = {}

        # Indexes, so lookups do not scan everything ever stored: messages per chat in id
        # order (ids only grow, and dicts keep insertion order), the bot's sent messages per
        # chat as sent, files by download path.
        self._chat_messages: dict[int, dict[int, JSON]] = {}
        self._sent: dict[int, list[JSON]] = {}
        self._paths: dict[str, StoredFile] = {}
        # Called with every message stored (new, or the new version of an edited one), bot's
        # and players' alike: lets a load generator index buttons instead of polling chats.
        self.observers: list[Callable[[JSON], None]] = []

        self._message_ids: dict[int, int] = {}
        self._file_counter = itertools.count(1)
        self._media_group_counter = itertools.count(1)
        self._failures: dict[str, list[Failure]] = {}
        self._holds: list[Hold] = []
        self._recorders: list[list[Call]] = []
        self._initialized = False

    # ---- BaseRequest interface ------------------------------------------------------------

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        self._initialized = True

    async def shutdown(self) -> None:
        self._initialized = False

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if method == "GET":  # File.download_* -> BaseRequest.retrieve(url)
            return self._serve_download(url)

        api_method = url.rsplit("/", 1)[-1]
        params = self._decode_parameters(request_data)
        files, file_names = self._read_uploads(request_data)
        call = Call(api_method, params, files, file_names)
        if files and api_method in PHOTO_UPLOADING_METHODS:
            await self._measure_images(call)
        self.calls.append(call)
        for recorder in self._recorders:
            recorder.append(call)

        for hold in self._holds:
            if hold.matches(api_method, params) and not hold.released.is_set():
                hold.reached.set()
                await hold.released.wait()
        if self._failures:
            failure = self._pop_failure(api_method)
            if failure is not None:
                if failure.timeout:
                    call.status, call.error = 0, "timed out"
                    raise TimedOut("Timed out")
                return self._error(call, ApiError(failure.status, failure.description, self._retry(failure)))

        if api_method == "getUpdates":
            # Updates are fed by FakeTelegram; a polling Updater just gets nothing. Sleep a
            # little so a running poll loop does not spin.
            await asyncio.sleep(0.01)
            return self._ok(call, [])

        implementation = getattr(self, f"_api_{api_method}", None)
        if implementation is None:
            call.status, call.error = 404, "Not Found"
            return 404, _NOT_FOUND
        try:
            result = implementation(call)
        except ApiError as exc:
            return self._error(call, exc)
        if api_method in SENDING_METHODS:
            for message in result if isinstance(result, list) else [result]:
                self._sent.setdefault(message["chat"]["id"], []).append(message)
        return self._ok(call, result)

    async def _measure_images(self, call: Call) -> None:
        """Decode the uploaded photos in a thread of the fake's own, as Telegram's servers do
        this work elsewhere: in the event loop the bot shares with the fake, it was charged to
        the bot and to everyone's latency (not through the loop's run_in_executor either, which
        the benchmarks count as the bot's thread hops)."""
        for name, data in call.files.items():
            call.image_sizes[name] = await asyncio.wrap_future(_IMAGE_THREAD.submit(images.image_size, data))

    # ---- recording helpers ----------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent_messages(self, chat_id: int | None = None) -> list[JSON]:
        """Messages the bot successfully sent (as returned at send time), in order; media
        groups count each item. ``chat_id=None`` means all chats."""
        if chat_id is not None:
            return list(self._sent.get(chat_id, ()))
        sent: list[JSON] = []
        for call in self.calls:
            if call.method in SENDING_METHODS and call.ok:
                sent.extend(call.result if isinstance(call.result, list) else [call.result])
        return sent

    def texts(self, chat_id: int) -> list[str]:
        """Texts/captions of the bot's messages to ``chat_id`` as sent, in order (items
        without text or caption, such as a bare location, are skipped)."""
        out: list[str] = []
        for message in self._sent.get(chat_id, ()):
            text = message.get("text", message.get("caption"))
            if text is not None:
                out.append(text)
        return out

    def last_text(self, chat_id: int) -> str | None:
        for message in reversed(self._sent.get(chat_id, ())):
            text = message.get("text", message.get("caption"))
            if text is not None:
                return str(text)
        return None

    def message(self, chat_id: int, message_id: int) -> JSON:
        """The current state of a message (KeyError if it never existed or was deleted)."""
        return self.messages[(chat_id, message_id)]

    def chat_messages(self, chat_id: int) -> list[JSON]:
        """Every message that still exists in ``chat_id`` (bot's and players'), oldest first."""
        return list(self._chat_messages.get(chat_id, {}).values())

    def clear(self) -> None:
        """Forget the call log (and so ``sent_messages``/``texts``). Chats, messages, files
        and membership stay: they are Telegram's state, not the log."""
        self.calls.clear()
        self.downloads.clear()
        self._sent.clear()

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[Call]]:
        """Collect the calls made inside the block (survives ``clear()``)."""
        recorder: list[Call] = []
        self._recorders.append(recorder)
        try:
            yield recorder
        finally:
            # by identity: two empty recorders of concurrent turns compare equal
            self._recorders[:] = [r for r in self._recorders if r is not recorder]

    # ---- test controls --------------------------------------------------------------------

    def hold(self, method: str, chat_id: int | None = None) -> Hold:
        """Make calls of ``method`` (to ``chat_id``; any chat if None) wait until the hold is
        released: a slow Telegram, for tests of what must not wait for a send."""
        hold = Hold(method, chat_id)
        self._holds.append(hold)
        return hold

    def fail_next(
        self,
        method: str,
        status: int = 400,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        timeout: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (``"*"`` = any method).

        ``status=429``/``retry_after=N`` -> PTB raises ``RetryAfter``; 5xx -> ``NetworkError``;
        ``timeout=True`` -> ``TimedOut`` is raised from the request (nothing is answered);
        400/403 -> ``BadRequest``/``Forbidden`` with ``description``."""
        if retry_after is not None:
            status = 429
        if description is None:
            description = {
                400: "Bad Request: injected failure",
                403: "Forbidden: injected failure",
                429: f"Too Many Requests: retry after {retry_after or 1}",
                500: "Internal Server Error",
                502: "Bad Gateway",
                503: "Service Unavailable",
            }.get(status, "Injected failure")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._failures.setdefault(method, []).extend(
            Failure(status, description, retry_after, timeout) for _ in range(times)
        )

    def add_private_chat(self, user: JSON, *, started: bool = True) -> ChatState:
        """Register a user and their private chat with the bot (chat id == user id)."""
        self.users[user["id"]] = user
        chat = self.chats.get(user["id"])
        if chat is None:
            chat = ChatState(
                id=user["id"],
                type="private",
                first_name=user.get("first_name"),
                last_name=user.get("last_name"),
                username=user.get("username"),
                started=started,
            )
            self.chats[chat.id] = chat
        return chat

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "supergroup",  # Telegram's field name
        bot_status: str = "member",
        username: str | None = None,
        is_forum: bool = False,
    ) -> ChatState:
        if type not in ("group", "supergroup", "channel"):
            raise ValueError(f"not a group type: {type!r}")
        if chat_id >= 0:
            raise ValueError("group/supergroup chat ids are negative")
        chat = ChatState(id=chat_id, type=type, title=title, username=username, is_forum=is_forum)
        chat.bot_status = bot_status
        self.chats[chat_id] = chat
        return chat

    def block(self, chat_id: int) -> None:
        """The user of this private chat blocked the bot: sends fail with 403."""
        self._known_chat(chat_id).blocked = True

    def unblock(self, chat_id: int) -> None:
        self._known_chat(chat_id).blocked = False

    def kick(self, chat_id: int) -> None:
        """The bot was removed from this group: sends fail with 403."""
        self.set_bot_status(chat_id, "kicked")

    def set_bot_status(self, chat_id: int, status: str) -> None:
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._known_chat(chat_id).bot_status = status

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What getChatMember(chat_id, user_id) answers (creator/administrator/member/...)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._known_chat(chat_id).member_status[user_id] = status

    def add_file(
        self,
        data: bytes | None,
        *,
        kind: str = "document",
        file_id: str | None = None,
        file_unique_id: str | None = None,
        file_path: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        render: Callable[[], bytes] | None = None,
    ) -> StoredFile:
        """Make bytes downloadable: getFile(file_id) answers and the download serves ``data``
        (or what ``render()`` returns, produced on first use)."""
        number = next(self._file_counter)
        file_id = file_id or f"fake-file-{number}"
        if file_path is None:
            folder = {"photo": "photos", "voice": "voice", "video": "videos", "sticker": "stickers"}.get(
                kind, "documents"
            )
            suffix = Path(file_name).suffix if file_name else {"photo": ".jpg", "voice": ".oga"}.get(kind, "")
            file_path = f"{folder}/file_{number}{suffix}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=file_unique_id or f"fake-uniq-{number}",
            data=bytes(data) if data is not None else None,
            file_path=file_path,
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
            render=render,
        )
        self.files[file_id] = stored
        self._paths[file_path] = stored
        return stored

    def add_photo(self, data: bytes, *, size: tuple[int, int] | None = None) -> list[JSON]:
        """Store a photo the way Telegram does and return its ``PhotoSize`` list (ascending).

        Telegram keeps several sizes; the thumbnails here are real downscaled JPEGs, rendered
        when first downloaded (so their PhotoSize has no ``file_size``), and the largest entry
        serves the exact bytes given (note: real Telegram re-encodes photos and drops their
        EXIF; send as a document to keep it). Its size is found by decoding the photo (at
        1/8 scale: 18 ms for 4000×3000), work Telegram's servers do; a sender that made the
        photo may give ``size`` instead, so that a benchmark does not charge that work to the
        event loop the bot shares with the fake."""
        size = size or images.image_size(data)
        width, height = size if size else (800, 600)
        sizes: list[JSON] = []
        if size is not None:  # Telegram cannot thumbnail what it cannot decode
            for box in images.THUMBNAIL_BOXES:
                if max(width, height) > box:
                    tw, th = images.fit(width, height, box)
                    render = functools.partial(images.thumbnail, data, box)
                    stored = self.add_file(None, kind="photo", width=tw, height=th, render=render)
                    sizes.append(self._photo_size(stored))
        stored = self.add_file(data, kind="photo", width=width, height=height)
        sizes.append(self._photo_size(stored))
        for entry in sizes:
            self._photo_sets[entry["file_id"]] = sizes
        return sizes

    def file_bytes(self, file_id: str) -> bytes:
        return self.files[file_id].data

    # ---- message bookkeeping (also used by FakeTelegram for players' messages) ------------

    def next_message_id(self, chat_id: int) -> int:
        """Telegram numbers messages per chat; bots and users share the counter."""
        self._message_ids[chat_id] = self._message_ids.get(chat_id, 0) + 1
        return self._message_ids[chat_id]

    def store_message(self, message: JSON) -> JSON:
        """Store a new message, or the new version of an edited one (replacing, not mutating,
        the old dict: calls and turns keep what was sent)."""
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        self.messages[(chat_id, message_id)] = message
        self._chat_messages.setdefault(chat_id, {})[message_id] = message
        for observer in self.observers:
            observer(message)
        return message

    def timestamp(self) -> int:
        return int(self.now().timestamp())

    def user_json(self, user_id: int) -> JSON:
        return self.users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})

    @property
    def bot_id(self) -> int:
        return int(self.bot_user["id"])

    # ---- internals: transport -------------------------------------------------------------

    def _ok(self, call: Call, result: Any) -> tuple[int, bytes]:
        # Stored messages are replaced on edit, never mutated, so the result itself is the
        # snapshot of what was answered.
        call.result = result
        return 200, json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode()

    def _error(self, call: Call, exc: ApiError) -> tuple[int, bytes]:
        call.status, call.error = exc.status, exc.description
        body: JSON = {"ok": False, "error_code": exc.status, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return exc.status, json.dumps(body, ensure_ascii=False).encode()

    @staticmethod
    def _retry(failure: Failure) -> JSON | None:
        return {"retry_after": failure.retry_after} if failure.retry_after else None

    def _pop_failure(self, method: str) -> Failure | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                return queue.pop(0)
        return None

    @staticmethod
    def _decode_parameters(request_data: RequestData | None) -> dict[str, Any]:
        if request_data is None:
            return {}
        params: dict[str, Any] = {}
        for name, value in request_data.parameters.items():
            if name in JSON_PARAMS and isinstance(value, str) and value[:1] in "[{":
                params[name] = json.loads(value)
            else:
                params[name] = _plain(value)
        return params

    @staticmethod
    def _read_uploads(request_data: RequestData | None) -> tuple[dict[str, bytes], dict[str, str]]:
        if request_data is None or not request_data.contains_files:
            return {}, {}
        files: dict[str, bytes] = {}
        names: dict[str, str] = {}
        for part, (filename, content, _mimetype) in request_data.multipart_data.items():
            # Since PTB 21.5 the content may be an open file handle instead of bytes.
            files[part] = content if isinstance(content, bytes) else content.read()
            names[part] = filename
        return files, names

    def _serve_download(self, url: str) -> tuple[int, bytes]:
        self.downloads.append(url)
        path = unquote(urlsplit(url).path)
        # The path is {base_file_url}{token}/{file_path}; our file paths are "folder/file_N.ext",
        # a test's own add_file(file_path=...) may have any depth.
        stored = self._paths.get("/".join(path.rsplit("/", 2)[-2:]))
        if stored is None:
            stored = next((f for p, f in self._paths.items() if path.endswith("/" + p)), None)
        if stored is None:
            return 404, _NOT_FOUND
        return 200, stored.data

    # ---- internals: chats & permissions ---------------------------------------------------

    def _known_chat(self, chat_id: int) -> ChatState:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise KeyError(f"chat {chat_id} is not registered with the fake (tg.user/tg.group)") from None

    def _chat(self, params: JSON, key: str = "chat_id") -> ChatState:
        raw = params.get(key)
        if raw is None:
            raise ApiError.bad_request(f"{key} is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self.chats.values():
                if chat.username and chat.username.lower() == raw[1:].lower():
                    return chat
            raise ApiError.bad_request("chat not found")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise ApiError.bad_request("chat not found") from None
        known = self.chats.get(chat_id)
        if known is not None:
            return known
        if self.strict_chats:
            raise ApiError.bad_request("chat not found")
        if chat_id > 0:
            return self.add_private_chat({"id": chat_id, "is_bot": False, "first_name": "User"})
        return self.add_group(chat_id, str(chat_id))

    def _check_reachable(self, chat: ChatState) -> None:
        """The 403s Telegram answers for chats the bot cannot reach."""
        if chat.type == "private":
            user = self.users.get(chat.id, {})
            if user.get("is_bot"):
                raise ApiError.forbidden("bot can't send messages to bots")
            if chat.blocked:
                raise ApiError.forbidden("bot was blocked by the user")
            if not chat.started:
                raise ApiError.forbidden("bot can't initiate conversation with a user")
            return
        kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
        if chat.type == "channel":
            kind = "channel chat"
        if chat.bot_status == "kicked":
            raise ApiError.forbidden(f"bot was kicked from the {kind}")
        if chat.bot_status == "left":
            raise ApiError.forbidden(f"bot is not a member of the {kind}")

    def _check_can_send(self, chat: ChatState, what: str = "text messages") -> None:
        self._check_reachable(chat)
        if chat.type != "private" and chat.bot_status == "restricted":
            raise ApiError.bad_request(f"not enough rights to send {what} to the chat")

    def _check_markup(self, markup: Any, chat: ChatState) -> JSON | None:
        """Validate reply_markup like Telegram; return the inline keyboard to keep on the
        message, and remember reply keyboards on the chat."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError.bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            for row in markup["inline_keyboard"]:
                for button in row:
                    self._check_inline_button(button)
            return _inline_markup(markup)
        if "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        return None

    @staticmethod
    def _check_inline_button(button: JSON) -> None:
        if not button.get("text"):
            raise ApiError.bad_request("can't parse inline keyboard button: Text must be non-empty")
        if "callback_data" in button:
            data = button["callback_data"]
            size = len(data.encode("utf-8")) if isinstance(data, str) else 0
            if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                raise ApiError.bad_request("BUTTON_DATA_INVALID")
        elif "url" in button:
            if not str(button["url"]).startswith(_URL_SCHEMES):
                raise ApiError.bad_request(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
        elif not any(
            key in button
            for key in (
                "web_app",
                "login_url",
                "switch_inline_query",
                "switch_inline_query_current_chat",
                "switch_inline_query_chosen_chat",
                "copy_text",
                "callback_game",
                "pay",
            )
        ):
            raise ApiError.bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must have exactly one action"
            )

    def _check_reply_to(self, chat: ChatState, params: JSON) -> JSON | None:
        """Telegram rejects replies to messages that do not exist (unless told not to care)."""
        reply = params.get("reply_parameters") or {}
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if message_id is None:
            return None
        try:
            target_chat = int(reply.get("chat_id", chat.id))
        except (TypeError, ValueError):  # "@username" form: only same-chat replies are modelled
            target_chat = chat.id
        key = (target_chat, int(message_id))
        missing = key in self.deleted or int(message_id) > self._message_ids.get(target_chat, 0)
        if missing and not reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply")):
            raise ApiError.bad_request("message to be replied not found")
        original = self.messages.get(key)
        if original is None:
            return None
        return {k: v for k, v in original.items() if k != "reply_to_message"}

    def _format(self, params: JSON, *, caption: bool) -> Formatted | None:
        key, entities_key = ("caption", "caption_entities") if caption else ("text", "entities")
        raw = params.get(key)
        if raw is None or raw == "":
            if caption:
                return None
            raise ApiError.bad_request("message text is empty")
        formatted = parse_formatted(str(raw), params.get("parse_mode"), params.get(entities_key), users=self.users)
        if not formatted.text:
            if caption:
                return None
            raise ApiError.bad_request("message text is empty")
        if caption and utf16_len(formatted.text) > MAX_CAPTION_LENGTH:
            raise ApiError.bad_request("message caption is too long")
        if not caption and utf16_len(formatted.text) > MAX_MESSAGE_LENGTH:
            raise ApiError.bad_request("message is too long")
        return formatted

    # ---- internals: messages --------------------------------------------------------------

    def _new_message(self, chat: ChatState, params: JSON, content: JSON, markup: JSON | None) -> JSON:
        message: JSON = {
            "message_id": self.next_message_id(chat.id),
            "from": self.public_bot_user,
            "chat": chat.json(),
            "date": self.timestamp(),
        }
        if params.get("message_thread_id") is not None:
            message["message_thread_id"] = params["message_thread_id"]
            message["is_topic_message"] = True
        reply_to = self._check_reply_to(chat, params)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(content)
        if markup is not None:
            message["reply_markup"] = markup
        return self.store_message(message)

    @staticmethod
    def _put_text(message: JSON, key: str, formatted: Formatted | None) -> None:
        entities_key = "entities" if key == "text" else "caption_entities"
        message.pop(key, None)
        message.pop(entities_key, None)
        if formatted is not None:
            message[key] = formatted.text
            if formatted.entities:
                message[entities_key] = formatted.entities

    def _editable(self, call: Call) -> tuple[ChatState, JSON]:
        """The bot's message to edit, as a fresh copy to change and ``_commit``."""
        params = call.params
        chat = self._chat(params)
        self._check_reachable(chat)
        message = self.messages.get((chat.id, int(params.get("message_id", 0))))
        if message is None:
            raise ApiError.bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise ApiError.bad_request("message can't be edited")
        return chat, dict(message)

    def _commit_edit(self, message: JSON, markup: JSON | None) -> JSON:
        # No reply_markup in an edit removes the keyboard: a classic Telegram gotcha.
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        message["edit_date"] = self.timestamp()
        return self.store_message(message)

    def _photo_size(self, stored: StoredFile) -> JSON:
        size: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": stored.width or 0,
            "height": stored.height or 0,
        }
        if stored.rendered:
            size["file_size"] = stored.size
        return size

    def _upload_name(self, value: Any, call: Call, part: str) -> str | None:
        """The multipart part an uploaded file parameter names: a plain upload (a part named
        like the parameter, value absent) or ``attach://name``. None means the value is a
        file_id (or URL) string."""
        if value is None and part in call.files:
            return part
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name not in call.files:
                raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
            return name
        if not isinstance(value, str) or not value:
            raise ApiError.bad_request(f"there is no {part} in the request")
        return None

    def _upload(self, value: Any, call: Call, part: str) -> bytes | None:
        """Bytes of an uploaded file parameter (see :meth:`_upload_name`)."""
        name = self._upload_name(value, call, part)
        return call.files[name] if name is not None else None

    def _resolve_photo(self, value: Any, call: Call, part: str) -> list[JSON]:
        name = self._upload_name(value, call, part)
        if name is None:
            stored = self.files.get(value)
            if stored is None:
                # Includes http(s) URLs: the fake cannot fetch them.
                raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
            if stored.kind != "photo":
                raise ApiError.bad_request(f"can't use file of type {_kind_name(stored.kind)} as Photo")
            return self._photo_sets.get(stored.file_id) or [self._photo_size(stored)]
        upload = call.files[name]
        size = call.image_sizes[name]  # every part of a PHOTO_UPLOADING_METHODS call was measured
        if size is None:
            raise ApiError.bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise ApiError.bad_request("PHOTO_INVALID_DIMENSIONS")
        return self.add_photo(upload, size=size)

    def _photo_content(self, item: JSON, call: Call, value: Any, part: str) -> JSON:
        kind = item.get("type", "photo")
        if kind != "photo":
            raise ApiError.bad_request(f"sending {kind} media is not modelled by the fake")
        content: JSON = {"photo": self._resolve_photo(value, call, part)}
        self._put_text(content, "caption", self._format(item, caption=True))
        return content

    # ---- Bot API methods ------------------------------------------------------------------
    # Each takes the Call and returns the "result" or raises ApiError.

    def _api_getMe(self, call: Call) -> JSON:
        return dict(self.bot_user)

    def _api_setMyCommands(self, call: Call) -> bool:
        commands = call.params.get("commands") or []
        if len(commands) > 100:
            raise ApiError.bad_request("too many commands")  # limit per Bot API docs
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise ApiError.bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError.bad_request("command description must be 1-256 characters")
        scope = _canonical(call.params.get("scope") or {"type": "default"})
        self.commands[(scope, str(call.params.get("language_code") or ""))] = commands
        return True

    def _api_sendMessage(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat)
        formatted = self._format(params, caption=False)
        markup = self._check_markup(params.get("reply_markup"), chat)
        content: JSON = {}
        self._put_text(content, "text", formatted)
        return self._new_message(chat, params, content, markup)

    def _api_sendPhoto(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "photos")
        caption = self._format(params, caption=True)
        markup = self._check_markup(params.get("reply_markup"), chat)
        content: JSON = {"photo": self._resolve_photo(params.get("photo"), call, "photo")}
        self._put_text(content, "caption", caption)
        if params.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._new_message(chat, params, content, markup)

    def _api_sendDocument(self, call: Call) -> JSON:
        """A document upload (issue 11: /export): stored for getFile, its bytes in call.files."""
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "documents")
        caption = self._format(params, caption=True)
        markup = self._check_markup(params.get("reply_markup"), chat)
        data = self._upload(params.get("document"), call, "document")
        if data is None:
            raise ApiError.bad_request("sending a document by file_id is not modelled by the fake")
        name = call.file_names.get("document") or "document"
        stored = self.add_file(data, kind="document", file_name=name)
        content: JSON = {
            "document": {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id, "file_name": name,
                         "file_size": len(data)}
        }  # fmt: skip
        self._put_text(content, "caption", caption)
        return self._new_message(chat, params, content, markup)

    def _api_sendMediaGroup(self, call: Call) -> list[JSON]:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "photos")
        media = params.get("media") or []
        if not media:
            raise ApiError.bad_request("there are no media in the request")  # wording approximated
        if len(media) > MAX_MEDIA_GROUP:
            raise ApiError.bad_request("too many media in the album")  # wording approximated
        # validate everything before sending anything, as Telegram does
        prepared = [self._photo_content(item, call, item.get("media"), "media") for item in media]
        group_id = str(next(self._media_group_counter) + 13000000000000000)
        results = []
        for content in prepared:
            content["media_group_id"] = group_id
            results.append(self._new_message(chat, params, content, None))
        return results

    def _api_sendChatAction(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        return True

    def _api_editMessageText(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True  # inline messages are not tracked
        chat, message = self._editable(call)
        if "text" not in message:
            raise ApiError.bad_request("there is no text in the message to edit")
        formatted = self._format(params, caption=False)
        markup = self._check_markup(params.get("reply_markup"), chat)
        assert formatted is not None
        same_text = formatted.text == message["text"] and formatted.entities == message.get("entities", [])
        if same_text and _canonical(markup) == _canonical(message.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        self._put_text(message, "text", formatted)
        return self._commit_edit(message, markup)

    def _api_editMessageCaption(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        if "text" in message or not any(
            k in message for k in ("photo", "document", "video", "audio", "animation", "voice")
        ):
            raise ApiError.bad_request("there is no caption in the message to edit")
        caption = self._format(params, caption=True)
        markup = self._check_markup(params.get("reply_markup"), chat)
        old = (message.get("caption"), message.get("caption_entities", []))
        new = (caption.text, caption.entities) if caption else (None, [])
        if old == new and _canonical(markup) == _canonical(message.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        self._put_text(message, "caption", caption)
        return self._commit_edit(message, markup)

    def _api_editMessageMedia(self, call: Call) -> JSON | bool:
        """Replace a photo message's photo (and its caption), as Telegram does."""
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        if "photo" not in message:
            raise ApiError.bad_request("there is no media in the message to edit")  # wording approximated
        media = params.get("media") or {}
        content = self._photo_content(media, call, media.get("media"), "media")
        markup = self._check_markup(params.get("reply_markup"), chat)
        same_photo = content["photo"][-1]["file_unique_id"] == message["photo"][-1]["file_unique_id"]
        same_caption = content.get("caption") == message.get("caption")
        if same_photo and same_caption and _canonical(markup) == _canonical(message.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        message["photo"] = content["photo"]
        self._put_text(message, "caption", self._format(media, caption=True))
        return self._commit_edit(message, markup)

    def _api_editMessageReplyMarkup(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        markup = self._check_markup(params.get("reply_markup"), chat)
        if _canonical(markup) == _canonical(message.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        return self._commit_edit(message, markup)

    def _api_deleteMessage(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        key = (chat.id, int(call.params.get("message_id", 0)))
        message = self.messages.get(key)
        if message is None:
            raise ApiError.bad_request("message to delete not found")
        from_bot = message.get("from", {}).get("id") == self.bot_id
        if chat.type != "private" and not from_bot and chat.bot_status not in ("administrator", "creator"):
            raise ApiError.bad_request("message can't be deleted")
        del self.messages[key]
        del self._chat_messages[chat.id][key[1]]
        self.deleted.add(key)
        return True

    def _api_answerCallbackQuery(self, call: Call) -> bool:
        query_id = str(call.params.get("callback_query_id", ""))
        if self.callback_queries.get(query_id, True):  # unknown or already answered
            raise ApiError.bad_request("query is too old and response timeout expired or query ID is invalid")
        text = call.params.get("text")
        if text is not None and utf16_len(str(text)) > MAX_CALLBACK_ANSWER_LENGTH:
            raise ApiError.bad_request("MESSAGE_TOO_LONG")
        self.callback_queries[query_id] = True
        return True

    def _api_getFile(self, call: Call) -> JSON:
        stored = self.files.get(str(call.params.get("file_id", "")))
        if stored is None:
            raise ApiError.bad_request("wrong file_id or the file is temporarily unavailable")
        if stored.size > MAX_DOWNLOAD_BYTES:
            raise ApiError.bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def _api_getChatMember(self, call: Call) -> JSON:
        chat = self._chat(call.params)
        if chat.type != "private":
            self._check_reachable(chat)
        user_id = int(call.params.get("user_id", 0))
        if user_id not in self.users:
            raise ApiError.bad_request("user not found")
        if user_id == self.bot_id:
            return member_json(self.public_bot_user, chat.bot_status)
        if chat.type == "private":
            status = "member" if user_id == chat.id else "left"
        else:
            status = chat.member_status.get(user_id, "left")
        return member_json(self.users[user_id], status)
