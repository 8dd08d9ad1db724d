"""The question to the reporter who verifies a fix: one photo (before and after side by
side), the handler's result note, the departments' replies, and the two buttons."""

from __future__ import annotations

import asyncio
import html
import weakref
from pathlib import Path

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.ext import Application

from bot.callbacks import Confirm, NotFixed
from bot.cases import composite as drawn
from bot.cases import verifyview
from bot.cases.cards import CaseView
from bot.cases.verifyview import verify_details
from bot.i18n import t
from bot.intake.photos import absolute
from bot.runtime import Runtime
from bot.textlimits import CAPTION_LIMIT, clip
from handlers.common import off_loop
from handlers.workers import PHOTOS, WorkerDied


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


# The before/after composites are drawn in the photo workers (bot/cases/composite.py): 50–60 ms
# of Pillow each, which in a thread would hold one of the database's threads that long.


async def closed_composite(rt: Runtime, view: CaseView, lang: str) -> str | None:
    """The composite a CLOSED case's cards show (its path under the media dir), drawn the
    first time it is wanted; None when the case shows none, or when its worker died (the
    card keeps its report photo)."""
    composite = verifyview.closed_composite(view, lang)
    if composite is None:
        return None
    root = Path(rt.settings.media_dir).absolute()
    # The closing refreshes several chats' cards at once: the first one draws, the others wait.
    async with _drawing.setdefault(composite.path, asyncio.Lock()):
        if not absolute(root, composite.path).exists():
            job = (drawn.write_file, root, composite.before, composite.after, composite.labels, composite.path)
            try:
                await PHOTOS.run(*job)
            except WorkerDied:
                return None
    return composite.path


_drawing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()  # path -> its drawing


async def _before_after(rt: Runtime, lang: str, before: str, after: str) -> bytes | None:
    """None when the worker died: the question goes without its photo."""
    try:
        return await PHOTOS.run(
            drawn.from_files, Path(rt.settings.media_dir).absolute(), before, after, verifyview.labels(lang)
        )
    except WorkerDied:
        return None


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
    photo = await _before_after(rt, lang, before[0], after[-1]) if before and after else None
    if photo is not None:
        text = await off_loop(verify_text, lang, view, rt, photo=True)
        message = await app.bot.send_photo(chat_id, photo, caption=clip(text, CAPTION_LIMIT), reply_markup=buttons)
    else:
        text = await off_loop(verify_text, lang, view, rt, photo=False)
        message = await app.bot.send_message(chat_id, clip(text), reply_markup=buttons)
    return message.message_id
