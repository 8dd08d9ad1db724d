"""The report conversation, in private chat: location, photos, description, category, confirm.

State lives in the database (bot.intake.drafts), not in PTB's ConversationHandler, so a restart
resumes where the worker was. Each update is one step in two halves: the change to the draft
and everything its reply reads, in one unit of work under the person's lock (an album
arrives as several updates at once: their changes must not overwrite each other), then the
reply, sent after the lock is released and in the order of the steps (handlers/common.py
``user_turn``): a slow send never holds up the next update's change. A photo is downloaded
and decoded between two such steps, holding nothing.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import TelegramError

from bot.awaiting import draft_step
from bot.callbacks import (
    BadCallback,
    Report,
    ReportCategory,
    ReportEdit,
    ReportGrid,
    ReportJoin,
    ReportLocation,
    ReportPlatform,
)
from bot.i18n import t
from bot.intake import drafts, locate
from bot.intake import submit as intake
from bot.intake.drafts import CATEGORY, CONFIRM, DESCRIPTION, LOCATION, PHOTOS, Draft
from bot.intake.photos import PhotoError
from bot.intake.submit import Candidate
from bot.org import categories
from bot.org.categories import CategoryOption
from bot.people.roles import Person
from bot.runtime import Runtime
from bot.textlimits import utf16_len, utf16_prefix
from handlers import fallback, media, my
from handlers.common import Ctx, Turn, clip, esc, is_private, off_loop, person_of, runtime, user_turn
from handlers.outbox_sender import flush
from storage.models import CaseSource, Role

log = logging.getLogger(__name__)


def _source(person: Person) -> str:
    return CaseSource.RESIDENT if person.is_resident else CaseSource.PATROL


def _worker_grids(person: Person) -> list[str]:
    return person.scopes(Role.WORKER)


async def _send(update: Update, text: str, markup: Any = None) -> Message:
    message = update.effective_message
    assert message is not None
    return await message.reply_text(clip(text), reply_markup=markup)


# --- steps --------------------------------------------------------------------------

# What a step says, as sends to make once its unit of work is committed and the person's
# lock released (built in the unit of work's thread, awaited on the event loop).
Reply = Callable[[], Awaitable[object]]


async def _nothing() -> None:
    return None


def _replies(*replies: Reply) -> Reply:
    async def all_of() -> None:
        for each in replies:
            await each()

    return all_of


def _say(update: Update, text: str, markup: Any = None) -> Reply:
    return functools.partial(_send, update, text, markup)


async def _in_turn(context: Ctx, person: Person, apply: Callable[[Session, drafts.Loaded], Reply]) -> None:
    """One step of the report alone: `apply` in one unit of work under the person's lock,
    then its reply in turn."""
    async with user_turn(context, person.user_id) as turn:
        reply = await off_loop(draft_step, runtime(context), person.user_id, apply)
        await turn.replying()
        await reply()


def _saved(s: Session, rt: Runtime, person: Person, draft: Draft) -> _Needs:
    """Store the draft's change and read what its next prompt shows, in the step's unit of work."""
    drafts.save_in(s, rt, draft)
    return _needs_in(s, rt, person, draft)


def _draft_or_new(
    s: Session, rt: Runtime, update: Update, person: Person, loaded: drafts.Loaded
) -> tuple[Draft, Reply]:
    """The draft under way, or a new one (and the "timed out" notice if one just expired)."""
    notice = _say(update, t(person.language, "report.timed_out")) if loaded.expired else _nothing
    if loaded.draft is not None:
        return loaded.draft, notice
    draft = drafts.start_in(s, rt, user_id=person.user_id, source=_source(person), resident=person.is_resident)
    return draft, notice


# --- starting ---------------------------------------------------------------------


async def report_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if not is_private(update):
        await _send(update, t(person.language, "report.private_only", bot=esc(context.bot.username)))
        return
    rt = runtime(context)

    # A report under way is resumed, not thrown away: /cancel is how to drop it.
    def apply(s: Session, loaded: drafts.Loaded) -> Reply:
        draft, notice = _draft_or_new(s, rt, update, person, loaded)
        return _replies(
            notice,
            functools.partial(_prompt, update, context, person, draft, _needs_in(s, rt, person, draft), fresh=True),
        )

    await _in_turn(context, person, apply)


# --- prompts ----------------------------------------------------------------------


def _location_keyboard(person: Person, draft: Draft) -> ReplyKeyboardMarkup:
    lang = person.language
    rows = [[KeyboardButton(t(lang, "report.btn_send_location"), request_location=True)]]
    if len(_worker_grids(person)) == 1:
        rows.append([KeyboardButton(t(lang, "report.btn_grid_centre"))])
    if draft.exif_offer:
        rows.append([KeyboardButton(t(lang, "report.btn_photo_location"))])
    rows.append([KeyboardButton(t(lang, "report.btn_cancel"))])
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


def _location_inline(person: Person, draft: Draft) -> InlineKeyboardMarkup | None:
    lang = person.language
    rows = []
    if len(_worker_grids(person)) == 1:
        rows.append(
            [
                InlineKeyboardButton(
                    t(lang, "report.btn_grid_centre"), callback_data=ReportLocation(draft.ref, "grid").pack()
                )
            ]
        )
    if draft.exif_offer:
        rows.append(
            [
                InlineKeyboardButton(
                    t(lang, "report.btn_photo_location"), callback_data=ReportLocation(draft.ref, "exif").pack()
                )
            ]
        )
    return InlineKeyboardMarkup(rows) if rows else None


def _prompt_text(person: Person, draft: Draft, step: str) -> str:
    lang = person.language
    if step == LOCATION:
        text = t(lang, "report.ask_location")
        if draft.exif_offer:
            text += "\n" + t(lang, "report.exif_offer")
        return text
    if step == PHOTOS:
        return t(lang, "report.ask_photos")
    if step == DESCRIPTION:
        return t(lang, "report.ask_description")
    if step == CATEGORY:
        return t(lang, "report.ask_category")
    return ""


@dataclass(frozen=True)
class _Needs:
    """What a prompt shows that the database knows, read in the step's unit of work."""

    suggestions: list[CategoryOption]
    duplicates: list[Candidate]


