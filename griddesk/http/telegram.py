"""Telegram's webhook posts, taken in by one function: stored in the inbox before the post
is answered, then processed like a polled update (griddesk/inbox.py)."""

from __future__ import annotations

from typing import Any

from telegram.ext import Application

from griddesk import inbox


async def accept_update(application: Application, payload: dict[str, Any]) -> None:
    """Store one update Telegram posted (idempotent by update_id) and schedule its handling:
    a crash after the 200 loses nothing."""
    await inbox.accept(application, payload)
