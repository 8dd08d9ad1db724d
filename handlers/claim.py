"""Claim and release buttons on the team group's case card."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.callbacks import Assign, Claim, Release
from bot.cases import claim as claim_service
from bot.i18n import t, t_plain
from handlers.common import Ctx, chat_language, command_args, esc, off_loop, person_of, pressed, reply, runtime
from handlers.outbox_sender import flush


async def on_claim(update: Update, context: Ctx, button: Claim) -> None:
    query, person = await pressed(update, context)
    result = await off_loop(claim_service.claim, runtime(context), person=person, case_id=button.case_id)
    await query.answer(t_plain(person.language, "claim.done", code=result.code))
    await flush(context.application)


async def on_release(update: Update, context: Ctx, button: Release) -> None:
    query, person = await pressed(update, context)
    result = await off_loop(claim_service.release, runtime(context), person=person, case_id=button.case_id)
    await query.answer(t_plain(person.language, "claim.released", code=result.code))
    await flush(context.application)


async def assign_command(update: Update, context: Ctx) -> None:
    """/assign CODE (dispatchers): choose who of the case's team should own it."""
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    args = command_args(context)
    if len(args) != 1:
        await reply(update, t(lang, "claim.assign_usage"))
        return
    case_id, code, members = await off_loop(claim_service.team_members, runtime(context), person=person, code=args[0])
    if not members:
        await reply(update, t(lang, "claim.no_members", code=esc(code)))
        return
    rows = [[InlineKeyboardButton(m.name, callback_data=Assign(case_id, m.user_id).pack())] for m in members[:30]]
    await reply(update, t(lang, "claim.assign_choose", code=esc(code)), markup=InlineKeyboardMarkup(rows))


async def on_assign(update: Update, context: Ctx, button: Assign) -> None:
    query, person = await pressed(update, context)
    result = await off_loop(
        claim_service.reassign,
        runtime(context),
        person=person,
        case_id=button.case_id,
        user_id=button.user_id,
    )
    lang = await chat_language(update, context, person)
    text = t(lang, "claim.assigned", code=esc(result.code), owner=esc(result.owner_name))
    await query.answer()
    await query.edit_message_text(text)
    await flush(context.application)
