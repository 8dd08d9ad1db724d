"""Working a case from its card: resolve, note, whistle, more time, return; verify; report in.

Pressing an action on a group card opens a short exchange in private chat (the words and
photos the action needs), ended with Done. The pending input lives in the database.
"""

from __future__ import annotations

import logging

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.callbacks import (
    BadCallback,
    Confirm,
    Extension,
    InputCancel,
    InputDone,
    InputHours,
    InputMore,
    InputTeam,
    NotFixed,
    ReportIn,
    Work,
)
from bot.cases import casework
from bot.cases.deadlines import MORE_TIME_CHOICES
from bot.cases.timewords import more_time_words, when_words
from bot.i18n import bilingual, t, t_plain
from bot.intake.photos import PhotoError
from bot.people.roles import Person
from bot.runtime import Runtime
from handlers.common import Ctx, Turn, chat_language, clip, esc, off_loop, person_of, pressed, runtime, user_turn
from handlers.media import receive_photo
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)


def _prompt(rt: Runtime, lang: str, p: casework.Pending) -> tuple[str, InlineKeyboardMarkup]:
    lines = [t(lang, f"work.ask_{p.action}", code=esc(p.code))]
    status = [t(lang, "work.status_text", chars=len(p.text)) if p.text else t(lang, "work.status_no_text")]
    if p.action in (casework.NOTE, casework.RESOLVE, casework.NOT_FIXED):
        status.append(t(lang, "work.status_photos", count=p.photos))
    rows: list[list[InlineKeyboardButton]] = []
    if p.action == casework.ESCALATE:
        for unit_id, zh, en in casework.departments(rt):
            mark = "✅ " if unit_id in p.departments else ""
            rows.append(
                [InlineKeyboardButton(mark + (bilingual(lang, zh, en)), callback_data=InputTeam(p.id, unit_id).pack())]
            )
    if p.action == casework.EXTEND:  # more time in the unit of the case's limit
        rows.append(
            [
                InlineKeyboardButton(
                    ("✅ " if p.more == n else "") + "+" + more_time_words(lang, n, p.unit),
                    callback_data=InputMore(p.id, n, p.unit).pack(),
                )
                for n in MORE_TIME_CHOICES.get(p.unit, ())
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(t(lang, "work.btn_done"), callback_data=InputDone(p.id).pack()),
            InlineKeyboardButton(t(lang, "work.btn_cancel"), callback_data=InputCancel(p.id).pack()),
        ]
    )
    return "\n".join(lines) + "\n\n" + " · ".join(status), InlineKeyboardMarkup(rows)


async def _dm_prompt(context: Ctx, person: Person, p: casework.Pending) -> None:
    text, markup = _prompt(runtime(context), person.language, p)
    await context.bot.send_message(person.telegram_id, text, reply_markup=markup)


async def on_work_button(update: Update, context: Ctx, button: Work | NotFixed) -> None:
    """A card button that needs input (a work action, or the resident's "not fixed")."""
    query, person = await pressed(update, context)
    if isinstance(button, NotFixed):
        action, case_id = casework.NOT_FIXED, button.case_id
    else:
        action, case_id = button.action, button.case_id
        if action not in casework.INPUT_ACTIONS or action == casework.NOT_FIXED:
            raise BadCallback(button)
    rt = runtime(context)
    pending = await off_loop(casework.start_input, rt, person=person, case_id=case_id, action=action)
    try:
        await _dm_prompt(context, person, pending)
    except Forbidden:
        await off_loop(casework.cancel_input, rt, user_id=person.user_id)
        await query.answer(t_plain(person.language, "work.open_private", bot=context.bot.username), show_alert=True)
        return
    in_private = update.effective_chat is not None and update.effective_chat.id == person.telegram_id
    await query.answer(None if in_private else t_plain(person.language, "work.see_private"))


async def on_input_button(
    update: Update, context: Ctx, button: InputDone | InputCancel | InputTeam | InputMore | InputHours
) -> None:
    """Buttons of the private exchange: done, cancel, department toggles, more time."""
    query, person = await pressed(update, context)
    rt = runtime(context)
    lang = person.language
    if isinstance(button, InputDone):  # finish reads what is pending itself: one unit of work
        try:
            done = await off_loop(casework.finish, rt, person=person, pending_id=button.pending_id)
        except casework.NothingPending:
            raise BadCallback(button) from None
        await query.answer()
        await query.edit_message_text(t(lang, f"work.done_{done.action}", code=esc(done.code)))
        await flush(context.application)
        return
    current = await off_loop(casework.pending, rt, person.user_id)
    if current is None or current.id != button.pending_id:
        raise BadCallback(button)
    if isinstance(button, InputCancel):
        await off_loop(casework.cancel_input, rt, user_id=person.user_id)
        await query.answer()
        await query.edit_message_text(t(lang, "work.cancelled", code=esc(current.code)))
        return
    if isinstance(button, InputHours):  # a prompt from before more time had units: offer the new choices
        await query.answer(t_plain(lang, "work.more_time_choose_again"))
        await _show_prompt(query, *_prompt(rt, lang, current))
        return
    if isinstance(button, InputTeam | InputMore):
        if isinstance(button, InputTeam):
            updated = await off_loop(casework.toggle_department, rt, user_id=person.user_id, unit_id=button.unit_id)
        else:
            if button.unit != current.unit:  # the exchange's unit is fixed when it opens
                raise BadCallback(button)
            updated = await off_loop(
                casework.set_more_time, rt, user_id=person.user_id, amount=button.amount, unit=button.unit
            )
        await query.answer()
        await _show_prompt(query, *_prompt(rt, lang, updated))
        return
    raise BadCallback(button)


