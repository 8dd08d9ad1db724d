"""The question to the reporter who verifies a fix: one photo (before and after side by
side), the handler's result note, the departments' replies, and the two buttons."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import Application

from bot.callbacks import Confirm, NotFixed
from bot.cases.cards import CaseView
from bot.cases.verifyview import before_after_jpeg, verify_details
from bot.i18n import t, t_plain
from bot.intake.photos import absolute
from bot.runtime import Runtime
from bot.textlimits import CAPTION_LIMIT, clip
from handlers.common import off_loop


def verify_text(lang: str, view: CaseView, rt: Runtime, *, photo: bool) -> str:
    details = verify_details(rt, view.id)
    lines = []
    if photo:
        # the red bar over the before photo, the green one over the after photo, as drawn
        lines.append(f"🟥 {t(lang, 'work.photo_before')} ｜ 🟩 {t(lang, 'work.photo_after')}")
    lines.append(
        t(lang, "work.verify_request", code=html.escape(view.code), category=html.escape(view.category.get(lang)))
    )
    if details.rounds > 1:
        lines.append(t(lang, "work.verify_round", count=details.rounds))
    if details.note:
        lines.append(t(lang, "work.verify_note", note=html.escape(details.note)))
    for department, text in details.replies:
        lines.append(t(lang, "work.verify_reply", department=html.escape(department.get(lang)), text=html.escape(text)))
    return "\n".join(lines)


def _composite(rt: Runtime, lang: str, before: str, after: str) -> bytes:
    root = rt.settings.media_dir
    labels = (t_plain(lang, "work.photo_before"), t_plain(lang, "work.photo_after"))
    return before_after_jpeg(absolute(root, before).read_bytes(), absolute(root, after).read_bytes(), labels=labels)


async def send_verify_request(app: Application, rt: Runtime, chat_id: int, lang: str, view: CaseView) -> int:
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(t(lang, "card.confirm_fixed"), callback_data=Confirm(view.id).pack()),
                InlineKeyboardButton(t(lang, "card.not_fixed"), callback_data=NotFixed(view.id).pack()),
            ]
        ]
    )
    before, after = list(view.photo_paths), list(view.after_photo_paths)
    if before and after:
        photo = await off_loop(_composite, rt, lang, before[0], after[-1])
        text = await off_loop(verify_text, lang, view, rt, photo=True)
        message = await app.bot.send_photo(chat_id, photo, caption=clip(text, CAPTION_LIMIT), reply_markup=buttons)
    else:
        text = await off_loop(verify_text, lang, view, rt, photo=False)
        message = await app.bot.send_message(chat_id, clip(text), reply_markup=buttons)
    return message.message_id
