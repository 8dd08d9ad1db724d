"""Working a case from its card: resolve, note, whistle, more time, return; verify; report in.

Pressing an action on a group card opens a short exchange in private chat (the words and
photos the action needs), ended with Done. The pending input lives in the database.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.callbacks import BadCallback, Callback, cb
from bot.cases import casework
from bot.i18n import bilingual, t
from bot.intake.photos import PhotoError
from bot.people.roles import Person
from handlers.common import Ctx, chat_language, esc, off_loop, person_of, pressed, runtime
from handlers.media import has_image, receive_photo
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)


def _prompt(rt, lang: str, p: casework.Pending) -> tuple[str, InlineKeyboardMarkup]:  # type: ignore[no-untyped-def]
    lines = [t(lang, f"work.ask_{p.action}", code=esc(p.code))]
    status = [t(lang, "work.status_text", chars=len(p.text)) if p.text else t(lang, "work.status_no_text")]
    if p.action in (casework.NOTE, casework.RESOLVE, casework.NOT_FIXED):
        status.append(t(lang, "work.status_photos", count=p.photos))
    rows: list[list[InlineKeyboardButton]] = []
    if p.action == casework.ESCALATE:
        for unit_id, zh, en in casework.departments(rt):
            mark = "✅ " if unit_id in p.departments else ""
            rows.append([InlineKeyboardButton(mark + (bilingual(lang, zh, en)), callback_data=cb("at", p.id, unit_id))])
    if p.action == casework.EXTEND:
        rows.append(
            [
                InlineKeyboardButton(
                    ("✅ " if p.hours == h else "") + t(lang, "work.hours", hours=h), callback_data=cb("ah", p.id, h)
                )
                for h in casework.EXTENSION_CHOICES_H
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(t(lang, "work.btn_done"), callback_data=cb("ad", p.id)),
            InlineKeyboardButton(t(lang, "work.btn_cancel"), callback_data=cb("ac", p.id)),
        ]
    )
    return "\n".join(lines) + "\n\n" + " · ".join(status), InlineKeyboardMarkup(rows)


async def _dm_prompt(context: Ctx, person: Person, p: casework.Pending) -> None:
    text, markup = await off_loop(_prompt, runtime(context), person.language, p)
    await context.bot.send_message(person.telegram_id, text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def on_work_button(update: Update, context: Ctx, callback: Callback) -> None:
    """A card button that needs input (wk:<action>:<case>, or vn:<case> for "not fixed")."""
    query, person = await pressed(update, context)
    if callback.action == "vn":
        action, case_id = casework.NOT_FIXED, callback.int_arg(0)
    else:
        action, case_id = callback.arg(0), callback.int_arg(1)
        if action not in casework.INPUT_ACTIONS or action == casework.NOT_FIXED:
            raise BadCallback(callback)
    rt = runtime(context)
    pending = await off_loop(casework.start_input, rt, person=person, case_id=case_id, action=action)
    lang = await chat_language(update, context, person)
    try:
        await _dm_prompt(context, person, pending)
    except Forbidden:
        await off_loop(casework.cancel_input, rt, user_id=person.user_id)
        await query.answer(t(lang, "work.open_private", bot=context.bot.username), show_alert=True)
        return
    in_private = update.effective_chat is not None and update.effective_chat.id == person.telegram_id
    await query.answer(None if in_private else t(lang, "work.see_private"))


async def on_input_button(update: Update, context: Ctx, callback: Callback) -> None:
    """Buttons of the private exchange: done, cancel, department toggles, hours."""
    query, person = await pressed(update, context)
    rt = runtime(context)
    lang = person.language
    current = await off_loop(casework.pending, rt, person.user_id)
    if current is None or current.id != callback.int_arg(0):
        raise BadCallback(callback)
    if callback.action == "ac":
        await off_loop(casework.cancel_input, rt, user_id=person.user_id)
        await query.answer()
        await query.edit_message_text(t(lang, "work.cancelled", code=esc(current.code)), parse_mode=ParseMode.HTML)
        return
    if callback.action in ("at", "ah"):
        if callback.action == "at":
            updated = await off_loop(
                casework.toggle_department, rt, user_id=person.user_id, unit_id=callback.int_arg(1)
            )
        else:
            updated = await off_loop(casework.set_hours, rt, user_id=person.user_id, hours=callback.int_arg(1))
        text, markup = await off_loop(_prompt, rt, lang, updated)
        await query.answer()
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
        return
    done = await off_loop(casework.finish, rt, person=person, pending_id=current.id)
    await query.answer()
    await query.edit_message_text(t(lang, f"work.done_{done.action}", code=esc(done.code)), parse_mode=ParseMode.HTML)
    await flush(context.application)


async def on_private_input(update: Update, context: Ctx) -> None:
    """Text and photos in private chat go to a pending case action, if there is one;
    otherwise they fall through to the report conversation."""
    message = update.effective_message
    person = await person_of(update, context)
    if message is None or person is None:
        return
    rt = runtime(context)
    current = await off_loop(casework.pending, rt, person.user_id)
    if current is None or (message.text or "").startswith("/"):
        return
    lang = person.language
    if has_image(message):
        try:
            photo = (await receive_photo(context, message)).photo
        except PhotoError as exc:
            await message.reply_text(t(lang, exc.key, **exc.params), parse_mode=ParseMode.HTML)
            raise ApplicationHandlerStop from None
        current = await off_loop(casework.add_photo, rt, user_id=person.user_id, photo=photo)
        if message.caption:
            current = await off_loop(casework.add_text, rt, user_id=person.user_id, text=message.caption)
    elif message.text is not None:
        if not message.text.strip():
            raise ApplicationHandlerStop
        current = await off_loop(casework.add_text, rt, user_id=person.user_id, text=message.text)
    else:
        await message.reply_text(t(lang, "work.wrong_input"), parse_mode=ParseMode.HTML)
        raise ApplicationHandlerStop
    text, markup = await off_loop(_prompt, rt, lang, current)
    await message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
    raise ApplicationHandlerStop


async def on_confirm(update: Update, context: Ctx, callback: Callback) -> None:
    query, person = await pressed(update, context)
    done = await off_loop(casework.confirm, runtime(context), person=person, case_id=callback.int_arg(0))
    lang = await chat_language(update, context, person)
    await query.answer(t(lang, "work.done_confirm", code=done.code))
    if update.effective_chat is not None and update.effective_chat.id == person.telegram_id:
        try:
            await query.edit_message_reply_markup(None)
        except TelegramError:
            pass
    await flush(context.application)


async def on_report_in(update: Update, context: Ctx, callback: Callback) -> None:
    query, person = await pressed(update, context)
    done = await off_loop(casework.report_in, runtime(context), person=person, whistle_id=callback.int_arg(0))
    lang = await chat_language(update, context, person)
    await query.answer(t(lang, "work.done_report_in", code=done.code))
    await flush(context.application)


async def on_extension_decision(update: Update, context: Ctx, callback: Callback) -> None:
    query, person = await pressed(update, context)
    approve = callback.action == "xa"
    done = await off_loop(
        casework.decide_extension, runtime(context), person=person, request_id=callback.int_arg(0), approve=approve
    )
    lang = await chat_language(update, context, person)
    text = t(lang, f"work.extension_decided_{done.extra['decision']}", code=esc(done.code), name=esc(person.name))
    await query.answer()
    await query.edit_message_text(text, parse_mode=ParseMode.HTML)
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
