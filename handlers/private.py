"""Private messages, one way in: what the person owes the bot decides where each goes.

bot/awaiting.py reads, in one unit of work and under the person's lock, the three things a
private message can be for — a comment on a rating just given, the words and photos a case
action waits for, the report being written — and this handler hands the message to the one
that is waiting, in that order. Commands pass through to their handlers (after ending a
rating's comment window, as any other message does). Edited messages never come here: a
live location's ticks must not move a report.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.awaiting import awaiting, may_comment
from handlers import casework, rate, report
from handlers.common import Ctx, off_loop, person_of, runtime, user_lock


async def on_private_message(update: Update, context: Ctx) -> None:
    message = update.effective_message
    person = await person_of(update, context)
    if message is None or person is None:
        return
    command = (message.text or "").startswith("/")
    if command and not may_comment(person):
        return  # nothing a command could be owed to: no lock, no lookup
    async with user_lock(context, person.user_id):
        owed = await off_loop(awaiting, runtime(context), person, command=command)
        if owed.rating_comment is not None and await rate.take_comment(update, context, person):
            raise ApplicationHandlerStop
        if command:
            return  # /report, /cancel… take the lock themselves
        if owed.case_input is not None:
            await casework.take_input(update, context, person)
        else:
            await report.take_message(update, context, person, owed.draft)
    raise ApplicationHandlerStop
