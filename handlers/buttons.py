"""Every inline button press enters here: parse the versioned data, then hand it on.

Forged, stale or foreign data never reaches a feature: it gets a clear answer instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from telegram import Update

from bot.callbacks import BadCallback, Callback, parse
from bot.i18n import t
from handlers.common import Ctx, chat_language, person_of

ButtonHandler = Callable[[Update, Ctx, Callback], Awaitable[None]]

_ROUTES: dict[str, ButtonHandler] = {}


def route(action: str, handler: ButtonHandler) -> None:
    _ROUTES[action] = handler


async def on_button(update: Update, context: Ctx) -> None:
    query = update.callback_query
    if query is None:
        return
    try:
        callback = parse(query.data)
        handler = _ROUTES[callback.action]
    except (BadCallback, KeyError):
        await answer_stale(update, context)
        return
    try:
        await handler(update, context, callback)
    except BadCallback:
        await answer_stale(update, context)


async def answer_stale(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    lang = await chat_language(update, context, person)
    assert update.callback_query is not None
    await update.callback_query.answer(t(lang, "button.stale"), show_alert=True)