async def _show_prompt(query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    """The prompt as it now stands; a second press on the same choice changes nothing."""
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise


async def took_input(update: Update, context: Ctx, person: Person, turn: Turn, current: casework.Pending) -> None:
    """A message in private chat while a case action waits for words (a resolve's result, a
    return's reason): its words were added in the message's unit of work (bot/awaiting.py
    step); the prompt, as it now stands, is sent after the lock is released. Anything but
    words or a photo (which comes through :func:`take_photo`) is not what it waits for."""
    message = update.effective_message
    assert message is not None
    lang = person.language
    if message.text is None:
        await turn.replying()
        await message.reply_text(t(lang, "work.wrong_input"))
        return
    if not message.text.strip():
        return
    await turn.replying()
    text, markup = _prompt(runtime(context), lang, current)
    await message.reply_text(text, reply_markup=markup)


async def take_photo(update: Update, context: Ctx, person: Person) -> None:
    """A photo for a waiting case action: downloaded holding nothing, then added in a turn of
    its own (the action may have been finished meanwhile: then nothing waits for it)."""
    message = update.effective_message
    assert message is not None
    rt = runtime(context)
    lang = person.language
    try:
        photo = (await receive_photo(context, message)).photo
    except PhotoError as exc:
        await message.reply_text(t(lang, exc.key, **exc.params))
        return
    async with user_turn(context, person.user_id) as turn:
        current = await off_loop(
            casework.add_input, rt, user_id=person.user_id, photo=photo, text=message.caption or None
        )
        await turn.replying()
        text, markup = _prompt(rt, lang, current)
        await message.reply_text(text, reply_markup=markup)


async def on_confirm(update: Update, context: Ctx, button: Confirm) -> None:
    query, person = await pressed(update, context)
    done = await off_loop(casework.confirm, runtime(context), person=person, case_id=button.case_id)
    await query.answer(t_plain(person.language, "work.done_confirm", code=done.code))
    if update.effective_chat is not None and update.effective_chat.id == person.telegram_id:
        try:
            await query.edit_message_reply_markup(None)
        except TelegramError:
            pass
    await flush(context.application)


async def on_report_in(update: Update, context: Ctx, button: ReportIn) -> None:
    query, person = await pressed(update, context)
    done = await off_loop(casework.report_in, runtime(context), person=person, whistle_id=button.whistle_id)
    await query.answer(t_plain(person.language, "work.done_report_in", code=done.code))
    await flush(context.application)


async def on_extension_decision(update: Update, context: Ctx, button: Extension) -> None:
    query, person = await pressed(update, context)
    approve = button.approved
    done = await off_loop(
        casework.decide_extension, runtime(context), person=person, request_id=button.request_id, approve=approve
    )
    lang = await chat_language(update, context, person)
    rt = runtime(context)
    due = when_words(lang, done.extra["due_at"], rt.clock.now(), rt.settings.tz)  # as the cards say it
    text = t(lang, f"work.extension_decided_{done.extra['decision']}", code=esc(done.code), name=esc(person.name))
    text += t(lang, "work.extension_due_now", due=esc(due))  # English brings its own space; Chinese none
    # the request (who asked, how many hours, why) stays visible above the decision
    request = query.message.text_html if isinstance(query.message, Message) and query.message.text else ""
    await query.answer()
    await query.edit_message_text(clip(f"{request}\n\n{text}" if request else text))
    await flush(context.application)


async def on_department_reply(update: Update, context: Ctx) -> None:
    """A reply to a case card in a department's group reaches the case's owner."""
    message = update.effective_message
    if message is None or message.reply_to_message is None or not message.text:
        return
    person = await person_of(update, context)
    if person is None:
        return
    rt = runtime(context)
    case_id = await off_loop(
        casework.case_of_card, rt, chat_id=message.chat_id, message_id=message.reply_to_message.message_id
    )
    if case_id is None:
        return
    done = await off_loop(
        casework.department_reply, rt, person=person, case_id=case_id, unit_chat_id=message.chat_id, text=message.text
    )
    if done is not None:
        await flush(context.application)