_NOTHING_NEEDED = _Needs([], [])


def _needs_in(s: Session, rt: Runtime, person: Person, draft: Draft) -> _Needs:
    step = draft.next_step()
    if step == CATEGORY:
        found = categories.suggestions_in(s, rt, user_id=person.user_id, description=draft.description or "")
        return _Needs(found, [])
    if step == CONFIRM:
        assert draft.category_id is not None and draft.latitude is not None and draft.longitude is not None
        duplicates = intake.find_duplicates_in(
            s,
            rt,
            category_id=draft.category_id,
            latitude=draft.latitude,
            longitude=draft.longitude,
            grid_id=draft.grid_id,
        )
        return _Needs([], duplicates)
    return _NOTHING_NEEDED


def _category_keyboard(person: Person, draft: Draft, options: list[CategoryOption]) -> InlineKeyboardMarkup:
    lang = person.language
    rows = [[InlineKeyboardButton(o.name(lang), callback_data=ReportCategory(draft.ref, o.id).pack())] for o in options]
    more = Report(draft.ref, "platforms").pack()
    rows.append([InlineKeyboardButton(t(lang, "report.btn_more_categories"), callback_data=more)])
    return InlineKeyboardMarkup(rows)


def _platform_keyboard(rt: Runtime, lang: str, draft: Draft) -> InlineKeyboardMarkup:
    platforms, _ = categories.catalogue(rt)
    rows = [
        [InlineKeyboardButton(p.name(lang), callback_data=ReportPlatform(draft.ref, p.code).pack())] for p in platforms
    ]
    rows.append([InlineKeyboardButton(t(lang, "report.btn_back"), callback_data=Report(draft.ref, "back").pack())])
    return InlineKeyboardMarkup(rows)


def _platform_categories_keyboard(rt: Runtime, lang: str, draft: Draft, platform: str) -> InlineKeyboardMarkup:
    options = categories.in_platform(rt, platform)
    rows = [[InlineKeyboardButton(o.name(lang), callback_data=ReportCategory(draft.ref, o.id).pack())] for o in options]
    back = Report(draft.ref, "platforms").pack()
    rows.append([InlineKeyboardButton(t(lang, "report.btn_back"), callback_data=back)])
    return InlineKeyboardMarkup(rows)


