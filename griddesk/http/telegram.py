"""Telegram's webhook posts, taken in by one function (the only place that decides where
an accepted update goes: today PTB's update queue; a durable inbox can replace it here)."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application


async def accept_update(application: Application, payload: dict[str, Any]) -> None:
    """Hand one update Telegram posted to the application (processed like a polled one)."""
    update = Update.de_json(payload, application.bot)
    await application.update_queue.put(update)
