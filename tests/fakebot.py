"""A fake Telegram for tests: a Bot API server at PTB's request layer plus a "player" API.

Two layers:

* :class:`FakeBotAPI` is a :class:`telegram.request.BaseRequest`. Give it to the
  ``ApplicationBuilder`` (``.request(api).get_updates_request(api)``) and every Bot API call the
  bot makes lands in :meth:`FakeBotAPI.do_request` instead of the network. It answers like
  Telegram does (same JSON shapes, same HTTP status codes and, where we know them, the same
  error descriptions), records each call, and keeps the state a test wants to look at: every
  message in every chat as it currently is (after edits/deletes), uploaded files, chat
  membership, who blocked the bot.

* :class:`FakeTelegram` drives the application as users would: ``await alice.send("/start")``
  builds a Telegram-shaped update, feeds it to ``Application.process_update`` and waits until
  everything the update started has finished (see :meth:`FakeTelegram.deliver`).

Why the request layer and not ``unittest.mock`` on ``Bot``: PTB's own serialisation (reply
markups, InputFile uploads, Defaults such as parse_mode, arbitrary callback data) and its error
mapping (400 -> BadRequest, 403 -> Forbidden, 429 -> RetryAfter ...) stay in the loop, so the
tests exercise the same code paths as production.

Facts taken from the installed PTB 22.8 (``telegram/_bot.py``, ``telegram/request/*``):

* API calls are ``POST {base_url}{token}/{method}``; the method is the last path segment.
* ``RequestData.parameters`` already holds Python values (TelegramObjects were ``to_dict``-ed,
  datetimes made timestamps). An ``InputFile`` that is not attached via ``attach://`` is *not*
  among the parameters; it only shows up in ``multipart_data`` under the parameter's name.
* ``Bot.get_file`` prefixes ``file_path`` with ``{base_file_url}{token}/``; ``File.download_*``
  then calls ``request.retrieve(url)`` which reaches ``do_request`` with ``method="GET"``.
  (With ``local_mode=True`` PTB reads files from disk instead; this fake models the normal,
  non-local server and only accepts ``file://`` uploads for completeness.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import json
import mimetypes
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from PIL import Image
from telegram import Message, Update
from telegram.error import TimedOut
from telegram.ext import Application, ExtBot
from telegram.request import BaseRequest, RequestData

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
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "media",
        "commands",
        "scope",
        "reply_parameters",
        "link_preview_options",
        "menu_button",
        "allowed_updates",
        "results",
        "permissions",
        "rights",
        "reaction",
        "message_ids",
    }
)

# Methods that create messages and are therefore counted by ``sent_messages``.
_SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendMediaGroup",
        "sendDocument",
        "sendLocation",
        "sendVenue",
        "sendVideo",
        "sendVoice",
        "sendAudio",
        "sendAnimation",
        "sendSticker",
        "sendContact",
        "forwardMessage",
    }
)

_GROUP_TYPES = ("group", "supergroup")
_MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (entity offsets and limits are in UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


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
    ``status``/``result``/``error`` tell how the fake answered.
    """

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    file_names: dict[str, str] = field(default_factory=dict)
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


@dataclass
class StoredFile:
    """A file the fake server knows: uploaded by the bot, sent by a player, or ``add_file``-d."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    kind: str  # photo | document | video | voice | audio | animation | sticker
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


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


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    timeout: bool


# --------------------------------------------------------------------------------------------
# Entity parsing: what Telegram does with parse_mode before counting and storing the text
# --------------------------------------------------------------------------------------------


class EntityParseError(Exception):
    """The text could not be parsed; str(exc) is the part after "can't parse entities: "."""


@dataclass
class Formatted:
    text: str
    entities: list[JSON]


class _TextBuilder:
    """Accumulates plain text and tracks the UTF-16 offset entities are measured in."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.offset = 0

    def emit(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.offset += utf16_len(chunk)

    def text(self) -> str:
        return "".join(self.parts)


def _byte_offset(src: str, index: int) -> int:
    # Telegram reports positions in the UTF-8 request body.
    return len(src[:index].encode("utf-8"))


_HTML_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")


def _decode_html_entity(src: str, index: int) -> tuple[str, int] | None:
    """Telegram supports the four named entities and all numeric ones; anything else keeps
    its ``&`` literally (no error)."""
    match = _HTML_ENTITY_RE.match(src, index)
    if not match:
        return None
    body = match.group(1)
    if body.startswith("#"):
        code = int(body[2:], 16) if body[1:2] in ("x", "X") else int(body[1:])
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), match.end() - index
    if body in _NAMED_HTML_ENTITIES:
        return _NAMED_HTML_ENTITIES[body], match.end() - index
    return None


def _unescape_attribute(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&" and (decoded := _decode_html_entity(raw, i)):
            out.append(decoded[0])
            i += decoded[1]
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


@dataclass
class _OpenTag:
    name: str
    start: int  # UTF-16 offset in the output
    byte_offset: int
    attrs: dict[str, str]
    language: str | None = None  # <pre><code class="language-x"> sets this on the <pre>


def parse_html(src: str, *, users: dict[int, JSON] | None = None) -> Formatted:
    """Telegram's HTML parse mode (modelled on tdlib's ``parse_html``): only the documented
    tags, attributes on ``a``/``span``/``code``/``tg-emoji``/``blockquote``, the four named
    entities plus numeric ones; errors carry tdlib's wording and byte offsets."""
    out = _TextBuilder()
    stack: list[_OpenTag] = []
    entities: list[JSON] = []
    i, n = 0, len(src)
    while i < n:
        char = src[i]
        if char == "&":
            decoded = _decode_html_entity(src, i)
            if decoded:
                out.emit(decoded[0])
                i += decoded[1]
            else:
                out.emit("&")
                i += 1
            continue
        if char != "<":
            # Emit the whole run up to the next special character at once.
            j = i + 1
            while j < n and src[j] not in "<&":
                j += 1
            out.emit(src[i:j])
            i = j
            continue

        begin = i
        if i + 1 < n and src[i + 1] == "/":  # end tag
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
            j = i + 2
            while j < n and not src[j].isspace() and src[j] != ">":
                j += 1
            name = src[i + 2 : j].lower()
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
            top = stack[-1]
            if name and name != top.name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
                    f'expected "</{top.name}>", found "</{name}>"'
                )
            stack.pop()
            entity = _html_entity(top, out.offset, stack, users or {})
            if entity is not None:
                entities.append(entity)
            i = j + 1
            continue

        # start tag
        j = i + 1
        while j < n and not src[j].isspace() and src[j] != ">":
            j += 1
        if j >= n:
            raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
        name = src[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, begin)}')
        attrs: dict[str, str] = {}
        while True:
            while j < n and src[j].isspace():
                j += 1
            if j >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
            if src[j] == ">":
                break
            k = j
            while j < n and not src[j].isspace() and src[j] not in "=>":
                j += 1
            attr = src[k:j].lower()
            if not attr:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {_byte_offset(src, begin)}'
                )
            while j < n and src[j].isspace():
                j += 1
            if j >= n or src[j] != "=":
                if name == "blockquote" and attr == "expandable":
                    attrs[attr] = ""
                    continue
                raise EntityParseError(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {_byte_offset(src, begin)}"
                )
            j += 1
            while j < n and src[j].isspace():
                j += 1
            if j >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
            if src[j] in "\"'":
                end = src.find(src[j], j + 1)
                if end < 0:
                    raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
                raw = src[j + 1 : end]
                j = end + 1
            else:
                k = j
                while j < n and not src[j].isspace() and src[j] != ">":
                    j += 1
                raw = src[k:j]
            attrs[attr] = _unescape_attribute(raw)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {_byte_offset(src, begin)}'
            )
        stack.append(_OpenTag(name, out.offset, _byte_offset(src, begin), attrs))
        i = j + 1

    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return Formatted(out.text(), _sorted_entities(entities))