def _done_button(person: Person, draft: Draft) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(person.language, "report.btn_done"), callback_data=Report(draft.ref, "done").pack())]]
    )


async def _prompt(
    update: Update,
    context: Ctx,
    person: Person,
    draft: Draft,
    needs: _Needs,
    *,
    fresh: bool = False,
    prefix: str = "",
    after_photo: bool = False,
) -> Message:
    """Ask for what the draft still lacks (or show the summary when nothing is missing)."""
    step = draft.next_step()
    head = (prefix + "\n\n") if prefix else ""
    if step == CONFIRM:
        return await _summary(update, context, person, draft, needs.duplicates, prefix=prefix)
    text = head + _prompt_text(person, draft, step)
    if step == LOCATION:
        if draft.outside:
            text = head + t(person.language, "report.outside") + "\n" + _prompt_text(person, draft, step)
            markup: Any = _outside_keyboard(person, draft) or _location_keyboard(person, draft)
        else:
            # The big "send my location" reply keyboard, except on an acknowledgement (of a
            # photo): that message may be edited as album items arrive, and only inline
            # keyboards survive an edit.
            inline = None if fresh or not prefix else _location_inline(person, draft)
            markup = inline or _location_keyboard(person, draft)
            if inline is not None:
                # The prompt speaks of the "send my location" button: show it too (a reply
                # keyboard, in a message of its own since the acknowledgement keeps inline buttons).
                ack = await _send(update, text, markup)
                await _send(
                    update, t(person.language, "report.location_button_hint"), _location_keyboard(person, draft)
                )
                return ack
    elif step == CATEGORY:
        markup = _category_keyboard(person, draft, needs.suggestions)
    elif step == DESCRIPTION and after_photo:
        # Still taking photos: more may come, or the description; "Done" just moves on.
        text = head + t(person.language, "report.more_photos_or_description")
        markup = _done_button(person, draft)
    else:
        markup = ReplyKeyboardRemove()
    return await _send(update, text, markup)


def _outside_keyboard(person: Person, draft: Draft) -> InlineKeyboardMarkup | None:
    grids = _worker_grids(person)
    if not grids:
        return None
    memberships = {m.scope_code: m for m in person.memberships}
    rows = [
        [
            InlineKeyboardButton(
                memberships[code].scope_name(person.language), callback_data=ReportGrid(draft.ref, code).pack()
            )
        ]
        for code in grids[:8]
    ]
    return InlineKeyboardMarkup(rows)


