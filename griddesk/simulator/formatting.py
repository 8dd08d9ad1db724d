"""What Telegram does with message text: HTML parse mode to plain text + entities, trimming,
UTF-16 lengths, and the entities it adds to users' plain text.

Only HTML is modelled: it is the one parse mode GridDesk uses. Any other ``parse_mode`` is
refused loudly, so a change to MarkdownV2 cannot slip through tests unparsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from griddesk.simulator.model import JSON, ApiError


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (entity offsets and limits are in UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


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
        elif mode == "":
            formatted = Formatted(text, _sorted_entities(entities or []))
        else:
            # Telegram knows Markdown/MarkdownV2; this fake does not model them (see above).
            raise ApiError.bad_request(f"parse_mode {parse_mode!r} is not modelled by the fake")
    except EntityParseError as exc:
        raise ApiError.bad_request(f"can't parse entities: {exc}") from None
    return _trim(formatted)


def utf16_slice(text: str, offset: int, length: int) -> str:
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
