"""The PTB Application, counting and timing each update it processes (bot/metrics.py)."""

from __future__ import annotations

import time

from telegram import Update
from telegram.ext import Application

from bot.metrics import HANDLER_SECONDS, UPDATES


def update_kind(update: object) -> str:
    """`message`, `callback_query`, `my_chat_member`…: the field an update carries."""
    if not isinstance(update, Update):
        return "other"
    for kind in Update.ALL_TYPES:
        if getattr(update, kind, None) is not None:
            return str(kind)
    return "unknown"


class MeteredApplication(Application):
    async def process_update(self, update: object) -> None:
        kind = update_kind(update)
        started = time.perf_counter()
        try:
            await super().process_update(update)
        finally:
            UPDATES.labels(kind).inc()
            HANDLER_SECONDS.labels(kind).observe(time.perf_counter() - started)