async def _summary(
    update: Update, context: Ctx, person: Person, draft: Draft, candidates: list[Candidate], *, prefix: str = ""
) -> Message:
    rt = runtime(context)
    lang = person.language
    assert draft.grid_id is not None and draft.category_id is not None
    place = locate.place_of_grid(rt, draft.grid_id)
    category = categories.category(rt, draft.category_id)
    lines = [prefix, ""] if prefix else []
    lines += [
        t(lang, "report.summary_title"),
        t(
            lang,
            "report.summary_place",
            place=esc(place.grid_name(lang) if place else "—"),
            street=esc(place.street_name(lang) if place else "—"),
        ),
        t(lang, "report.summary_category", category=esc(category.name(lang) if category else "—")),
        t(lang, "report.summary_photos", count=len(draft.photos)),
    ]
    if draft.voices:
        lines.append(t(lang, "report.summary_voices", count=len(draft.voices)))
    if draft.address:
        lines.append("🏷 " + esc(draft.address))
    rows = []
    if candidates:
        lines.append("")
        lines.append(t(lang, "report.duplicates_found", count=len(candidates)))
        for c in candidates:
            snippet = c.description[:40] + ("…" if len(c.description) > 40 else "")
            lines.append(
                t(lang, "report.duplicate_line", code=esc(c.code), metres=round(c.distance_m), description=esc(snippet))
            )
            rows.append(
                [
                    InlineKeyboardButton(
                        t(lang, "report.btn_join", code=c.code), callback_data=ReportJoin(draft.ref, c.case_id).pack()
                    )
                ]
            )
    rows += [
        [
            InlineKeyboardButton(
                t(lang, "report.btn_submit_new" if candidates else "report.btn_submit"),
                callback_data=Report(draft.ref, "submit").pack(),
            )
        ],
        [
            InlineKeyboardButton(
                t(lang, "report.btn_edit_location"), callback_data=ReportEdit(draft.ref, "location").pack()
            ),
            InlineKeyboardButton(
                t(lang, "report.btn_edit_photos"), callback_data=ReportEdit(draft.ref, "photos").pack()
            ),
        ],
        [
            InlineKeyboardButton(
                t(lang, "report.btn_edit_description"), callback_data=ReportEdit(draft.ref, "description").pack()
            ),
            InlineKeyboardButton(
                t(lang, "report.btn_edit_category"), callback_data=ReportEdit(draft.ref, "category").pack()
            ),
        ],
        [InlineKeyboardButton(t(lang, "report.btn_cancel"), callback_data=Report(draft.ref, "cancel").pack())],
    ]
    head = "\n".join(lines)
    # The description goes last and is clipped so the whole card fits Telegram's 4096,
    # which Telegram counts in UTF-16 code units (an emoji is two).
    room = 4000 - utf16_len(head)
    description = draft.description or t(lang, "report.voice_only")
    if utf16_len(description) > room:
        description = utf16_prefix(description, max(room, 0)) + "…"
    text = head + "\n" + t(lang, "report.summary_description", description=esc(description))
    return await _send(update, text, InlineKeyboardMarkup(rows))


# --- inputs -----------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoWanted:
    """The step's answer to a photo for the draft: download and decode it holding nothing,
    then add it in a step of its own (:func:`take_photo`)."""

    ref: int  # the draft it goes into
    reply: Reply  # said first (the last draft timed out), or nothing


Change = Callable[[Session, drafts.Loaded], Reply | PhotoWanted]


def change_for(update: Update, context: Ctx, person: Person) -> Change:
    """The report's step for a private message, to run in the message's unit of work (see
    bot.awaiting.step): it changes the draft and returns what to say."""
    message = update.effective_message
    assert message is not None
    rt = runtime(context)
    if message.photo or message.document:
        return functools.partial(_photo_step, rt, update, person, message)
    if message.location is not None or message.venue is not None:
        return functools.partial(_location_step, rt, update, context, person, message)
    if message.voice is not None:
        return functools.partial(_voice_step, rt, update, context, person, message)
    if message.text is not None:
        return functools.partial(_text_step, rt, update, context, person, message.text)
    if any((message.sticker, message.video, message.contact, message.animation, message.audio, message.video_note)):
        return functools.partial(_other_step, update, context, person)
    return lambda _s, _loaded: functools.partial(fallback.private_other, update, context)


async def answer(update: Update, context: Ctx, person: Person, turn: Turn, outcome: Reply | PhotoWanted) -> None:
    """Say what the step decided (the turn's lock is released first). A photo is taken after
    the turn, in turns of its own."""
    if isinstance(outcome, PhotoWanted):
        if outcome.reply is not _nothing:
            await turn.replying()
            await outcome.reply()
        turn.release()
        return
    await turn.replying()
    await outcome()


def _photo_step(
    rt: Runtime, update: Update, person: Person, message: Message, s: Session, loaded: drafts.Loaded
) -> Reply | PhotoWanted:
    lang = person.language
    if media.is_other_document(message):
        return _say(update, t(lang, "photo.not_image"))
    if not media.has_image(message):
        return _nothing
    draft, notice = _draft_or_new(s, rt, update, person, loaded)
    if len(draft.photos) >= drafts.MAX_PHOTOS:
        return _replies(notice, _say(update, t(lang, "report.too_many_photos", max=drafts.MAX_PHOTOS)))
    return PhotoWanted(draft.ref, notice)


