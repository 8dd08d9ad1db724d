"""The error handler: log first, then a polite answer in the user's language, never a traceback."""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError
from telegram import Update
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError

from bot.errors import DomainError
from bot.i18n import N_, t, t_plain
from handlers.common import Ctx, chat_language, esc, person_of, reply

log = logging.getLogger(__name__)


async def on_error(update: object, context: Ctx) -> None:
    error = context.error
    busy = isinstance(error, OperationalError)  # SQLite locked past its wait, a dropped connection
    if not isinstance(update, Update) and isinstance(error, NetworkError):
        log.warning("Bot API unreachable for now (%s); PTB tries again", error)  # polling: no traceback
        return
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        # The Bot API failed us even after retries: whatever the update changed is committed
        # (and what matters is in the outbox); "something went wrong" would be untrue.
        log.warning("Bot API trouble while answering an update: %s", error)
        return
    if busy:
        # Nothing was written (the unit of work rolled back): the step is kept, try again.
        log.warning("database busy while handling an update: %s", str(error).splitlines()[0][:200])
    elif not isinstance(error, DomainError):
        log.error("error while handling an update", exc_info=error)
    if not isinstance(update, Update):
        return
    try:
        person = await person_of(update, context)
        if update.callback_query is not None and person is not None:
            lang = person.language  # a pop-up is read by the one who pressed, wherever the button is
        else:
            lang = await chat_language(update, context, person)
    except Exception:  # the database may be what failed
        log.exception("could not tell who the update came from")
        lang = context.application.bot_data["rt"].settings.default_language
    # A domain error's params are raw values (codes, names people typed).
    key, params = (error.key, error.params) if isinstance(error, DomainError) else (N_("error.internal"), {})
    if busy:
        key = N_("error.busy")
    try:
        if update.callback_query is not None:
            # A button's pop-up shows plain text only: no tags, at most 200 characters.
            await update.callback_query.answer(t_plain(lang, key, **params), show_alert=True)
        elif update.effective_message is not None:
            escaped = {name: esc(value) if isinstance(value, str) else value for name, value in params.items()}
            await reply(update, t(lang, key, **escaped))
    except Forbidden:
        log.info("could not answer: the bot may not post in chat %s", update.effective_chat)
    except TelegramError:
        log.exception("could not send the error answer")
