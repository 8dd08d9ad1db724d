"""Telegram's length limits count UTF-16 code units (an emoji is two), not characters."""

from __future__ import annotations

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf16_prefix(text: str, units: int) -> str:
    """The longest start of `text` within `units` UTF-16 code units (never half an emoji)."""
    return text.encode("utf-16-le")[: max(units, 0) * 2].decode("utf-16-le", errors="ignore")


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` cut to fit `limit`, with an ellipsis when something was cut."""
    return text if utf16_len(text) <= limit else utf16_prefix(text, limit - 1) + "…"