async def take_photo(update: Update, context: Ctx, person: Person, wanted: PhotoWanted) -> None:
    """Download and decode the photo (no lock held: an album's photos come in side by side),
    then add it to the draft in a step of its own."""
    message = update.effective_message
    assert message is not None
    rt = runtime(context)
    try:
        received = await media.receive_photo(context, message)
    except PhotoError as exc:
        async with user_turn(context, person.user_id) as turn:
            await turn.replying()
            await _send(update, t(person.language, exc.key, **exc.params))
        return
    async with user_turn(context, person.user_id) as turn:
        apply = functools.partial(_add_photo, rt, update, context, person, message, received, wanted.ref)
        reply, album = await off_loop(draft_step, rt, person.user_id, apply)
        await turn.replying()
        sent = await reply()
        if album is not None and isinstance(sent, Message):
            # The album's later items edit this acknowledgement: remember it, for them (in
            # this process) and in the draft (for after a restart).
            _album_acks(context)[(person.user_id, album)] = sent.message_id
            async with turn.locked():
                await off_loop(drafts.note_album, rt, person.user_id, wanted.ref, album, sent.message_id)


def _add_photo(
    rt: Runtime,
    update: Update,
    context: Ctx,
    person: Person,
    message: Message,
    received: media.Received,
    ref: int,
    s: Session,
    loaded: drafts.Loaded,
) -> tuple[Reply, str | None]:
    """Add a downloaded photo to the draft; what to say, and the album whose acknowledgement
    that is (its message id is then kept)."""
    lang = person.language
    draft = loaded.draft
    if draft is None or draft.ref != ref:
        return _nothing, None  # cancelled or replaced while the photo was on its way
    if len(draft.photos) >= drafts.MAX_PHOTOS:  # the album's other items got there first
        return _say(update, t(lang, "report.too_many_photos", max=drafts.MAX_PHOTOS)), None
    draft.photos.append(drafts.photo_dict(received.photo))
    if received.gps and not draft.has_location:
        draft.exif_offer = [received.gps[0], received.gps[1]]
    if message.caption and message.caption.strip() and not draft.description:
        draft.description = message.caption.strip()[: drafts.MAX_DESCRIPTION]
    group = message.media_group_id
    if group and group in draft.albums:
        # One acknowledgement per album: later items update it.
        needs = _saved(s, rt, person, draft)
        return functools.partial(_edit_ack, context, person, draft, needs, group, draft.albums[group]), None
    if group:
        draft.albums[group] = 0  # acknowledged by the message this step sends (its id kept then)
    needs = _saved(s, rt, person, draft)
    ack = t(lang, "report.photos_received", count=len(draft.photos))
    return functools.partial(
        _prompt, update, context, person, draft, needs, prefix=ack, after_photo=True
    ), group or None


ALBUM_ACKS_KEPT = 1000  # albums whose acknowledgement's message id this process remembers


def _album_acks(context: Ctx) -> OrderedDict[tuple[int, str], int]:
    acks: OrderedDict[tuple[int, str], int] = context.application.bot_data.setdefault("album_acks", OrderedDict())
    while len(acks) > ALBUM_ACKS_KEPT:
        acks.popitem(last=False)
    return acks


async def _edit_ack(context: Ctx, person: Person, draft: Draft, needs: _Needs, group: str, message_id: int) -> None:
    # Sent in turn, so the album's first acknowledgement is out by now (or failed: then the
    # count goes in a new one).
    message_id = message_id or _album_acks(context).get((person.user_id, group), 0)
    step = draft.next_step()
    follow = (
        t(person.language, "report.more_photos_or_description")
        if step == DESCRIPTION
        else _prompt_text(person, draft, step)
    )
    text = t(person.language, "report.photos_received", count=len(draft.photos)) + "\n\n" + follow
    markup = None
    if step == LOCATION:
        markup = _location_inline(person, draft)
    elif step == CATEGORY:
        markup = _category_keyboard(person, draft, needs.suggestions)
    elif step == DESCRIPTION:
        markup = _done_button(person, draft)
    if not message_id:
        await context.bot.send_message(person.telegram_id, clip(text), reply_markup=markup)
        return
    try:
        await context.bot.edit_message_text(text, person.telegram_id, message_id, reply_markup=markup)
    except TelegramError as exc:  # "not modified" and the like: the count is all that changed
        log.debug("album ack not edited: %s", exc)


