"""Rating a case (好差评) and following up a bad rating (回访): the Telegram side.

  /ratelink CODE        a worker's single-use rating link for one resident, with its QR code
  /start rate-<token>   a resident opens the link (handlers/start.py hands it here)
  Rate(request, level)  one of the five levels on a rating request
  SkipComment(rating)   skip the optional comment
  FollowUp(followup, op)  the command room's follow-up card: c contacted, r resolved,
                        u could not reach, o reopen the case
  /stats [CODE] [7d|30d|all]   satisfaction numbers

Rating requests and follow-up cards are outbox rows rendered here at send time (`deliver`),
so a request that waited shows the case as it is, and one for a case rated or reopened
meanwhile is not sent at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, ContextTypes

from bot import outbox
from bot.callbacks import BadCallback, FollowUp, Rate, SkipComment
from bot.i18n import N_, t, t_plain
from bot.intake.photos import absolute
from bot.people.roles import Person
from bot.rating import qrcard
from bot.rating import ratings as rating
from bot.runtime import Runtime
from handlers.common import (
    Ctx,
    Turn,
    chat_language,
    clip,
    command_args,
    esc,
    is_private,
    off_loop,
    person_of,
    reply,
    runtime,
)
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)

MAX_PHOTOS_EACH = 5  # before and after photos in a rating request (an album holds ten)
CARD_COMMENT_LIMIT = 1000  # characters of a comment the follow-up card shows
REMIND_EVERY_S = 300


def _fmt(rt: Runtime, at: datetime) -> str:
    return at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")


def level_label(lang: str, level: int) -> str:
    return f"{rating.EMOJI[level]} {t(lang, rating.LEVEL_KEYS[level])}"


def level_label_plain(lang: str, level: int) -> str:
    """A rating button's label: the face and its words, plain text."""
    return f"{rating.EMOJI[level]} {t_plain(lang, rating.LEVEL_KEYS[level])}"


def _days(value: float) -> str:
    return f"{value:g}"


# --- /ratelink ---------------------------------------------------------------------------


async def ratelink_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    if not is_private(update):
        await reply(update, t(lang, "rate.private_only", bot=esc(context.bot.username)))
        return
    args = command_args(context)
    if not args:
        await reply(update, t(lang, "rate.link_usage"))
        return
    rt = runtime(context)
    made = await off_loop(rating.make_link, rt, person=person, code=args[0])
    png = await off_loop(qrcard.qr_png, made.link, made.code)
    caption = t(lang, "rate.link_made", code=esc(made.code), link=esc(made.link), until=_fmt(rt, made.expires_at))
    message = update.effective_message
    assert message is not None
    await message.reply_photo(png, caption=clip(caption, 1024))


# --- opening a link ----------------------------------------------------------------------


async def start_with_link(update: Update, context: Ctx, person: Person, token: str) -> None:
    """`/start rate-<token>`: attach the resident, and ask now if the case is closed."""
    done = await off_loop(rating.redeem_link, runtime(context), person=person, token=token)
    lang = person.language
    keys = {"asked": N_("rate.link_asked"), "later": N_("rate.will_ask"), "rated": N_("rate.already_rated")}
    await reply(update, t(lang, keys[done.status], code=esc(done.code)))
    await flush(context.application)


# --- the five levels and the comment -----------------------------------------------------


def _thanks(lang: str, done: rating.Rated) -> str:
    text = t(lang, "rate.thanks", level=level_label(lang, done.level), code=esc(done.code))
    if done.followup_id is not None:
        text += "\n" + t(lang, "rate.followup_promised", days=_days(done.followup_days))
    return text


async def on_rate(update: Update, context: Ctx, button: Rate) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    message_id = query.message.message_id if query.message else None
    done = await off_loop(
        rating.rate,
        runtime(context),
        person=person,
        request_id=button.request_id,
        level=button.level,
        message_id=message_id,
    )
    lang = person.language
    await query.answer(t_plain(lang, "rate.recorded"))
    text = _thanks(lang, done) + "\n\n" + t(lang, "rate.ask_comment")
    skip = InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(lang, "rate.btn_skip"), callback_data=SkipComment(done.rating_id).pack())]]
    )
    try:
        await query.edit_message_text(text, reply_markup=skip)
    except TelegramError as exc:  # the request message is gone: say it anew
        log.info("could not edit the rating request: %s", exc)
        await context.bot.send_message(person.telegram_id, text, reply_markup=skip)
    await flush(context.application)


async def on_skip(update: Update, context: Ctx, button: SkipComment) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    done = await off_loop(rating.skip_comment, runtime(context), person=person, rating_id=button.rating_id)
    lang = person.language
    await query.answer(t_plain(lang, "rate.skipped"))
    try:
        await query.edit_message_text(_thanks(lang, done))
    except TelegramError:
        pass


