"""Every inline button press enters here: parse the versioned data, then hand it on.

Forged, stale or foreign data never reaches a feature: it gets a clear answer instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram import Update

from bot.callbacks import BadCallback, Button, parse
from bot.cases.lifecycle import CaseNotFound
from bot.i18n import t_plain
from handlers.common import Ctx, person_of, runtime

B = TypeVar("B", bound=Button)

_ROUTES: dict[type[Button], Callable[[Update, Ctx, Any], Awaitable[None]]] = {}


def route(kind: type[B], handler: Callable[[Update, Ctx, B], Awaitable[None]]) -> None:
    """Presses of this kind of button go to `handler`, which gets the parsed button."""
    _ROUTES[kind] = handler


async def on_button(update: Update, context: Ctx) -> None:
    query = update.callback_query
    if query is None:
        return
    try:
        callback = parse(query.data)
        handler = _ROUTES[type(callback)]
    except (BadCallback, KeyError):
        await answer_stale(update, context)
        return
    try:
        await handler(update, context, callback)
    except (BadCallback, CaseNotFound):
        # A case the presser has no relation to answers like a forged button: nothing about it.
        await answer_stale(update, context)


async def answer_stale(update: Update, context: Ctx) -> None:
    # A pop-up is seen by the presser alone: their language, not the group's.
    person = await person_of(update, context)
    lang = person.language if person else runtime(context).settings.default_language
    assert update.callback_query is not None
    await update.callback_query.answer(t_plain(lang, "button.stale"), show_alert=True)
