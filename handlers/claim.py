"""Claim and release buttons on the team group's case card."""

from __future__ import annotations

from telegram import Update

from bot import claim as claim_service
from bot.callbacks import Callback
from bot.i18n import t
from handlers.common import Ctx, chat_language, off_loop, person_of, runtime
from handlers.outbox_sender import flush


async def on_claim(update: Update, context: Ctx, callback: Callback) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    assert person is not None
    result = await off_loop(claim_service.claim, runtime(context), person=person, case_id=callback.int_arg(0))
    lang = await chat_language(update, context, person)
    await query.answer(t(lang, "claim.done", code=result.code))
    await flush(context.application)


async def on_release(update: Update, context: Ctx, callback: Callback) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    assert person is not None
    result = await off_loop(claim_service.release, runtime(context), person=person, case_id=callback.int_arg(0))
    lang = await chat_language(update, context, person)
    await query.answer(t(lang, "claim.released", code=result.code))
    await flush(context.application)