async def take_comment(update: Update, context: Ctx, person: Person, turn: Turn | None = None) -> bool:
    """After a rating, the resident's next text or voice message is their comment (True:
    taken). Anything else (a command, a photo for a new report) ends the wait and goes on
    to its handler (False). With the person's `turn`, its lock is released once the comment
    is stored, before the answer is sent."""
    message = update.effective_message
    assert message is not None
    rt = runtime(context)
    text = message.text
    if message.voice is not None:
        seconds = message.voice.duration
        seconds = int(seconds.total_seconds()) if hasattr(seconds, "total_seconds") else int(seconds or 0)
        done = await off_loop(
            rating.add_comment, rt, user_id=person.user_id, voice_file_id=message.voice.file_id, voice_seconds=seconds
        )
    elif text is not None and not text.startswith("/") and text.strip():
        done = await off_loop(rating.add_comment, rt, user_id=person.user_id, text=text)
    else:
        await off_loop(rating.close_comment_window, rt, person.user_id)
        return False
    if done is None:  # the window closed a moment ago: treat it as any other message
        return False
    if turn is not None:
        await turn.replying()
    lang = person.language
    if done.truncated:
        await message.reply_text(t(lang, "rate.comment_shortened", limit=rating.MAX_COMMENT))
    else:
        await message.reply_text(t(lang, "rate.comment_saved"))
    if done.prompt_message_id is not None:
        try:
            await context.bot.edit_message_reply_markup(person.telegram_id, done.prompt_message_id, reply_markup=None)
        except TelegramError:
            pass
    await flush(context.application)
    return True


# --- the command room's follow-up ---------------------------------------------------------


async def on_followup(update: Update, context: Ctx, button: FollowUp) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    op = button.op
    if op not in rating.FOLLOWUP_OPS:
        raise BadCallback(button)
    done = await off_loop(
        rating.followup_action, runtime(context), person=person, followup_id=button.followup_id, op=op
    )
    lang = person.language  # the pop-up is the presser's; the card is refreshed in the group's language
    if done.op == rating.CONTACTED:
        await query.answer(t_plain(lang, "rate.fu_contacted_ok", code=done.code))
    else:
        await query.answer(
            t_plain(lang, "rate.fu_done_ok", code=done.code, outcome=t_plain(lang, rating.OUTCOME_KEYS[done.op]))
        )
    await flush(context.application)


def render_followup(rt: Runtime, lang: str, view: rating.FollowUpView) -> tuple[str, InlineKeyboardMarkup | None]:
    resident = esc(view.resident_name)
    if view.resident_telegram_id is not None:
        resident = f'<a href="tg://user?id={view.resident_telegram_id}">{resident}</a>'
    if view.resident_username:
        resident += f" @{esc(view.resident_username)}"
    lines = [
        t(lang, "rate.fu_title", code=esc(view.code), category=esc(view.category.get(lang))),
        t(lang, "rate.fu_resident", name=resident),
        t(lang, "rate.fu_rating", level=level_label(lang, view.level), at=_fmt(rt, view.created_at)),
    ]
    if view.comment:
        comment = view.comment if len(view.comment) <= CARD_COMMENT_LIMIT else view.comment[:CARD_COMMENT_LIMIT] + "…"
        lines.append(t(lang, "rate.fu_comment", comment=esc(comment)))
    if view.voice_seconds is not None:
        lines.append(t(lang, "rate.fu_voice", seconds=view.voice_seconds))
    lines.append(t(lang, "rate.fu_due", due=_fmt(rt, view.due_at)))
    if view.contacted_at is not None:
        lines.append(t(lang, "rate.fu_contacted", at=_fmt(rt, view.contacted_at), name=esc(view.contacted_by or "—")))
    if view.outcome is not None and view.done_at is not None:
        lines.append(
            t(
                lang,
                "rate.fu_outcome",
                outcome=t(lang, rating.OUTCOME_KEYS[view.outcome]),
                at=_fmt(rt, view.done_at),
                name=esc(view.done_by or "—"),
            )
        )
        return clip("\n".join(lines)), None
    rows = []
    if view.contacted_at is None:
        rows.append([InlineKeyboardButton(t(lang, "rate.btn_contacted"), callback_data=FollowUp(view.id, "c").pack())])
    rows.append(
        [
            InlineKeyboardButton(t(lang, "rate.btn_resolved"), callback_data=FollowUp(view.id, "r").pack()),
            InlineKeyboardButton(t(lang, "rate.btn_unreachable"), callback_data=FollowUp(view.id, "u").pack()),
        ]
    )
    rows.append([InlineKeyboardButton(t(lang, "rate.btn_reopen"), callback_data=FollowUp(view.id, "o").pack())])
    return clip("\n".join(lines)), InlineKeyboardMarkup(rows)


# --- outbox rows of this feature (called by handlers/outbox_sender.py) ----------------------