def _location_step(
    rt: Runtime, update: Update, context: Ctx, person: Person, message: Message, s: Session, loaded: drafts.Loaded
) -> Reply:
    if message.venue is not None:
        lat, lon = message.venue.location.latitude, message.venue.location.longitude
        address = " ".join(p for p in (message.venue.title, message.venue.address) if p)
    elif message.location is not None:
        lat, lon, address = message.location.latitude, message.location.longitude, None
    else:
        return _nothing
    draft, notice = _draft_or_new(s, rt, update, person, loaded)
    return _replies(notice, _set_location(s, rt, update, context, person, draft, lat, lon, address))


def _set_location(
    s: Session,
    rt: Runtime,
    update: Update,
    context: Ctx,
    person: Person,
    draft: Draft,
    lat: float,
    lon: float,
    address: str | None,
) -> Reply:
    place = locate.locate(rt, lat, lon)
    draft.address = address
    if place is None:
        draft.outside, draft.grid_id = True, None
        draft.latitude, draft.longitude = lat, lon
        return functools.partial(_prompt, update, context, person, draft, _saved(s, rt, person, draft))
    return _use_grid(s, rt, update, context, person, draft, (place, lat, lon))


def _grid_choice(rt: Runtime, person: Person, draft: Draft, grid_code: str) -> tuple[locate.Place, float, float]:
    """Check a worker's "use my grid" choice before anything is answered or changed."""
    if grid_code not in _worker_grids(person):
        raise BadCallback(grid_code)
    place = locate.place_by_grid_code(rt, grid_code)
    if place is None:
        raise BadCallback(grid_code)
    if draft.outside and draft.latitude is not None and draft.longitude is not None:
        # Keep where they really are; the grid says who is responsible.
        return place, draft.latitude, draft.longitude
    centre = locate.grid_centre(rt, place.grid_id)
    if centre is None:
        raise BadCallback(grid_code)
    return place, centre[0], centre[1]


def _use_grid(
    s: Session,
    rt: Runtime,
    update: Update,
    context: Ctx,
    person: Person,
    draft: Draft,
    choice: tuple[locate.Place, float, float],
) -> Reply:
    place, lat, lon = choice
    draft.outside = False
    draft.latitude, draft.longitude, draft.grid_id, draft.exif_offer = lat, lon, place.grid_id, None
    ack = t(
        person.language,
        "report.location_set",
        grid=esc(place.grid_name(person.language)),
        street=esc(place.street_name(person.language)),
    )
    return functools.partial(_prompt, update, context, person, draft, _saved(s, rt, person, draft), prefix=ack)


def _text_step(
    rt: Runtime, update: Update, context: Ctx, person: Person, text: str, s: Session, loaded: drafts.Loaded
) -> Reply:
    lang = person.language
    text = text.strip()
    if text in _labels("menu.new_report"):
        # Starts a report, or resumes the one under way (the menu can still be on screen).
        started, notice = _draft_or_new(s, rt, update, person, loaded)
        needs = _needs_in(s, rt, person, started)
        return _replies(notice, functools.partial(_prompt, update, context, person, started, needs, fresh=True))
    if text in _labels("menu.my_reports"):
        return functools.partial(my.my_command, update, context)
    draft = loaded.draft
    if draft is None:
        if loaded.expired:  # say so once, with the menu to start again; not "didn't understand"
            return _say(update, t(lang, "report.timed_out"), main_menu(lang))
        return functools.partial(fallback.private_text, update, context)
    if text in _labels("report.btn_cancel"):
        return _cancel(s, update, person)
    if text in _labels("report.btn_grid_centre") and len(_worker_grids(person)) == 1:
        try:
            choice = _grid_choice(rt, person, draft, _worker_grids(person)[0])
        except BadCallback:  # the grid left the organisation meanwhile
            return functools.partial(_prompt, update, context, person, draft, _needs_in(s, rt, person, draft))
        return _use_grid(s, rt, update, context, person, draft, choice)
    if text in _labels("report.btn_photo_location") and draft.exif_offer:
        lat, lon = draft.exif_offer
        return _set_location(s, rt, update, context, person, draft, lat, lon, None)
    step = draft.next_step()
    if step in (DESCRIPTION, CATEGORY, CONFIRM) or (step in (LOCATION, PHOTOS) and not draft.description):
        if not text:
            return _say(update, t(lang, "report.empty_description"))
        draft.description = text[: drafts.MAX_DESCRIPTION]
        needs = _saved(s, rt, person, draft)
        return functools.partial(
            _prompt, update, context, person, draft, needs, prefix=t(lang, "report.description_set")
        )
    return functools.partial(_prompt, update, context, person, draft, _needs_in(s, rt, person, draft))


