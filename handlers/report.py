"""The report conversation, in private chat: location, photos, description, category, confirm.

State lives in the database (bot.intake.drafts), not in PTB's ConversationHandler, so a restart
resumes where the worker was. Updates of one user are handled one at a time (an album
arrives as several updates at once).
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import TelegramError

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
from bot.org import categories
from bot.people.roles import Person
from bot.runtime import Runtime
from bot.textlimits import utf16_len, utf16_prefix
from handlers import fallback, media, my
from handlers.common import Ctx, clip, esc, is_private, off_loop, person_of, runtime, user_lock
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


# --- starting ---------------------------------------------------------------------


async def report_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if not is_private(update):
        await _send(update, t(person.language, "report.private_only", bot=esc(context.bot.username)))
        return
    async with user_lock(context, person.user_id):
        # A report under way is resumed, not thrown away: /cancel is how to drop it.
        begun = await off_loop(
            drafts.begin, runtime(context), user_id=person.user_id, source=_source(person), resident=person.is_resident
        )
        if begun.expired:
            await _send(update, t(person.language, "report.timed_out"))
        assert begun.draft is not None
        await _prompt(update, context, person, begun.draft, fresh=True)


async def _load_or_start(
    update: Update, context: Ctx, person: Person, *, start: bool, loaded: drafts.Loaded | None = None
) -> Draft | None:
    """The draft under way (`loaded` if the caller read it under the user's lock), or a new
    one when `start`."""
    rt = runtime(context)
    if loaded is None:
        loaded = await off_loop(drafts.load, rt, person.user_id)
    if loaded.expired:
        await _send(update, t(person.language, "report.timed_out"))
    if loaded.draft is not None or not start:
        return loaded.draft
    begun = await off_loop(
        drafts.begin, rt, user_id=person.user_id, source=_source(person), resident=person.is_resident
    )
    return begun.draft


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


async def _category_keyboard(rt: Runtime, person: Person, draft: Draft) -> InlineKeyboardMarkup:
    lang = person.language
    options = await off_loop(categories.suggestions, rt, user_id=person.user_id, description=draft.description or "")
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
    *,
    fresh: bool = False,
    prefix: str = "",
    after_photo: bool = False,
) -> Message:
    """Ask for what the draft still lacks (or show the summary when nothing is missing)."""
    rt = runtime(context)
    step = draft.next_step()
    head = (prefix + "\n\n") if prefix else ""
    if step == CONFIRM:
        return await _summary(update, context, person, draft, prefix=prefix)
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
        markup = await _category_keyboard(rt, person, draft)
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


async def _summary(update: Update, context: Ctx, person: Person, draft: Draft, *, prefix: str = "") -> Message:
    rt = runtime(context)
    lang = person.language
    assert draft.grid_id is not None and draft.category_id is not None
    place = locate.place_of_grid(rt, draft.grid_id)
    category = categories.category(rt, draft.category_id)
    candidates = await off_loop(
        intake.find_duplicates,
        rt,
        category_id=draft.category_id,
        latitude=draft.latitude,
        longitude=draft.longitude,
        grid_id=draft.grid_id,
    )
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


async def take_message(update: Update, context: Ctx, person: Person, loaded: drafts.Loaded) -> None:
    """A private message for the report conversation (handlers/private.py routes it here,
    holding the user's lock, with the draft it read under that lock)."""
    message = update.effective_message
    assert message is not None
    if message.photo or message.document:
        await _photo(update, context, person, message, loaded)
    elif message.location is not None or message.venue is not None:
        await _location(update, context, person, message, loaded)
    elif message.voice is not None:
        await _voice(update, context, person, message, loaded)
    elif message.text is not None:
        await _text(update, context, person, message.text, loaded)
    elif any((message.sticker, message.video, message.contact, message.animation, message.audio, message.video_note)):
        await _other(update, context, person, loaded)
    else:
        await fallback.private_other(update, context)


async def _photo(update: Update, context: Ctx, person: Person, message: Message, loaded: drafts.Loaded) -> None:
    lang = person.language
    if media.is_other_document(message):
        await _send(update, t(lang, "photo.not_image"))
        return
    if not media.has_image(message):
        return
    rt = runtime(context)
    draft = await _load_or_start(update, context, person, start=True, loaded=loaded)
    assert draft is not None
    if len(draft.photos) >= drafts.MAX_PHOTOS:
        await _send(update, t(lang, "report.too_many_photos", max=drafts.MAX_PHOTOS))
        return
    try:
        received = await media.receive_photo(context, message)
    except PhotoError as exc:
        await _send(update, t(lang, exc.key, **exc.params))
        await off_loop(drafts.save, rt, draft)
        return
    draft.photos.append(drafts.photo_dict(received.photo))
    if received.gps and not draft.has_location:
        draft.exif_offer = [received.gps[0], received.gps[1]]
    if message.caption and message.caption.strip() and not draft.description:
        draft.description = message.caption.strip()[: drafts.MAX_DESCRIPTION]
    # Saved before it is acknowledged: "photo received" is never said of a photo the
    # database did not keep (a lost connection here gets "busy, try again" instead).
    await off_loop(drafts.save, rt, draft)
    group = message.media_group_id
    if group and group in draft.albums:
        # One acknowledgement per album: later items update it.
        await _edit_ack(context, person, draft, draft.albums[group])
        return
    ack = t(lang, "report.photos_received", count=len(draft.photos))
    sent = await _prompt(update, context, person, draft, prefix=ack, after_photo=True)
    if group:
        draft.albums[group] = sent.message_id
        await off_loop(drafts.save, rt, draft)


async def _edit_ack(context: Ctx, person: Person, draft: Draft, message_id: int) -> None:
    rt = runtime(context)
    step = draft.next_step()
    follow = (
        t(person.language, "report.more_photos_or_description")
        if step == DESCRIPTION
        else _prompt_text(person, draft, step)
    )
    text = t(person.language, "report.photos_received", count=len(draft.photos)) + "\n\n" + follow
    markup = None
    if draft.next_step() == LOCATION:
        markup = _location_inline(person, draft)
    elif draft.next_step() == CATEGORY:
        markup = await _category_keyboard(rt, person, draft)
    elif draft.next_step() == DESCRIPTION:
        markup = _done_button(person, draft)
    try:
        await context.bot.edit_message_text(text, person.telegram_id, message_id, reply_markup=markup)
    except TelegramError as exc:  # "not modified" and the like: the count is all that changed
        log.debug("album ack not edited: %s", exc)


async def _location(update: Update, context: Ctx, person: Person, message: Message, loaded: drafts.Loaded) -> None:
    if message.venue is not None:
        lat, lon = message.venue.location.latitude, message.venue.location.longitude
        address = " ".join(p for p in (message.venue.title, message.venue.address) if p)
    elif message.location is not None:
        lat, lon, address = message.location.latitude, message.location.longitude, None
    else:
        return
    draft = await _load_or_start(update, context, person, start=True, loaded=loaded)
    assert draft is not None
    await _set_location(update, context, person, draft, lat, lon, address)


async def _set_location(
    update: Update, context: Ctx, person: Person, draft: Draft, lat: float, lon: float, address: str | None
) -> None:
    rt = runtime(context)
    place = locate.locate(rt, lat, lon)
    if place is None:
        draft.outside, draft.grid_id = True, None
        draft.latitude, draft.longitude, draft.address = lat, lon, address
        await off_loop(drafts.save, rt, draft)
        await _prompt(update, context, person, draft)
        return
    draft.outside = False
    draft.latitude, draft.longitude, draft.address, draft.grid_id = lat, lon, address, place.grid_id
    draft.exif_offer = None
    await off_loop(drafts.save, rt, draft)
    ack = t(
        person.language,
        "report.location_set",
        grid=esc(place.grid_name(person.language)),
        street=esc(place.street_name(person.language)),
    )
    await _prompt(update, context, person, draft, prefix=ack)


async def _grid_choice(rt: Runtime, person: Person, draft: Draft, grid_code: str) -> tuple[locate.Place, float, float]:
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


async def _use_grid(
    update: Update, context: Ctx, person: Person, draft: Draft, choice: tuple[locate.Place, float, float]
) -> None:
    rt = runtime(context)
    place, lat, lon = choice
    draft.outside = False
    draft.latitude, draft.longitude, draft.grid_id, draft.exif_offer = lat, lon, place.grid_id, None
    await off_loop(drafts.save, rt, draft)
    ack = t(
        person.language,
        "report.location_set",
        grid=esc(place.grid_name(person.language)),
        street=esc(place.street_name(person.language)),
    )
    await _prompt(update, context, person, draft, prefix=ack)


async def _text(update: Update, context: Ctx, person: Person, text: str, loaded: drafts.Loaded) -> None:
    lang = person.language
    text = text.strip()
    if text in _labels("menu.new_report"):
        # Starts a report, or resumes the one under way (the menu can still be on screen).
        draft = await _load_or_start(update, context, person, start=True, loaded=loaded)
        assert draft is not None
        await _prompt(update, context, person, draft, fresh=True)
        return
    if text in _labels("menu.my_reports"):
        await my.my_command(update, context)
        return
    draft = loaded.draft
    if draft is None:
        if loaded.expired:  # say so once, with the menu to start again; not "didn't understand"
            await _send(update, t(lang, "report.timed_out"), main_menu(lang))
        else:
            await fallback.private_text(update, context)
        return
    if text in _labels("report.btn_cancel"):
        await _cancel(update, context, person)
        return
    if text in _labels("report.btn_grid_centre") and len(_worker_grids(person)) == 1:
        try:
            choice = await _grid_choice(runtime(context), person, draft, _worker_grids(person)[0])
        except BadCallback:  # the grid left the organisation meanwhile
            await _prompt(update, context, person, draft)
            return
        await _use_grid(update, context, person, draft, choice)
        return
    if text in _labels("report.btn_photo_location") and draft.exif_offer:
        await _set_location(update, context, person, draft, draft.exif_offer[0], draft.exif_offer[1], None)
        return
    step = draft.next_step()
    if step in (DESCRIPTION, CATEGORY, CONFIRM) or (step in (LOCATION, PHOTOS) and not draft.description):
        if not text:
            await _send(update, t(lang, "report.empty_description"))
            return
        draft.description = text[: drafts.MAX_DESCRIPTION]
        await off_loop(drafts.save, runtime(context), draft)
        await _prompt(update, context, person, draft, prefix=t(lang, "report.description_set"))
        return
    await _prompt(update, context, person, draft)


def _labels(key: str) -> set[str]:
    return {t("zh_CN", key), t("en", key)}


async def _voice(update: Update, context: Ctx, person: Person, message: Message, loaded: drafts.Loaded) -> None:
    assert message.voice is not None
    draft = await _load_or_start(update, context, person, start=False, loaded=loaded)
    if draft is None:
        await fallback.private_other(update, context)
        return
    duration = message.voice.duration
    seconds = duration.total_seconds() if hasattr(duration, "total_seconds") else duration
    draft.voices.append({"file_id": message.voice.file_id, "duration": int(seconds)})
    await off_loop(drafts.save, runtime(context), draft)
    await _prompt(
        update, context, person, draft, prefix=t(person.language, "report.voice_added", count=len(draft.voices))
    )


async def _other(update: Update, context: Ctx, person: Person, loaded: drafts.Loaded) -> None:
    """Stickers, videos, contacts…: not what a report needs. Say what is, lose nothing."""
    if loaded.draft is None:
        await fallback.private_other(update, context)
        return
    step, lang = loaded.draft.next_step(), person.language
    # Literal keys (not a lookup table): the catalog test finds the keys the code uses.
    if step == LOCATION:
        text = t(lang, "report.wrong_input_location")
    elif step == PHOTOS:
        text = t(lang, "report.wrong_input_photo")
    else:
        text = t(lang, "report.wrong_input") + "\n" + _prompt_text(person, loaded.draft, step)
    await _send(update, text.strip())


async def cancel_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    async with user_lock(context, person.user_id):
        await _cancel(update, context, person)


async def _cancel(update: Update, context: Ctx, person: Person) -> None:
    existed = await off_loop(drafts.discard, runtime(context), person.user_id)
    await _send(
        update, t(person.language, "report.cancelled" if existed else "cancel.nothing"), main_menu(person.language)
    )


# --- buttons ----------------------------------------------------------------------


ReportButton = Report | ReportLocation | ReportGrid | ReportPlatform | ReportCategory | ReportEdit | ReportJoin


async def on_report_button(update: Update, context: Ctx, button: ReportButton) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    rt = runtime(context)
    async with user_lock(context, person.user_id):
        loaded = await off_loop(drafts.load, rt, person.user_id)
        draft = loaded.draft
        if draft is None or draft.ref != button.ref:
            raise BadCallback(button)  # a button of an earlier or finished report
        lang = person.language
        step = button.step if isinstance(button, Report) else None
        # Each button checks its arguments before answering the press: a refused press is
        # answered once, with the "no longer valid" alert.
        if step == "done":
            await query.answer()
            await _prompt(update, context, person, draft)
        elif isinstance(button, ReportLocation):
            if button.source == "grid" and len(_worker_grids(person)) == 1:
                choice = await _grid_choice(rt, person, draft, _worker_grids(person)[0])
                await query.answer()
                await _use_grid(update, context, person, draft, choice)
            elif button.source == "exif" and draft.exif_offer:
                await query.answer()
                await _set_location(update, context, person, draft, draft.exif_offer[0], draft.exif_offer[1], None)
            else:
                raise BadCallback(button)
        elif isinstance(button, ReportGrid):
            choice = await _grid_choice(rt, person, draft, button.grid)
            await query.answer()
            await _use_grid(update, context, person, draft, choice)
        elif step == "platforms" or isinstance(button, ReportPlatform):
            if isinstance(button, ReportPlatform):
                if not categories.in_platform(rt, button.platform):
                    raise BadCallback(button)
                markup = _platform_categories_keyboard(rt, lang, draft, button.platform)
            else:
                markup = _platform_keyboard(rt, lang, draft)
            await query.answer()
            await query.edit_message_reply_markup(markup)
        elif step == "back":
            await query.answer()
            await query.edit_message_reply_markup(await _category_keyboard(rt, person, draft))
        elif isinstance(button, ReportCategory):
            category = categories.category(rt, button.category_id)
            if category is None:
                raise BadCallback(button)
            draft.category_id = category.id
            await off_loop(drafts.save, rt, draft)
            await query.answer(category.name(lang))
            await _prompt(update, context, person, draft)
        elif isinstance(button, ReportEdit):
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
            await off_loop(drafts.save, rt, draft)
            await query.answer()
            await _prompt(update, context, person, draft, fresh=True)
        elif step == "cancel":
            await query.answer()
            await _cancel(update, context, person)
        elif step == "submit" or isinstance(button, ReportJoin):
            if draft.next_step() != CONFIRM:
                raise BadCallback(button)
            await off_loop(intake.check_rate, rt, user_id=person.user_id, resident=person.is_resident)
            report = draft.to_report()
            ack = person.telegram_id
            if isinstance(button, ReportJoin):
                await off_loop(
                    intake.join_case, rt, case_id=button.case_id, report=report, finish_draft=True, ack_chat=ack
                )
            else:
                await off_loop(intake.submit_report, rt, report, finish_draft=True, ack_chat=ack)
            # Committed, acknowledgement included (sent by the outbox): what follows may be
            # lost without anybody being told "something went wrong".
            await flush(context.application)
            await _finish(update)
        else:
            raise BadCallback(button)


async def _finish(update: Update) -> None:
    """After a committed submit: answer the press and take the summary's spent buttons away.
    Both may be lost; the acknowledgement with the code is already in the outbox."""
    query = update.callback_query
    if query is None:
        return
    for step in (query.answer(), query.edit_message_reply_markup(None)):
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