async def deliver(app: Application, rt: Runtime, job: outbox.Job, lang: str) -> tuple[int | None, bool]:
    if job.kind == rating.KIND_FOLLOWUP:
        return await _followup_card(app, rt, job, lang), False
    return await _rating_request(app, rt, job, lang), False


async def _rating_request(app: Application, rt: Runtime, job: outbox.Job, lang: str) -> int | None:
    """Before and after photos, a few lines of history, then the five levels in one row."""
    view = await off_loop(rating.request_view, rt, int(job.payload["request"]))
    if view is None:
        return None  # rated meanwhile, or reopened: nothing to ask now
    reminder = bool(job.payload.get("reminder"))
    category = esc(view.category.get(lang))
    if reminder:
        lines = [t(lang, "rate.reminder", code=esc(view.code), category=category)]
    else:
        await _photos(app, rt, job.chat_id, lang, view)
        lines = [t(lang, "rate.ask_title", code=esc(view.code), category=category)]
        if view.history:
            lines.append(t(lang, "rate.history_title"))
            lines += [f"· {_fmt(rt, h.at)} {t(lang, h.key)}" for h in view.history]
        lines.append("")
    lines.append(t(lang, "rate.ask_question"))
    # Faces and words (😀 非常满意 …): the three satisfied levels on one row, the two others below
    faces = [
        InlineKeyboardButton(level_label_plain(lang, level), callback_data=Rate(view.request_id, level).pack())
        for level in rating.LEVELS
    ]
    buttons = InlineKeyboardMarkup([faces[:3], faces[3:]])
    message = await app.bot.send_message(job.chat_id, clip("\n".join(lines)), reply_markup=buttons)
    return message.message_id


async def _photos(app: Application, rt: Runtime, chat_id: int, lang: str, view: rating.RequestView) -> None:
    before = list(view.photo_paths[:MAX_PHOTOS_EACH])
    after = list(view.after_photo_paths[:MAX_PHOTOS_EACH])
    items = [(path, "work.photo_before") for path in before] + [(path, "work.photo_after") for path in after]
    loaded = []
    for path, key in items:
        try:
            data = await off_loop(absolute(rt.settings.media_dir, path).read_bytes)
        except OSError:
            log.warning("photo %s of case %s is missing", path, view.code)
            continue
        loaded.append((data, t(lang, key)))
    if len(loaded) == 1:  # an album needs two to ten
        await app.bot.send_photo(chat_id, loaded[0][0], caption=loaded[0][1])
    elif loaded:
        await app.bot.send_media_group(chat_id, [InputMediaPhoto(data, caption=caption) for data, caption in loaded])


async def _followup_card(app: Application, rt: Runtime, job: outbox.Job, lang: str) -> int | None:
    followup_id = int(job.payload["followup"])
    view = await off_loop(rating.followup_view, rt, followup_id)
    if view is None:
        return None
    text, markup = render_followup(rt, lang, view)
    if view.card_chat_id == job.chat_id and view.card_message_id is not None:
        try:
            await app.bot.edit_message_text(text, job.chat_id, view.card_message_id, reply_markup=markup)
            return view.card_message_id
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                return view.card_message_id
            if "not found" not in str(exc).lower() and "can't be edited" not in str(exc).lower():
                raise
            # The card was deleted in the group: post it again.
    message = await app.bot.send_message(job.chat_id, text, reply_markup=markup)
    await off_loop(
        rating.followup_card_posted, rt, followup_id=followup_id, chat_id=job.chat_id, message_id=message.message_id
    )
    return message.message_id


# --- reminders ---------------------------------------------------------------------------


async def remind_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every few minutes: the one reminder of residents who have not rated yet."""
    rt = context.application.bot_data["rt"]
    queued = await off_loop(rating.remind_unrated, rt)
    if queued:
        log.info("reminded %s residents to rate", queued)
        await flush(context.application)


# --- what staff see of a case's ratings (for /case) -----------------------------------------


def rating_lines(rt: Runtime, lang: str, found: Sequence[rating.StaffRating]) -> list[str]:
    """Lines to append to a case's detail for staff; empty when nobody rated it."""
    if not found:
        return []
    lines = [t(lang, "rate.staff_title")]
    for r in found:
        lines.append(
            t(lang, "rate.staff_line", level=level_label(lang, r.level), at=_fmt(rt, r.at), name=esc(r.resident))
        )
        if r.comment:
            comment = r.comment if len(r.comment) <= 200 else r.comment[:200] + "…"
            lines.append(t(lang, "rate.staff_comment", comment=esc(comment)))
        if r.voice_seconds is not None:
            lines.append(t(lang, "rate.fu_voice", seconds=r.voice_seconds))
        if r.followup_outcome is not None:
            lines.append(t(lang, "rate.staff_followup", outcome=t(lang, rating.OUTCOME_KEYS[r.followup_outcome])))
    return lines