def _html_entity(tag: _OpenTag, end: int, stack: list[_OpenTag], users: dict[int, JSON]) -> JSON | None:
    length = end - tag.start
    kind = _HTML_TAGS[tag.name]
    if kind == "code" and stack and stack[-1].name == "pre":
        language = tag.attrs.get("class", "")
        if language.startswith("language-"):
            # <pre><code class="language-python"> is one pre entity with a language.
            stack[-1].language = language.removeprefix("language-")
            return None
    if length <= 0:
        return None  # Telegram drops empty entities
    entity: JSON = {"type": kind, "offset": tag.start, "length": length}
    if kind == "text_link":
        href = tag.attrs.get("href", "").strip()
        if not href:
            return None
        mention = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if mention:
            user_id = int(mention.group(1))
            user = users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})
            return {"type": "text_mention", "offset": tag.start, "length": length, "user": user}
        entity["url"] = href
    elif kind == "pre" and tag.language:
        entity["language"] = tag.language
    elif kind == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    return entity


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(src: str) -> Formatted:
    """A close approximation of Telegram's MarkdownV2: escapes, ``*bold*``, ``_italic_``,
    ``__underline__``, ``~strike~``, ``||spoiler||``, `` `code` ``, ```` ```lang\npre``` ````,
    ``[text](url)``, ``![e](tg://emoji?id=)`` and ``>`` blockquotes. Its most useful job in
    tests is rejecting unescaped reserved characters, as Telegram does."""
    out = _TextBuilder()
    stack: list[_MdOpen] = []
    entities: list[JSON] = []
    blockquote_start: int | None = None
    i, n = 0, len(src)

    def open_(kind: str) -> None:
        stack.append(_MdOpen(kind, out.offset, _byte_offset(src, i)))

    def close(extra: JSON | None = None) -> None:
        top = stack.pop()
        if out.offset > top.start:
            entity: JSON = {"type": top.kind, "offset": top.start, "length": out.offset - top.start}
            entity.update(top.extra)
            entity.update(extra or {})
            entities.append(entity)

    while i < n:
        char = src[i]
        top = stack[-1].kind if stack else None
        if char == "\\" and i + 1 < n and 0 < ord(src[i + 1]) < 127:
            out.emit(src[i + 1])
            i += 2
            continue
        if top in ("code", "pre"):
            # Inside code only ` and \ are special.
            if top == "pre" and src.startswith("```", i):
                close()
                i += 3
            elif top == "code" and char == "`":
                close()
                i += 1
            else:
                out.emit(char)
                i += 1
            continue
        line_start = i == 0 or src[i - 1] == "\n"
        if char == "\n" and blockquote_start is not None and not src.startswith(">", i + 1):
            if out.offset > blockquote_start:
                entities.append(
                    {"type": "blockquote", "offset": blockquote_start, "length": out.offset - blockquote_start}
                )
            blockquote_start = None
        if char not in _MDV2_RESERVED:
            out.emit(char)
            i += 1
            continue
        if char == ">" and line_start:
            if blockquote_start is None:
                blockquote_start = out.offset
            i += 1
        elif char == "*":
            close() if top == "bold" else open_("bold")
            i += 1
        elif char == "_":
            if top == "italic":
                close()
                i += 1
            elif src.startswith("__", i):
                close() if top == "underline" else open_("underline")
                i += 2
            else:
                open_("italic")
                i += 1
        elif char == "~":
            close() if top == "strikethrough" else open_("strikethrough")
            i += 1
        elif char == "|" and src.startswith("||", i):
            close() if top == "spoiler" else open_("spoiler")
            i += 2
        elif char == "`":
            if src.startswith("```", i):
                open_("pre")
                i += 3
                # ```python\n...``` : the first line names the language.
                newline = src.find("\n", i)
                closing = src.find("```", i)
                if 0 <= newline < (closing if closing >= 0 else n):
                    language = src[i:newline].strip()
                    if language:
                        stack[-1].extra["language"] = language
                    i = newline + 1
            else:
                open_("code")
                i += 1
        elif char == "[" or (char == "!" and src.startswith("![", i)):
            open_("custom_emoji" if char == "!" else "text_link")
            i += 2 if char == "!" else 1
        elif char == "]" and top in ("text_link", "custom_emoji"):
            i += 1
            if i < n and src[i] == "(":
                j = i + 1
                url_chars: list[str] = []
                while j < n and src[j] != ")":
                    if src[j] == "\\" and j + 1 < n:
                        j += 1
                    url_chars.append(src[j])
                    j += 1
                if j >= n:
                    raise EntityParseError(f"Can't find end of a url at byte offset {_byte_offset(src, i)}")
                url = "".join(url_chars)
                i = j + 1
                if top == "custom_emoji":
                    emoji = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
                    if not emoji:
                        raise EntityParseError("Custom emoji URL must have an emoji identifier")
                    close({"custom_emoji_id": emoji.group(1)})
                else:
                    close({"url": url})
            else:
                stack.pop()  # "[text]" without a URL stays plain text
        else:
            raise EntityParseError(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")
    if stack:
        raise EntityParseError(
            f"Can't find end of {_MDV2_NAMES.get(stack[-1].kind, stack[-1].kind)} entity "
            f"at byte offset {stack[-1].byte_offset}"
        )
    if blockquote_start is not None and out.offset > blockquote_start:
        entities.append({"type": "blockquote", "offset": blockquote_start, "length": out.offset - blockquote_start})
    return Formatted(out.text(), _sorted_entities(entities))


@dataclass
class _MdOpen:
    kind: str
    start: int
    byte_offset: int
    extra: JSON = field(default_factory=dict)


def parse_markdown(src: str) -> Formatted:
    """Legacy ``Markdown``: ``*bold*``, ``_italic_``, `` `code` ``, ```` ```pre``` ````,
    ``[text](url)``; no nesting; ``\\`` escapes ``_ * ` [``."""
    out = _TextBuilder()
    entities: list[JSON] = []
    i, n = 0, len(src)
    while i < n:
        char = src[i]
        if char == "\\" and i + 1 < n and src[i + 1] in "_*`[":
            out.emit(src[i + 1])
            i += 2
            continue
        if char not in "_*`[":
            out.emit(char)
            i += 1
            continue
        begin = _byte_offset(src, i)
        start = out.offset
        if char == "[":
            close = src.find("]", i + 1)
            if close < 0:
                raise EntityParseError(f"Can't find end of the entity starting at byte offset {begin}")
            label = src[i + 1 : close]
            out.emit(label)
            i = close + 1
            if i < n and src[i] == "(":
                end = src.find(")", i + 1)
                if end < 0:
                    raise EntityParseError(f"Can't find end of the entity starting at byte offset {begin}")
                url = src[i + 1 : end]
                i = end + 1
                if label:
                    entities.append({"type": "text_link", "offset": start, "length": utf16_len(label), "url": url})
            continue
        marker = "```" if src.startswith("```", i) else char
        end = src.find(marker, i + len(marker))
        if end < 0:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset {begin}")
        inner = src[i + len(marker) : end]
        language = None
        if marker == "```" and "\n" in inner:
            first, rest = inner.split("\n", 1)
            if first.strip() and " " not in first.strip():
                language, inner = first.strip(), rest
        out.emit(inner)
        i = end + len(marker)
        kind = {"*": "bold", "_": "italic", "`": "code", "```": "pre"}[marker]
        if inner:
            entity: JSON = {"type": kind, "offset": start, "length": utf16_len(inner)}
            if language:
                entity["language"] = language
            entities.append(entity)
    return Formatted(out.text(), _sorted_entities(entities))


def _sorted_entities(entities: Iterable[JSON]) -> list[JSON]:
    # Telegram returns entities ordered by offset, outer (longer) first.
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


_TRIM = " \t\r\n\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u3000"


def _trim(formatted: Formatted) -> Formatted:
    """Telegram strips leading/trailing whitespace from texts and captions and shifts/clips
    the entities accordingly; limits are checked on the result."""
    text = formatted.text
    stripped = text.strip(_TRIM)
    if stripped == text:
        return formatted
    lead = utf16_len(text[: len(text) - len(text.lstrip(_TRIM))])
    total = utf16_len(stripped)
    entities: list[JSON] = []
    for entity in formatted.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return Formatted(stripped, entities)


def parse_formatted(
    text: str, parse_mode: str | None, entities: list[JSON] | None = None, *, users: dict[int, JSON] | None = None
) -> Formatted:
    """Text as Telegram stores it: markup parsed to plain text + entities, then trimmed.

    Raises :class:`ApiError` with Telegram's descriptions for parse failures."""
    mode = (parse_mode or "").lower()
    try:
        if mode == "html":
            formatted = parse_html(text, users=users)
        elif mode == "markdownv2":
            formatted = parse_markdown_v2(text)
        elif mode == "markdown":
            formatted = parse_markdown(text)
        elif mode == "":
            formatted = Formatted(text, _sorted_entities(entities or []))
        else:
            raise ApiError.bad_request("unsupported parse_mode")
    except EntityParseError as exc:
        raise ApiError.bad_request(f"can't parse entities: {exc}") from None
    return _trim(formatted)


# --------------------------------------------------------------------------------------------
# JSON builders for Telegram objects
# --------------------------------------------------------------------------------------------


def member_json(user: JSON, status: str) -> JSON:
    """A ``ChatMember`` of the given status with every field PTB 22.8 requires."""
    if status not in _MEMBER_STATUSES:
        raise ValueError(f"unknown chat member status {status!r}; use one of {_MEMBER_STATUSES}")
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


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _inline_markup(markup: Any) -> JSON | None:
    """The inline keyboard a message keeps (Telegram echoes only inline keyboards, and an
    empty inline keyboard means "no keyboard")."""
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        rows = [row for row in markup["inline_keyboard"] if row]
        return {"inline_keyboard": rows} if rows else None
    return None


_URL_SCHEMES = ("http://", "https://", "tg://", "ton://")


def _kind_name(kind: str) -> str:
    return {"photo": "Photo", "document": "Document", "video": "Video", "voice": "VoiceNote"}.get(
        kind, kind.capitalize()
    )


# --------------------------------------------------------------------------------------------
# The fake Bot API server
# --------------------------------------------------------------------------------------------


class FakeBotAPI(BaseRequest):
    """Fake Telegram Bot API server plugged in as PTB's request object.

    State a test can read directly:

    * ``calls``: every call in order (:class:`Call`), failed ones included.
    * ``messages[(chat_id, message_id)]``: the current JSON of every message (bot's and
      players'), updated by edits, removed by deletes.
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
        self.strict_chats = strict_chats
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))

        self.calls: list[Call] = []
        self.downloads: list[str] = []
        self.messages: dict[tuple[int, int], JSON] = {}
        self.deleted: set[tuple[int, int]] = set()
        self.chats: dict[int, ChatState] = {}
        self.users: dict[int, JSON] = {bot_id: self._public_bot_user()}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.menu_buttons: dict[int | None, JSON] = {}
        self.bot_texts: dict[str, str] = {}  # setMyDescription & co, keyed by method + language
        self.webhook_url = ""
        # callback_query_id -> answered?  (registered by FakeTelegram when a player presses)
        self.callback_queries: dict[str, bool] = {}
        # file_id -> the PhotoSize list it belongs to, so re-sending a photo by file_id
        # yields the same sizes (as Telegram does).
        self._photo_sets: dict[str, list[JSON]] = {}

        self._message_ids: dict[int, int] = {}
        self._file_counter = itertools.count(1)
        self._media_group_counter = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
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

        api_method = urlsplit(url).path.rsplit("/", 1)[-1]
        params = self._decode_parameters(request_data)
        files, file_names = self._read_uploads(request_data)
        call = Call(api_method, params, files, file_names)
        self.calls.append(call)
        for recorder in self._recorders:
            recorder.append(call)

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
            return 404, json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}).encode()
        try:
            result = implementation(call)
        except ApiError as exc:
            return self._error(call, exc)
        return self._ok(call, result)

    # ---- recording helpers ----------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def sent_messages(self, chat_id: int | None = None) -> list[JSON]:
        """Messages the bot successfully sent (as returned at send time), in order; media
        groups count each item. ``chat_id=None`` means all chats."""
        sent: list[JSON] = []
        for call in self.calls:
            if call.method not in _SENDING_METHODS or not call.ok:
                continue
            results = call.result if isinstance(call.result, list) else [call.result]
            sent.extend(m for m in results if chat_id is None or m["chat"]["id"] == chat_id)
        return sent

    def texts(self, chat_id: int) -> list[str]:
        """Texts/captions of the bot's messages to ``chat_id`` as sent, in order (items
        without text or caption, such as a bare location, are skipped)."""
        out: list[str] = []
        for message in self.sent_messages(chat_id):
            text = message.get("text", message.get("caption"))
            if text is not None:
                out.append(text)
        return out

    def last_text(self, chat_id: int) -> str | None:
        texts = self.texts(chat_id)
        return texts[-1] if texts else None

    def message(self, chat_id: int, message_id: int) -> JSON:
        """The current state of a message (KeyError if it never existed or was deleted)."""
        return self.messages[(chat_id, message_id)]

    def clear(self) -> None:
        """Forget the call log (and so ``sent_messages``/``texts``). Chats, messages, files
        and membership stay: they are Telegram's state, not the log."""
        self.calls.clear()
        self.downloads.clear()

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
            _Failure(status, description, retry_after, timeout) for _ in range(times)
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
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._known_chat(chat_id).bot_status = status

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """What getChatMember(chat_id, user_id) answers (creator/administrator/member/...)."""
        if status not in _MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._known_chat(chat_id).member_status[user_id] = status

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "document",
        file_id: str | None = None,
        file_unique_id: str | None = None,
        file_path: str | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredFile:
        """Make bytes downloadable: getFile(file_id) answers and the download serves ``data``."""
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
            data=bytes(data),
            file_path=file_path,
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
            width=width,
            height=height,
        )
        self.files[file_id] = stored
        return stored

    def add_photo(self, data: bytes) -> list[JSON]:
        """Store a photo the way Telegram does and return its ``PhotoSize`` list (ascending).

        Telegram keeps several sizes; the thumbnails here are real downscaled JPEGs, and the
        largest entry serves the exact bytes given (note: real Telegram re-encodes photos and
        drops their EXIF; send as a document to keep it)."""
        size = _image_size(data)
        width, height = size if size else (800, 600)
        sizes: list[JSON] = []
        for box in (90, 320, 800):
            if max(width, height) > box:
                thumb = _thumbnail(data, box)
                if thumb is not None:
                    thumb_bytes, (tw, th) = thumb
                    stored = self.add_file(thumb_bytes, kind="photo", width=tw, height=th)
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
        key = (message["chat"]["id"], message["message_id"])
        self.messages[key] = message
        return message

    def timestamp(self) -> int:
        return int(self.now().timestamp())

    def user_json(self, user_id: int) -> JSON:
        return self.users.get(user_id, {"id": user_id, "is_bot": False, "first_name": "User"})

    # ---- internals: transport -------------------------------------------------------------

    def _public_bot_user(self) -> JSON:
        # Inside messages, "from" is the short User form (no can_join_groups & co).
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    @property
    def bot_id(self) -> int:
        return int(self.bot_user["id"])

    def _ok(self, call: Call, result: Any) -> tuple[int, bytes]:
        body = json.dumps({"ok": True, "result": result}, ensure_ascii=False)
        # A snapshot, not the live stored message: later edits must not rewrite history.
        call.result = json.loads(body)["result"]
        return 200, body.encode()

    def _error(self, call: Call, exc: ApiError) -> tuple[int, bytes]:
        call.status, call.error = exc.status, exc.description
        body: JSON = {"ok": False, "error_code": exc.status, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return exc.status, json.dumps(body, ensure_ascii=False).encode()

    @staticmethod
    def _retry(failure: _Failure) -> JSON | None:
        return {"retry_after": failure.retry_after} if failure.retry_after else None

    def _pop_failure(self, method: str) -> _Failure | None:
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
            if name in _JSON_PARAMS and isinstance(value, str) and value[:1] in "[{":
                value = json.loads(value)
            params[name] = value
        # Round-trip through JSON: the server sees exactly what HTTP would carry, and stored
        # state never aliases objects the bot may mutate later.
        decoded: dict[str, Any] = json.loads(json.dumps(params))
        return decoded

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
        for stored in self.files.values():
            if path.endswith("/" + stored.file_path):
                return 200, stored.data
        return 404, json.dumps({"ok": False, "error_code": 404, "description": "Not Found"}).encode()

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
            "from": self._public_bot_user(),
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
        params = call.params
        chat = self._chat(params)
        self._check_reachable(chat)
        message = self.messages.get((chat.id, int(params.get("message_id", 0))))
        if message is None:
            raise ApiError.bad_request("message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise ApiError.bad_request("message can't be edited")
        return chat, message

    def _photo_size(self, stored: StoredFile) -> JSON:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": stored.width or 0,
            "height": stored.height or 0,
            "file_size": stored.size,
        }

    def _media_json(self, stored: StoredFile) -> JSON:
        """The object a message carries for a stored non-photo file."""
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

    def _upload(self, value: Any, call: Call, part: str) -> tuple[bytes, str | None] | None:
        """Bytes of an uploaded file parameter: plain upload (multipart part named like the
        parameter, value absent), ``attach://name``, or ``file://`` (local mode). None means
        the value is a file_id (or URL) string."""
        if value is None and part in call.files:
            return call.files[part], call.file_names.get(part)
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name not in call.files:
                raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
            return call.files[name], call.file_names.get(name)
        if isinstance(value, str) and value.startswith("file://"):
            path = Path(unquote(urlsplit(value).path))
            return path.read_bytes(), path.name
        if not isinstance(value, str) or not value:
            raise ApiError.bad_request(f"there is no {part} in the request")
        return None

    def _existing(self, file_id: str, kind: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            # Includes http(s) URLs: the fake cannot fetch them.
            raise ApiError.bad_request("wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise ApiError.bad_request(f"can't use file of type {_kind_name(stored.kind)} as {_kind_name(kind)}")
        return stored

    def _resolve_photo(self, value: Any, call: Call, part: str) -> list[JSON]:
        upload = self._upload(value, call, part)
        if upload is None:
            stored = self._existing(value, "photo")
            return self._photo_sets.get(stored.file_id) or [self._photo_size(stored)]
        size = _image_size(upload[0])
        if size is None:
            raise ApiError.bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        if width + height > 10000 or max(width, height) > 20 * min(width, height):
            raise ApiError.bad_request("PHOTO_INVALID_DIMENSIONS")
        return self.add_photo(upload[0])

    def _resolve_file(self, value: Any, call: Call, part: str, kind: str) -> StoredFile:
        upload = self._upload(value, call, part)
        if upload is None:
            return self._existing(value, kind)
        data, file_name = upload
        mime = mimetypes.guess_type(file_name, strict=False)[0] if file_name else None
        return self.add_file(data, kind=kind, file_name=file_name, mime_type=mime or "application/octet-stream")

    def _media_content(self, kind: str, value: Any, call: Call, part: str) -> JSON:
        if kind == "photo":
            return {"photo": self._resolve_photo(value, call, part)}
        return {kind: self._media_json(self._resolve_file(value, call, part, kind))}

    def _send_media(self, call: Call, kind: str, right: str) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, right)
        caption = self._format(params, caption=True)
        markup = self._check_markup(params.get("reply_markup"), chat)
        content = self._media_content(kind, params.get(kind), call, kind)
        self._put_text(content, "caption", caption)
        if params.get("has_spoiler"):
            content["has_media_spoiler"] = True
        return self._new_message(chat, params, content, markup)

    # ---- Bot API methods ------------------------------------------------------------------
    # Each takes the Call and returns the "result" or raises ApiError.

    def _api_getMe(self, call: Call) -> JSON:
        return dict(self.bot_user)

    def _api_logOut(self, call: Call) -> bool:
        return True

    def _api_close(self, call: Call) -> bool:
        return True

    def _api_setWebhook(self, call: Call) -> bool:
        self.webhook_url = str(call.params.get("url", ""))
        return True

    def _api_deleteWebhook(self, call: Call) -> bool:
        self.webhook_url = ""
        return True

    def _api_getWebhookInfo(self, call: Call) -> JSON:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        return _canonical(params.get("scope") or {"type": "default"}), str(params.get("language_code") or "")

    def _api_setMyCommands(self, call: Call) -> bool:
        commands = call.params.get("commands") or []
        if len(commands) > 100:
            raise ApiError.bad_request("too many commands")  # limit per Bot API docs
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise ApiError.bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError.bad_request("command description must be 1-256 characters")
        self.commands[self._commands_key(call.params)] = commands
        return True

    def _api_getMyCommands(self, call: Call) -> list[JSON]:
        return self.commands.get(self._commands_key(call.params), [])

    def _api_deleteMyCommands(self, call: Call) -> bool:
        self.commands.pop(self._commands_key(call.params), None)
        return True

    def _api_setChatMenuButton(self, call: Call) -> bool:
        chat_id = call.params.get("chat_id")
        self.menu_buttons[int(chat_id) if chat_id is not None else None] = call.params.get("menu_button") or {
            "type": "default"
        }
        return True

    def _api_getChatMenuButton(self, call: Call) -> JSON:
        chat_id = call.params.get("chat_id")
        key = int(chat_id) if chat_id is not None else None
        return self.menu_buttons.get(key) or self.menu_buttons.get(None) or {"type": "commands"}

    def _bot_text(self, call: Call, method: str, field_name: str) -> bool:
        self.bot_texts[f"{method}:{call.params.get('language_code') or ''}"] = str(call.params.get(field_name) or "")
        return True

    def _api_setMyDescription(self, call: Call) -> bool:
        return self._bot_text(call, "description", "description")

    def _api_setMyShortDescription(self, call: Call) -> bool:
        return self._bot_text(call, "short_description", "short_description")

    def _api_setMyName(self, call: Call) -> bool:
        return self._bot_text(call, "name", "name")

    def _api_getMyDescription(self, call: Call) -> JSON:
        return {"description": self.bot_texts.get(f"description:{call.params.get('language_code') or ''}", "")}

    def _api_getMyShortDescription(self, call: Call) -> JSON:
        key = f"short_description:{call.params.get('language_code') or ''}"
        return {"short_description": self.bot_texts.get(key, "")}

    def _api_getMyName(self, call: Call) -> JSON:
        return {
            "name": self.bot_texts.get(f"name:{call.params.get('language_code') or ''}", self.bot_user["first_name"])
        }

    def _api_setMyDefaultAdministratorRights(self, call: Call) -> bool:
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
        return self._send_media(call, "photo", "photos")

    def _api_sendDocument(self, call: Call) -> JSON:
        return self._send_media(call, "document", "documents")

    def _api_sendVideo(self, call: Call) -> JSON:
        return self._send_media(call, "video", "videos")

    def _api_sendVoice(self, call: Call) -> JSON:
        return self._send_media(call, "voice", "voice notes")

    def _api_sendAudio(self, call: Call) -> JSON:
        return self._send_media(call, "audio", "audio files")

    def _api_sendAnimation(self, call: Call) -> JSON:
        return self._send_media(call, "animation", "animations")

    def _api_sendSticker(self, call: Call) -> JSON:
        return self._send_media(call, "sticker", "stickers")

    def _api_sendMediaGroup(self, call: Call) -> list[JSON]:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "photos")
        media = params.get("media") or []
        if not media:
            raise ApiError.bad_request("there are no media in the request")  # wording approximated
        if len(media) > MAX_MEDIA_GROUP:
            raise ApiError.bad_request("too many media in the album")  # wording approximated
        kinds = {item.get("type") for item in media}
        if "document" in kinds and kinds != {"document"}:
            raise ApiError.bad_request("document can't be mixed with other media types")
        prepared: list[JSON] = []
        for item in media:  # validate everything before sending anything, as Telegram does
            kind = item.get("type", "photo")
            caption = self._format(item, caption=True)
            content = self._media_content(kind, item.get("media"), call, "media")
            self._put_text(content, "caption", caption)
            prepared.append(content)
        group_id = str(next(self._media_group_counter) + 13000000000000000)
        results = []
        for content in prepared:
            content["media_group_id"] = group_id
            results.append(self._new_message(chat, params, content, None))
        return results

    def _api_sendLocation(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "locations")
        markup = self._check_markup(params.get("reply_markup"), chat)
        location: JSON = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                location[key] = params[key]
        return self._new_message(chat, params, {"location": location}, markup)

    def _api_sendVenue(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat, "locations")
        markup = self._check_markup(params.get("reply_markup"), chat)
        location = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        venue = {"location": location, "title": params.get("title", ""), "address": params.get("address", "")}
        return self._new_message(chat, params, {"venue": venue, "location": location}, markup)

    def _api_sendContact(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat)
        markup = self._check_markup(params.get("reply_markup"), chat)
        contact = {k: params[k] for k in ("phone_number", "first_name", "last_name", "vcard") if k in params}
        return self._new_message(chat, params, {"contact": contact}, markup)

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
        # No reply_markup in an edit removes the keyboard: a classic Telegram gotcha.
        self._set_markup(message, markup)
        message["edit_date"] = self.timestamp()
        return message

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
        self._set_markup(message, markup)
        message["edit_date"] = self.timestamp()
        return message

    def _api_editMessageReplyMarkup(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        markup = self._check_markup(params.get("reply_markup"), chat)
        if _canonical(markup) == _canonical(message.get("reply_markup")):
            raise ApiError(400, NOT_MODIFIED)
        self._set_markup(message, markup)
        message["edit_date"] = self.timestamp()
        return message

    def _api_editMessageMedia(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        media = params.get("media") or {}
        kind = media.get("type", "photo")
        if "text" in message:
            raise ApiError.bad_request("there is no media in the message to edit")
        content = self._media_content(kind, media.get("media"), call, "media")
        markup = self._check_markup(params.get("reply_markup"), chat)
        for key in ("photo", "document", "video", "audio", "animation"):
            message.pop(key, None)
        message.update(content)
        self._put_text(message, "caption", self._format(media, caption=True))
        self._set_markup(message, markup)
        message["edit_date"] = self.timestamp()
        return message

    def _api_editMessageLiveLocation(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        chat, message = self._editable(call)
        location = message.get("location")
        if not location or not location.get("live_period"):
            raise ApiError.bad_request("message can't be edited")
        new = {**location, "latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
        if new == location:
            raise ApiError(400, NOT_MODIFIED)
        message["location"] = new
        self._set_markup(message, self._check_markup(params.get("reply_markup"), chat))
        message["edit_date"] = self.timestamp()
        return message

    def _api_stopMessageLiveLocation(self, call: Call) -> JSON | bool:
        params = call.params
        if params.get("inline_message_id"):
            return True
        _, message = self._editable(call)
        location = message.get("location")
        if not location or not location.get("live_period"):
            raise ApiError.bad_request("message can't be edited")
        message["location"] = {k: v for k, v in location.items() if k != "live_period"}
        message["edit_date"] = self.timestamp()
        return message

    @staticmethod
    def _set_markup(message: JSON, markup: JSON | None) -> None:
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup

    def _delete(self, chat: ChatState, message_id: int) -> None:
        key = (chat.id, message_id)
        message = self.messages.get(key)
        if message is None:
            raise ApiError.bad_request("message to delete not found")
        from_bot = message.get("from", {}).get("id") == self.bot_id
        if chat.type != "private" and not from_bot and chat.bot_status not in ("administrator", "creator"):
            raise ApiError.bad_request("message can't be deleted")
        del self.messages[key]
        self.deleted.add(key)

    def _api_deleteMessage(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        self._delete(chat, int(call.params.get("message_id", 0)))
        return True

    def _api_deleteMessages(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        for message_id in call.params.get("message_ids") or []:
            with contextlib.suppress(ApiError):  # deleteMessages skips what it cannot delete
                self._delete(chat, int(message_id))
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

    def _api_getChat(self, call: Call) -> JSON:
        chat = self._chat(call.params)
        if chat.type != "private":
            self._check_reachable(chat)
        data = chat.json()
        data.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        return data

    def _status_of(self, chat: ChatState, user_id: int) -> str:
        if user_id == self.bot_id:
            return chat.bot_status
        if chat.type == "private":
            return "member" if user_id == chat.id else "left"
        return chat.member_status.get(user_id, "left")

    def _api_getChatMember(self, call: Call) -> JSON:
        chat = self._chat(call.params)
        if chat.type != "private":
            self._check_reachable(chat)
        user_id = int(call.params.get("user_id", 0))
        if user_id not in self.users:
            raise ApiError.bad_request("user not found")
        user = self._public_bot_user() if user_id == self.bot_id else self.users[user_id]
        return member_json(user, self._status_of(chat, user_id))

    def _api_getChatAdministrators(self, call: Call) -> list[JSON]:
        chat = self._chat(call.params)
        if chat.type == "private":
            raise ApiError.bad_request("there are no administrators in the private chat")
        self._check_reachable(chat)
        admins = [
            member_json(self.users[user_id], status)
            for user_id, status in chat.member_status.items()
            if status in ("creator", "administrator") and user_id in self.users
        ]
        if chat.bot_status == "administrator":
            admins.append(member_json(self._public_bot_user(), "administrator"))
        return admins

    def _api_getChatMemberCount(self, call: Call) -> int:
        chat = self._chat(call.params)
        if chat.type == "private":
            return 2
        self._check_reachable(chat)
        present = {"creator", "administrator", "member", "restricted"}
        return sum(1 for s in chat.member_status.values() if s in present) + (chat.bot_status in present)

    def _api_leaveChat(self, call: Call) -> bool:
        chat = self._chat(call.params)
        if chat.type == "private":
            raise ApiError.bad_request("chat member status can't be changed in private chats")
        self._check_reachable(chat)
        chat.bot_status = "left"
        return True

    def _api_pinChatMessage(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        if chat.type != "private" and chat.bot_status not in ("administrator", "creator"):
            raise ApiError.bad_request("not enough rights to manage pinned messages in the chat")
        if (chat.id, int(call.params.get("message_id", 0))) not in self.messages:
            raise ApiError.bad_request("message to pin not found")
        return True

    def _api_unpinChatMessage(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        return True

    def _api_unpinAllChatMessages(self, call: Call) -> bool:
        return self._api_unpinChatMessage(call)

    def _api_setMessageReaction(self, call: Call) -> bool:
        chat = self._chat(call.params)
        self._check_reachable(chat)
        return True

    def _source(self, call: Call, missing: str) -> tuple[ChatState, JSON]:
        source_chat = self._chat(call.params, "from_chat_id")
        source = self.messages.get((source_chat.id, int(call.params.get("message_id", 0))))
        if source is None:
            raise ApiError.bad_request(missing)
        return source_chat, source

    _CONTENT_KEYS = (
        "text",
        "entities",
        "caption",
        "caption_entities",
        "photo",
        "document",
        "video",
        "voice",
        "audio",
        "animation",
        "sticker",
        "location",
        "venue",
        "contact",
        "media_group_id",
    )

    def _api_forwardMessage(self, call: Call) -> JSON:
        chat = self._chat(call.params)
        self._check_can_send(chat)
        source_chat, source = self._source(call, "message to forward not found")
        content = {k: source[k] for k in self._CONTENT_KEYS if k in source and k != "media_group_id"}
        sender = source.get("from")
        if source_chat.type == "private" or sender:
            origin: JSON = {"type": "user", "date": source["date"], "sender_user": sender}
        else:
            origin = {"type": "chat", "date": source["date"], "sender_chat": source_chat.json()}
        content["forward_origin"] = origin
        return self._new_message(chat, {}, content, None)

    def _api_copyMessage(self, call: Call) -> JSON:
        params = call.params
        chat = self._chat(params)
        self._check_can_send(chat)
        _, source = self._source(call, "message to copy not found")
        content = {k: source[k] for k in self._CONTENT_KEYS if k in source and k != "media_group_id"}
        if "caption" in params:
            self._put_text(content, "caption", self._format(params, caption=True))
        markup = self._check_markup(params.get("reply_markup"), chat)
        message = self._new_message(chat, params, content, markup)
        return {"message_id": message["message_id"]}


# Memoized: tests and benchmarks send the same few images many times, and the fake's own
# Pillow work should not be what a benchmark measures.
@functools.lru_cache(maxsize=128)
def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a truncated file opens fine and only fails here, as on Telegram
            return image.size
    except Exception:
        return None


@functools.lru_cache(maxsize=128)
def _thumbnail(data: bytes, box: int) -> tuple[bytes, tuple[int, int]] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
            rgb.thumbnail((box, box))
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=80)  # re-encoding also drops EXIF, as Telegram does
            return out.getvalue(), rgb.size
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# The player API: users and groups that talk to the application
# --------------------------------------------------------------------------------------------


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
            if call.method in _SENDING_METHODS and call.ok:
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


def _utf16_slice(text: str, offset: int, length: int) -> str:
    raw = text.encode("utf-16-le")
    return raw[offset * 2 : (offset + length) * 2].decode("utf-16-le")


_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}")
_URL_RE = re.compile(r"https?://[^\s]+")


def detect_entities(text: str) -> list[JSON]:
    """Entities Telegram adds to plain user text: bot commands, @mentions, URLs."""
    found: list[JSON] = []
    for kind, pattern in (("bot_command", _COMMAND_RE), ("mention", _MENTION_RE), ("url", _URL_RE)):
        for match in pattern.finditer(text):
            found.append({"type": kind, "offset": utf16_len(text[: match.start()]), "length": utf16_len(match.group())})
    return _sorted_entities(found)


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

    def messages(self) -> list[Message]:
        """The bot's messages in this chat as they are now (edited, not deleted), oldest first."""
        return self.tg.messages(self.id)

    def last_message(self) -> Message | None:
        return self.tg.last_message(self.id)

    def texts(self) -> list[str]:
        """Texts/captions the bot sent here, in order, as sent."""
        return self.tg.texts(self.id)

    def last_text(self) -> str | None:
        return self.tg.api.last_text(self.id)

    def message(self, message_id: int) -> Message:
        return self.tg.message(self.id, message_id)

    def set_member(self, user: FakeUser, status: str) -> None:
        """Set ``user``'s status in this group (what getChatMember answers)."""
        self.tg.api.set_member_status(self.id, user.id, status)

    def add_admin(self, user: FakeUser) -> None:
        self.set_member(user, "administrator")

    def set_owner(self, user: FakeUser) -> None:
        self.set_member(user, "creator")

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

    def messages(self) -> list[Message]:
        return self.chat.messages()

    def last_message(self) -> Message | None:
        return self.chat.last_message()

    def texts(self) -> list[str]:
        return self.chat.texts()

    def last_text(self) -> str | None:
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
    ) -> Turn:
        """A compressed photo. The bytes are stored so getFile + download of the largest size
        returns them unchanged (smaller sizes are real thumbnails)."""
        if data is None:
            from tests.images import make_jpeg

            data = make_jpeg()
        content: JSON = {"photo": self.tg.api.add_photo(data)}
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
        content: JSON = {"document": self.tg.api._media_json(stored)}
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

    async def edit(self, message: MessageRef, text: str) -> Turn:
        """Edit one of the user's own text messages (an ``edited_message`` update)."""

        def change(stored: JSON) -> None:
            if "text" not in stored:
                raise AssertionError("that message has no text")
            stored["text"] = text
            stored.pop("entities", None)
            if found := detect_entities(text):
                stored["entities"] = found

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
        sticker = {**self.tg.api._media_json(stored), "emoji": emoji}
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
        video = {**self.tg.api._media_json(stored), "duration": duration}
        content: JSON = {"video": video}
        if caption:
            content["caption"] = caption
        return await self.tg._send_from(self, chat, content, None)

    async def send_voice(
        self, data: bytes = b"OggS\x00\x02fake-voice", duration: int = 2, *, chat: FakeChat | None = None
    ) -> Turn:
        stored = self.tg.api.add_file(data, kind="voice", mime_type="audio/ogg")
        voice = {**self.tg.api._media_json(stored), "duration": duration}
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

    async def join(self, group: FakeChat) -> Turn:
        """Join a group: ``new_chat_members`` service message (always delivered)."""
        self.tg.api.set_member_status(group.id, self.id, "member")
        return await self.tg._send_from(self, group, {"new_chat_members": [self.json]}, None)

    async def leave(self, group: FakeChat) -> Turn:
        self.tg.api.set_member_status(group.id, self.id, "left")
        return await self.tg._send_from(self, group, {"left_chat_member": self.json}, None)

    async def block_bot(self) -> Turn:
        """Block the bot: it gets a my_chat_member update (member -> kicked) and later sends
        to this user fail with 403."""
        self.tg.api.block(self.id)
        return await self.tg._my_chat_member(self.chat, self, "member", "kicked")

    async def unblock_bot(self) -> Turn:
        self.tg.api.unblock(self.id)
        self.chat.state.started = True
        return await self.tg._my_chat_member(self.chat, self, "kicked", "member")


class FakeTelegram:
    """Drives an initialized PTB ``Application`` wired to a :class:`FakeBotAPI`.

    ``raise_errors``: an exception that reaches the application's error handlers (i.e. a
    handler crashed) is re-raised from the ``send``/``press`` that caused it, with its original
    traceback; set False to collect them in ``tg.errors`` / ``turn.errors`` instead. The
    project's own error handlers still run (ours is registered first and only records).
    ``expected_errors``: exception types that are part of normal flow (a project's typed
    "a rule said no" errors that its error handler answers); they are recorded, not raised.

    ``settle_timeout``/``ignore_task``: see :meth:`deliver`. Pass ``ignore_task`` (e.g.
    ``lambda t: t.get_name().startswith("reminder-loop")``) for tasks an update legitimately
    leaves running forever.
    """

    def __init__(
        self,
        app: Application,  # type: ignore[type-arg]
        api: FakeBotAPI | None = None,
        *,
        raise_errors: bool = True,
        expected_errors: tuple[type[BaseException], ...] = (),
        settle_timeout: float = 5.0,
        ignore_task: Callable[[asyncio.Task[Any]], bool] | None = None,
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

    def message(self, chat_id: int, message_id: int) -> Message:
        """A message as it currently is, as a PTB object bound to the app's bot."""
        return Message.de_json(json.loads(json.dumps(self.api.message(chat_id, message_id))), self.app.bot)

    def bot_message_ids(self, chat_id: int) -> list[int]:
        """Ids of the bot's messages that still exist in ``chat_id``, ascending."""
        return sorted(
            mid
            for (cid, mid), msg in self.api.messages.items()
            if cid == chat_id and msg.get("from", {}).get("id") == self.api.bot_id
        )

    def messages(self, chat_id: int) -> list[Message]:
        return [self.message(chat_id, mid) for mid in self.bot_message_ids(chat_id)]

    def last_message(self, chat_id: int) -> Message | None:
        ids = self.bot_message_ids(chat_id)
        return self.message(chat_id, ids[-1]) if ids else None

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
        second = await self._send_from(by, group, {"new_chat_members": [self.api._public_bot_user()]}, None)
        return Turn.combine([first, second])

    async def bot_removed_from(self, group: FakeChat, *, by: FakeUser, status: str = "kicked") -> Turn:
        """The bot is removed (``"kicked"``) or leaves (``"left"``): my_chat_member only (the
        bot is no longer there to see the service message)."""
        return await self._my_chat_member(group, by, group.state.bot_status, status)

    async def bot_status_changed(self, group: FakeChat, status: str, *, by: FakeUser) -> Turn:
        """Any other change of the bot's status, e.g. promotion to ``"administrator"``."""
        return await self._my_chat_member(group, by, group.state.bot_status, status)

    # ---- delivery -------------------------------------------------------------------------

    async def deliver(self, payload: JSON, *, delivered: bool = True) -> Turn:
        """Feed one update (without ``update_id``; one is assigned) and wait for it to settle.

        Waiting: ``Application.process_update`` awaits blocking handlers itself. Work it starts
        in the background (``block=False`` handlers, ConversationHandler non-blocking states,
        ``application.create_task``, plain ``asyncio.create_task``) is found by diffing
        ``asyncio.all_tasks()`` before/after and awaited until no new tasks appear. This uses
        no PTB internals (``Application`` only tracks its tasks while *running*) and also
        catches tasks handlers start themselves. Tasks that outlive ``settle_timeout`` raise
        :class:`SettleTimeout`.
        """
        data = {"update_id": next(self._update_ids), **payload}
        turn = Turn(data=data, delivered=delivered)
        self.turns.append(turn)
        if not delivered:
            return turn
        update = Update.de_json(json.loads(json.dumps(data)), self.app.bot)
        bot = self.app.bot
        if isinstance(bot, ExtBot) and bot.callback_data_cache is not None:
            # What Updater/webhook do for arbitrary_callback_data before processing.
            bot.insert_callback_data(update)
        turn.update = update
        self._install_error_recorder()
        errors_before = len(self.errors)
        with self.api.recording() as calls, warnings.catch_warnings():
            # PTB warns that create_task() tasks of a non-running application are not awaited
            # for us; here they are (see _settle), so the warning would only be noise.
            warnings.filterwarnings("ignore", message="Tasks created via `Application.create_task`")
            before = asyncio.all_tasks()
            await self.app.process_update(update)
            await self._settle(before)
        turn.calls = calls
        turn.errors = self.errors[errors_before:]
        unexpected = [e for e in turn.errors if not isinstance(e, self.expected_errors)]
        if unexpected and self.raise_errors:
            error = unexpected[0]
            error.add_note(f"(raised by a handler while processing update {data['update_id']}: {_summary(data)})")
            raise error
        return turn

    async def settle(self) -> None:
        """Wait for background tasks started since ... now (for work started outside a turn,
        e.g. a job triggered by the test)."""
        await self._settle(set())

    async def _settle(self, before: set[asyncio.Task[Any]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout
        current = asyncio.current_task()
        quiet_rounds = 0
        while quiet_rounds < 3:  # a few empty rounds: done-callbacks may spawn more tasks
            await asyncio.sleep(0)
            pending = [
                t
                for t in asyncio.all_tasks()
                if t not in before
                and t is not current
                and not t.done()
                and not (self.ignore_task and self.ignore_task(t))
            ]
            if not pending:
                quiet_rounds += 1
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
        change(stored)
        stored["edit_date"] = self.api.timestamp()
        state = self.api.chats[key[0]]
        return await self.deliver({"edited_message": stored}, delivered=self._reaches_bot(state, stored))

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
            token = _utf16_slice(text, entity["offset"], entity["length"])
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
        bot = self.api._public_bot_user()
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
        button = next((b for b in flat if b.get("text") == label), None) or next(
            (b for b in flat if b.get("callback_data") == label), None
        )
        if button is None:
            raise AssertionError(f"no button {label!r} on message ({chat_id}, {message_id}); it has {buttons(message)}")
        if "callback_data" not in button:
            raise AssertionError(f"button {label!r} has no callback_data: {button}")
        return await self._press_data(user, chat_id, message_id, button["callback_data"])

    async def _press_data(self, user: FakeUser, chat_id: int, message_id: int, data: str) -> Call | None:
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
        return turn.answer


def _summary(data: JSON) -> str:
    for key in ("message", "edited_message", "callback_query", "my_chat_member"):
        if key in data:
            inner = data[key]
            detail = inner.get("text") or inner.get("data") or inner.get("caption") or ""
            return f"{key} {detail!r}"[:120]
    return "update"


__all__ = [
    "BOT_FIRST_NAME",
    "BOT_ID",
    "BOT_USERNAME",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "NOT_MODIFIED",
    "ApiError",
    "Call",
    "ChatState",
    "FakeBotAPI",
    "FakeChat",
    "FakeTelegram",
    "FakeUser",
    "Formatted",
    "SettleTimeout",
    "StoredFile",
    "Turn",
    "buttons",
    "detect_entities",
    "member_json",
    "parse_formatted",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "utf16_len",
]
