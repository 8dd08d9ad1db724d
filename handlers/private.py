"""Private messages, one way in: what the person owes the bot decides where each goes.

bot/awaiting.py reads, in one unit of work and under the person's lock, the three things a
private message can be for — a comment on a rating just given, the words and photos a case
action waits for, the report being written — and this handler hands the message to the one
that is waiting, in that order. For the report, the same unit of work makes the step's
change (handlers/report.py), and its reply is sent after the lock is released. Commands
pass through to their handlers (after ending a rating's comment window, as any other
message does). Edited messages never come here: a live location's ticks must not move a
report.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.awaiting import awaiting, may_comment, step
from handlers import casework, rate, report
from handlers.common import Ctx, off_loop, person_of, runtime, user_lock, user_turn
from handlers.media import has_image


async def on_private_message(update: Update, context: Ctx) -> None:
    message = update.effective_message
    person = await person_of(update, context)
    if message is None or person is None:
        return
    rt = runtime(context)
    if (message.text or "").startswith("/"):
        if not may_comment(rt, person):
            return  # nothing a command could be owed to: no lock, no lookup
        async with user_lock(context, person.user_id):
            owed = await off_loop(awaiting, rt, person, command=True)
            if owed.rating_comment is not None:
                await rate.take_comment(update, context, person)  # a command only ends the window
        return  # /report, /cancel… take their own turns
    change = report.change_for(update, context, person)
    wanted: report.PhotoWanted | None = None
    case_photo = False
    async with user_turn(context, person.user_id) as turn:
        # A text owed to a case action is added to it in the step's own unit of work.
        owed, outcome = await off_loop(step, rt, person, change, words=message.text)
        if owed.rating_comment is not None:
            if await rate.take_comment(update, context, person, turn):
                raise ApplicationHandlerStop
            owed, outcome = await off_loop(step, rt, person, change, words=message.text)  # the window is closed now
        if owed.case_input is not None:
            if not has_image(message):
                await casework.took_input(update, context, person, turn, owed.case_input)
                raise ApplicationHandlerStop
            case_photo = True  # downloaded after this turn, holding nothing
        else:
            assert outcome is not None
            await report.answer(update, context, person, turn, outcome)
            if isinstance(outcome, report.PhotoWanted):
                wanted = outcome
    if case_photo:
        await casework.take_photo(update, context, person)
    elif wanted is not None:
        await report.take_photo(update, context, person, wanted)
    raise ApplicationHandlerStop