def _labels(key: str) -> set[str]:
    return {t("zh_CN", key), t("en", key)}


def _voice_step(
    rt: Runtime, update: Update, context: Ctx, person: Person, message: Message, s: Session, loaded: drafts.Loaded
) -> Reply:
    assert message.voice is not None
    draft = loaded.draft
    if draft is None:
        return functools.partial(fallback.private_other, update, context)
    duration = message.voice.duration
    seconds = duration.total_seconds() if hasattr(duration, "total_seconds") else duration
    draft.voices.append({"file_id": message.voice.file_id, "duration": int(seconds)})
    needs = _saved(s, rt, person, draft)
    prefix = t(person.language, "report.voice_added", count=len(draft.voices))
    return functools.partial(_prompt, update, context, person, draft, needs, prefix=prefix)


def _other_step(update: Update, context: Ctx, person: Person, _s: Session, loaded: drafts.Loaded) -> Reply:
    """Stickers, videos, contacts…: not what a report needs. Say what is, lose nothing."""
    if loaded.draft is None:
        return functools.partial(fallback.private_other, update, context)
    step, lang = loaded.draft.next_step(), person.language
    # Literal keys (not a lookup table): the catalog test finds the keys the code uses.
    if step == LOCATION:
        text = t(lang, "report.wrong_input_location")
    elif step == PHOTOS:
        text = t(lang, "report.wrong_input_photo")
    else:
        text = t(lang, "report.wrong_input") + "\n" + _prompt_text(person, loaded.draft, step)
    return _say(update, text.strip())


async def cancel_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    await _in_turn(context, person, lambda s, _loaded: _cancel(s, update, person))


def _cancel(s: Session, update: Update, person: Person) -> Reply:
    existed = drafts.discard_in(s, person.user_id)
    lang = person.language
    return _say(update, t(lang, "report.cancelled" if existed else "cancel.nothing"), main_menu(lang))


# --- buttons ----------------------------------------------------------------------


ReportButton = Report | ReportLocation | ReportGrid | ReportPlatform | ReportCategory | ReportEdit | ReportJoin


async def on_report_button(update: Update, context: Ctx, button: ReportButton) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    rt = runtime(context)
    await _in_turn(context, person, functools.partial(_button_step, rt, update, context, person, button))


