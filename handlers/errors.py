"""The error handler: log first, then a polite answer in the user's language, never a traceback."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import Forbidden, TelegramError

from bot.errors import DomainError
from bot.i18n import t
from handlers.common import Ctx, chat_language, person_of, reply

log = logging.getLogger(__name__)


async def on_error(update: object, context: Ctx) -> None:
    error = context.error
    if not isinstance(error, DomainError):
        log.error("error while handling an update", exc_info=error)
    if not isinstance(update, Update):
        return
    try:
        person = await person_of(update, context)
        lang = await chat_language(update, context, person)
    except Exception:  # the database may be what failed
        log.exception("could not tell who the update came from")
        lang = context.application.bot_data["rt"].settings.default_language
    if isinstance(error, DomainError):
        text = t(lang, error.key, **error.params)
    else:
        text = t(lang, "error.internal")
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text[:200], show_alert=True)
        elif update.effective_message is not None:
            await reply(update, text)
    except Forbidden:
        log.info("could not answer: the bot may not post in chat %s", update.effective_chat)
    except TelegramError:
        log.exception("could not send the error answer")
