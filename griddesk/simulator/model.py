"""Constants, records and errors shared by the fake server and the player API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Constants (Bot API limits, see https://core.telegram.org/bots/api and /method/... pages)
# --------------------------------------------------------------------------------------------

BOT_ID = 7000000001
BOT_USERNAME = "GridDeskTestBot"
BOT_FIRST_NAME = "GridDesk"

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units, after entity parsing
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files
MAX_MEDIA_GROUP = 10

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)

# Parameters whose value is JSON when sent over HTTP. PTB passes dicts/lists, but a caller
# using ``api_kwargs`` may pass an already-encoded string; Telegram accepts both.
JSON_PARAMS = frozenset(
    {"reply_markup", "entities", "caption_entities", "media", "commands", "scope", "reply_parameters"}
)

# Methods that create messages and are therefore counted by ``sent_messages``.
SENDING_METHODS = frozenset({"sendMessage", "sendPhoto", "sendMediaGroup", "sendDocument"})

GROUP_TYPES = ("group", "supergroup")
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


# --------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """Raised by a method implementation; turned into Telegram's error JSON by do_request."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    @classmethod
    def bad_request(cls, what: str) -> ApiError:
        return cls(400, f"Bad Request: {what}")

    @classmethod
    def forbidden(cls, what: str) -> ApiError:
        return cls(403, f"Forbidden: {what}")


@dataclass
class Call:
    """One Bot API call as the fake server saw it.

    ``params`` are JSON-decoded Python values (what Telegram would parse from the request);
    ``files`` maps multipart part names to the uploaded bytes (``"photo"`` for a plain upload,
    ``"attached<hex>"`` for ``attach://`` parts such as media-group items).
    ``status``/``result``/``error`` tell how the fake answered. ``image_sizes`` holds each
    uploaded part's decoded (width, height), None for one that does not decode (measured
    before the call is answered, off the event loop).
    """

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    file_names: dict[str, str] = field(default_factory=dict)
    image_sizes: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    status: int = 200
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def text(self) -> str | None:
        """``text`` or ``caption`` parameter, whichever the call had."""
        value = self.params.get("text", self.params.get("caption"))
        return value if isinstance(value, str) else None


class StoredFile:
    """A file the fake server knows: uploaded by the bot, sent by a player, or ``add_file``-d.

    A photo's thumbnails are rendered only when someone asks for their bytes (``render``):
    the bot downloads the largest size, and the harness should not spend a benchmark's time
    downscaling photos nobody looks at."""

    def __init__(
        self,
        file_id: str,
        file_unique_id: str,
        data: bytes | None,
        file_path: str,
        kind: str,  # photo | document | video | voice | audio | animation | sticker
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        render: Callable[[], bytes] | None = None,
    ) -> None:
        self.file_id = file_id
        self.file_unique_id = file_unique_id
        self.file_path = file_path
        self.kind = kind
        self.file_name = file_name
        self.mime_type = mime_type
        self.width = width
        self.height = height
        self._data = data
        self._render = render

    def __repr__(self) -> str:
        return f"StoredFile({self.file_id!r}, {self.kind}, {self.file_path!r})"

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self._render() if self._render is not None else b""
            self._render = None
        return self._data

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def rendered(self) -> bool:
        return self._data is not None


@dataclass
class ChatState:
    """What the fake server knows about a chat."""

    id: int
    type: str  # private | group | supergroup | channel
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    is_forum: bool = False
    # The bot's own membership: member | administrator | creator | restricted | left | kicked.
    bot_status: str = "member"
    # Private chats only: the user blocked the bot / has ever started it.
    blocked: bool = False
    started: bool = True
    # Group membership of users (user id -> status); users that spoke are "member" by default.
    member_status: dict[int, str] = field(default_factory=dict)
    # The reply keyboard currently shown (ReplyKeyboardMarkup dict), if any.
    reply_keyboard: JSON | None = None

    def json(self) -> JSON:
        """The ``Chat`` object as it appears inside messages and updates."""
        data: JSON = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.first_name or "User"
            if self.last_name:
                data["last_name"] = self.last_name
        else:
            data["title"] = self.title or str(self.id)
            if self.is_forum:
                data["is_forum"] = True
        if self.username:
            data["username"] = self.username
        return data


@dataclass(eq=False)
class Hold:
    """Calls of a method (to one chat) held until released: a slow Telegram (see
    FakeBotAPI.hold). ``reached`` is set once a call is waiting."""

    method: str
    chat_id: int | None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        return method == self.method and (self.chat_id is None or params.get("chat_id") == self.chat_id)

    def release(self) -> None:
        self.released.set()


@dataclass
class Failure:
    """An injected failure waiting for its method (see FakeBotAPI.fail_next)."""

    status: int
    description: str
    retry_after: int | None
    timeout: bool


def member_json(user: JSON, status: str) -> JSON:
    """A ``ChatMember`` of the given status with every field PTB 22.8 requires."""
    if status not in MEMBER_STATUSES:
        raise ValueError(f"unknown chat member status {status!r}; use one of {MEMBER_STATUSES}")
    data: JSON = {"user": user, "status": status}
    if status == "creator":
        data["is_anonymous"] = False
    elif status == "administrator":
        data.update(
            can_be_edited=False,
            is_anonymous=False,
            can_manage_chat=True,
            can_delete_messages=True,
            can_manage_video_chats=True,
            can_restrict_members=True,
            can_promote_members=False,
            can_change_info=True,
            can_invite_users=True,
            can_post_stories=False,
            can_edit_stories=False,
            can_delete_stories=False,
            can_pin_messages=True,
            can_manage_topics=False,
        )
    elif status == "restricted":
        data.update(
            is_member=True,
            can_change_info=False,
            can_invite_users=False,
            can_pin_messages=False,
            can_send_messages=False,
            can_send_polls=False,
            can_send_other_messages=False,
            can_add_web_page_previews=False,
            can_manage_topics=False,
            until_date=0,
            can_send_audios=False,
            can_send_documents=False,
            can_send_photos=False,
            can_send_videos=False,
            can_send_video_notes=False,
            can_send_voice_notes=False,
            can_edit_tag=False,
            can_react_to_messages=False,
        )
    elif status == "kicked":
        data["until_date"] = 0  # 0 = banned forever
    return data