def _button_step(
    rt: Runtime, update: Update, context: Ctx, person: Person, button: ReportButton, s: Session, loaded: drafts.Loaded
) -> Reply:
    """A press on one of the report's buttons, in its unit of work. Each button checks its
    arguments before anything is answered: a refused press raises BadCallback, answered once
    with the "no longer valid" alert, and changes nothing."""
    query = update.callback_query
    assert query is not None
    draft = loaded.draft
    if draft is None or draft.ref != button.ref:
        raise BadCallback(button)  # a button of an earlier or finished report
    lang = person.language
    step = button.step if isinstance(button, Report) else None
    answered: Reply = query.answer
    if step == "done":
        return _replies(
            answered, functools.partial(_prompt, update, context, person, draft, _needs_in(s, rt, person, draft))
        )
    if isinstance(button, ReportLocation):
        if button.source == "grid" and len(_worker_grids(person)) == 1:
            choice = _grid_choice(rt, person, draft, _worker_grids(person)[0])
            return _replies(answered, _use_grid(s, rt, update, context, person, draft, choice))
        if button.source == "exif" and draft.exif_offer:
            lat, lon = draft.exif_offer
            return _replies(answered, _set_location(s, rt, update, context, person, draft, lat, lon, None))
        raise BadCallback(button)
    if isinstance(button, ReportGrid):
        choice = _grid_choice(rt, person, draft, button.grid)
        return _replies(answered, _use_grid(s, rt, update, context, person, draft, choice))
    if step == "platforms" or isinstance(button, ReportPlatform):
        if isinstance(button, ReportPlatform):
            if not categories.in_platform(rt, button.platform):
                raise BadCallback(button)
            markup = _platform_categories_keyboard(rt, lang, draft, button.platform)
        else:
            markup = _platform_keyboard(rt, lang, draft)
        return _replies(answered, functools.partial(query.edit_message_reply_markup, markup))
    if step == "back":
        markup = _category_keyboard(person, draft, _needs_in(s, rt, person, draft).suggestions)
        return _replies(answered, functools.partial(query.edit_message_reply_markup, markup))
    if isinstance(button, ReportCategory):
        category = categories.category(rt, button.category_id)
        if category is None:
            raise BadCallback(button)
        draft.category_id = category.id
        needs = _saved(s, rt, person, draft)
        return _replies(
            functools.partial(query.answer, category.name(lang)),
            functools.partial(_prompt, update, context, person, draft, needs),
        )
    if isinstance(button, ReportEdit):
        if button.part == "location":
            draft.grid_id = draft.latitude = draft.longitude = draft.address = None
            draft.outside = False
        elif button.part == "photos":
            draft.photos, draft.albums, draft.exif_offer = [], {}, None
        elif button.part == "description":
            draft.description, draft.voices = None, []
        elif button.part == "category":
            draft.category_id = None
        else:
            raise BadCallback(button)
        needs = _saved(s, rt, person, draft)
        return _replies(answered, functools.partial(_prompt, update, context, person, draft, needs, fresh=True))
    if step == "cancel":
        return _replies(answered, _cancel(s, update, person))
    if step == "submit" or isinstance(button, ReportJoin):
        if draft.next_step() != CONFIRM:
            raise BadCallback(button)
        intake.check_rate_in(s, rt, user_id=person.user_id, resident=person.is_resident)
        report, ack = draft.to_report(), _ack(query, person)
        if isinstance(button, ReportJoin):
            intake.join_case_in(s, rt, case_id=button.case_id, report=report, finish_draft=True, ack=ack)
        else:
            intake.submit_report_in(s, rt, report, finish_draft=True, ack=ack)
        # Committed with the step, acknowledgement included (sent by the outbox): what
        # follows may be lost without anybody being told "something went wrong".
        return _replies(functools.partial(flush, context.application), functools.partial(_finish, update, person))
    raise BadCallback(button)


def _ack(query: CallbackQuery, person: Person) -> intake.Ack:
    """The summary pressed becomes the receipt with the case code (see intake.Ack)."""
    summary = query.message
    if isinstance(summary, Message) and summary.text:
        return intake.Ack(person.telegram_id, summary.message_id, summary.text_html)
    return intake.Ack(person.telegram_id)  # a summary Telegram no longer shows us: a new message


async def _finish(update: Update, person: Person) -> None:
    """After a committed submit: answer the press, and give back the main menu (the report's
    own keyboards replaced it). Both may be lost; the code is already in the outbox, on its
    way into the summary."""
    query = update.callback_query
    if query is None:
        return
    lang = person.language
    steps: list[Awaitable[object]] = [query.answer()]
    if isinstance(query.message, Message) and query.message.text:
        steps.append(query.message.reply_text(t(lang, "report.whats_next"), reply_markup=main_menu(lang)))
    for step in steps:
        try:
            await step
        except TelegramError as exc:
            log.info("after a submit: %s", exc)


def main_menu(lang: str) -> ReplyKeyboardMarkup:
    """The two things anyone can always do, one tap away at the bottom of the chat."""
    return ReplyKeyboardMarkup(
        [[KeyboardButton(t(lang, "menu.new_report")), KeyboardButton(t(lang, "menu.my_reports"))]],
        resize_keyboard=True,
    )
