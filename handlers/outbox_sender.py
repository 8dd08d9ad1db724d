"""The outbox sender: renders queued rows and sends them, editing cards in place.

Handlers call `flush` right after a service committed (so people see results at once);
a repeating job drains whatever is left (retries, rows of a crashed process).
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from bot import outbox
from bot.callbacks import cb
from bot.cases import digests
from bot.cases.cards import Card, case_view, render_card
from bot.i18n import t
from bot.intake.photos import absolute
from bot.org.chats import chat_info
from bot.runtime import Runtime
from handlers.common import clip, off_loop

log = logging.getLogger(__name__)

_LOCK_KEY = "outbox_lock"


def markup(card: Card) -> InlineKeyboardMarkup | None:
    if not card.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in card.buttons]
    )


async def flush(app: Application) -> int:
    """Send everything due now. Concurrent calls queue behind one another."""
    lock = app.bot_data.setdefault(_LOCK_KEY, asyncio.Lock())
    rt: Runtime = app.bot_data["rt"]
    sent = 0
    async with lock:
        while True:
            jobs = await off_loop(outbox.claim, rt)
            if not jobs:
                return sent
            for job in jobs:
                sent += await _send_one(app, rt, job)


async def _send_one(app: Application, rt: Runtime, job: outbox.Job) -> int:
    try:
        message_id, is_photo = await _deliver(app, rt, job)
    except RetryAfter as exc:
        seconds = exc.retry_after if isinstance(exc.retry_after, (int, float)) else exc.retry_after.total_seconds()
        await off_loop(outbox.failed_for_now, rt, job, error=str(exc), retry_after=float(seconds))
        return 0
    except Forbidden as exc:
        log.warning("chat %s refuses our messages: %s", job.chat_id, exc)
        await off_loop(outbox.undeliverable, rt, job, error=str(exc), chat_gone=True)
        return 0
    except BadRequest as exc:
        if "not modified" in str(exc).lower():
            await off_loop(outbox.delivered, rt, job, message_id=None)
            return 0
        log.error("outbox row %s refused by Telegram: %s", job.id, exc)
        await off_loop(outbox.undeliverable, rt, job, error=str(exc), chat_gone="chat not found" in str(exc).lower())
        return 0
    except (TimedOut, NetworkError) as exc:
        await off_loop(outbox.failed_for_now, rt, job, error=str(exc))
        return 0
    await off_loop(outbox.delivered, rt, job, message_id=message_id, is_photo=is_photo)
    return 1


def localized_params(params: dict[str, Any], lang: str) -> dict[str, Any]:
    """Escape what people typed, and pick `x` from an `x_zh` / `x_en` pair by language."""
    out: dict[str, Any] = {}
    suffix = "_zh" if lang == "zh_CN" else "_en"
    for name, value in params.items():
        if name.endswith(("_zh", "_en")):
            if name.endswith(suffix):
                out[name[:-3]] = html.escape(str(value), quote=False)
            continue
        out[name] = html.escape(value, quote=False) if isinstance(value, str) else value
    return out


async def _deliver(app: Application, rt: Runtime, job: outbox.Job) -> tuple[int | None, bool]:
    lang = await off_loop(outbox.chat_language, rt, job.chat_id)
    if job.kind == "user_text":
        text = clip(t(lang, job.payload["key"], **localized_params(job.payload.get("params", {}), lang)))
        message = await app.bot.send_message(
            job.chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True
        )
        return message.message_id, False
    if job.kind == "digest":
        text = clip(digests.render(job.payload, lang))
        message = await app.bot.send_message(
            job.chat_id, text, parse_mode=ParseMode.HTML, disable_web_page_preview=True
        )
        return message.message_id, False
    if job.kind in ("rating_request", "followup_card"):
        from handlers.rate import deliver  # rate.py imports this module: import when used

        return await deliver(app, rt, job, lang)
    if job.kind == "verify_request":
        return await _verify_request(app, rt, job, lang), False
    if job.kind == "extension_request":
        p = localized_params(job.payload, lang)
        text = t(
            lang,
            "work.extension_request",
            code=p.get("code", ""),
            by=p["by"],
            hours=p["hours"],
            due=p["due"],
            reason=p["reason"],
        )
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(t(lang, "work.btn_approve"), callback_data=cb("xa", job.payload["request"])),
                    InlineKeyboardButton(t(lang, "work.btn_refuse"), callback_data=cb("xr", job.payload["request"])),
                ]
            ]
        )
        message = await app.bot.send_message(job.chat_id, clip(text), parse_mode=ParseMode.HTML, reply_markup=buttons)
        return message.message_id, False
    if job.kind == "case_card":
        assert job.case_id is not None
        view = await off_loop(case_view, rt, job.case_id)
        if view is None:
            return None, False
        existing = await off_loop(outbox.existing_card, rt, job)
        info = await off_loop(chat_info, rt, job.chat_id) if job.purpose == "department" else None
        card = render_card(
            view,
            lang=lang,
            purpose=job.purpose or "",
            tz=rt.settings.tz,
            photo=existing is None or existing.is_photo,
            viewer_unit_id=info.unit_id if info else None,
        )
        if existing is not None:
            try:
                if existing.is_photo:
                    await app.bot.edit_message_caption(
                        job.chat_id,
                        existing.message_id,
                        caption=card.text,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup(card),
                    )
                else:
                    await app.bot.edit_message_text(
                        card.text,
                        job.chat_id,
                        existing.message_id,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup(card),
                        disable_web_page_preview=True,
                    )
                return existing.message_id, existing.is_photo
            except BadRequest as exc:
                if "not found" not in str(exc).lower() and "can't be edited" not in str(exc).lower():
                    raise
                # The card was deleted in the chat: post it again below.
        if card.photo_path:
            data = await off_loop(absolute(rt.settings.media_dir, card.photo_path).read_bytes)
            message = await app.bot.send_photo(
                job.chat_id, data, caption=card.text, parse_mode=ParseMode.HTML, reply_markup=markup(card)
            )
            return message.message_id, True
        message = await app.bot.send_message(
            job.chat_id, card.text, parse_mode=ParseMode.HTML, reply_markup=markup(card), disable_web_page_preview=True
        )
        return message.message_id, False
    log.error("outbox row %s has an unknown kind %r", job.id, job.kind)
    return None, False


async def _verify_request(app: Application, rt: Runtime, job: outbox.Job, lang: str) -> int | None:
    """Before and after photos side by side, then the question with its two buttons."""
    assert job.case_id is not None
    view = await off_loop(case_view, rt, job.case_id)
    if view is None:
        return None
    photos = [*view.photo_paths[:5], *view.after_photo_paths[:5]]
    if photos:
        media = []
        for n, rel in enumerate(photos):
            data = await off_loop(absolute(rt.settings.media_dir, rel).read_bytes)
            before = n < len(view.photo_paths[:5])
            media.append(InputMediaPhoto(data, caption=t(lang, "work.photo_before" if before else "work.photo_after")))
        await app.bot.send_media_group(job.chat_id, media)
    text = t(lang, "work.verify_request", code=html.escape(view.code), category=html.escape(view.category.get(lang)))
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(t(lang, "card.confirm_fixed"), callback_data=cb("vc", view.id)),
                InlineKeyboardButton(t(lang, "card.not_fixed"), callback_data=cb("vn", view.id)),
            ]
        ]
    )
    message = await app.bot.send_message(job.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=buttons)
    return message.message_id
