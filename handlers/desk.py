"""The command room's desk: /stats (chart and figures; buttons switch period and breakdown).

/stats [SCOPE] [PERIOD]   SCOPE: a district, street, team, command room, department or
                          grid code; PERIOD: 7d, 30d, 本月, 上月, 2026-11, 2026-11-01..2026-11-15
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from typing import IO, TypeVar

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.error import TelegramError

from bot.desk import drawing, export, maps, render, service
from bot.desk.buttons import BY_OF, DeskMap, DeskStats
from bot.desk.figures import Report
from bot.desk.periods import PRESETS, Period
from bot.desk.scopes import Scope
from bot.i18n import N_, t, t_plain
from bot.people.roles import Person
from bot.runtime import Runtime
from handlers.common import Ctx, chat_language, command_args, esc, in_thread, person_of, pressed, runtime
from handlers.outbox_sender import photo_call
from handlers.workers import WorkerDied, WorkerPool

CAPTION_LIMIT = 1024
_PERIOD_KEYS = {
    "7d": N_("desk.period_7d"),
    "30d": N_("desk.period_30d"),
    "this-month": N_("desk.period_this_month"),
    "last-month": N_("desk.period_last_month"),
}
BREAKDOWN_BUTTONS = ("team", "grid", "person", "category")


def title(lang: str, report: Report) -> str:
    return f"{report.scope.names.get(lang)} · {report.period.label()}"


def caption(lang: str, report: Report) -> str:
    lines = [f"📊 <b>{esc(title(lang, report))}</b>", *(esc(line) for line in render.summary(lang, report.total))]
    text = "\n".join(lines)
    return text if len(text) <= CAPTION_LIMIT else text[: CAPTION_LIMIT - 1] + "…"


def keyboard(lang: str, report: Report) -> InlineKeyboardMarkup | None:
    code = report.scope.code
    by = report.breakdown or "none"
    try:
        periods = [
            InlineKeyboardButton(
                ("• " if report.period.text == p else "") + t_plain(lang, _PERIOD_KEYS[p]),
                callback_data=DeskStats(code, p, BY_OF[by]).pack(),
            )
            for p in PRESETS
        ]
        breakdowns = [
            InlineKeyboardButton(
                ("• " if by == b else "") + render.breakdown_label(lang, b),
                callback_data=DeskStats(code, report.period.text, BY_OF[b]).pack(),
            )
            for b in BREAKDOWN_BUTTONS
        ]
    except ValueError:  # a period typed as a long range does not fit a button: no buttons
        return None
    return InlineKeyboardMarkup([periods, breakdowns])


# Charts and maps are drawn in a worker process of their own: matplotlib takes 50–100 ms of
# CPU, which in the database's threads would hold the GIL and stall every other update.
PICTURES = WorkerPool("picture", 1)
Spec = TypeVar("Spec")


async def send_picture(
    context: Ctx,
    chat_id: int,
    draw: Callable[[Spec], bytes],
    spec: Spec,
    text: str,
    markup: InlineKeyboardMarkup | None,
) -> None:
    """``draw(spec)`` (drawn in the picture worker) with ``text`` as its caption. A picture
    showing the same as one sent before (same scope, period, numbers and language) goes by
    its file_id: not drawn, not uploaded. No picture (a dead worker, Telegram refusing it):
    the text alone, which holds the figures."""
    key = "picture:" + hashlib.sha256(repr(spec).encode()).hexdigest()

    async def send(photo: str | bytes) -> Message:
        return await context.bot.send_photo(chat_id, photo, caption=text, reply_markup=markup)

    try:
        await photo_call(
            context.application,
            key,
            send,
            lambda m: m.photo[-1].file_id if m.photo else None,
            lambda: PICTURES.run(draw, spec),
        )
    except (WorkerDied, TelegramError):
        await context.bot.send_message(chat_id, text, reply_markup=markup)


async def _send(update: Update, context: Ctx, lang: str, report: Report) -> None:
    assert update.effective_chat is not None
    spec = render.chart_spec(lang, report, title(lang, report))
    await send_picture(
        context, update.effective_chat.id, drawing.draw, spec, caption(lang, report), keyboard(lang, report)
    )


async def stats_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    request = service.read_args(command_args(context))
    report = await in_thread(service.stats, runtime(context), person, request.scope, request.period, None)
    await _send(update, context, lang, report)


async def on_stats_button(update: Update, context: Ctx, button: DeskStats) -> None:
    query, person = await pressed(update, context)
    lang = await chat_language(update, context, person)
    await query.answer()
    report = await in_thread(service.stats, runtime(context), person, button.scope, button.period, button.breakdown)
    await _send(update, context, lang, report)


# --- /export ---------------------------------------------------------------------------------


def _export_file(
    rt: Runtime, person: Person, scope_code: str | None, period_text: str | None, lang: str
) -> tuple[Scope, Period, int, IO[bytes]]:
    scope, period = service.scope_and_period(rt, person, scope_code, period_text)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (handed on)
    count = export.write_xlsx(rt, scope, period, lang, spool)
    spool.seek(0)
    return scope, period, count, spool


async def export_command(update: Update, context: Ctx) -> None:
    """/export [SCOPE] [PERIOD]: the assessment spreadsheet (cases, timeline, figures)."""
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    request = service.read_args(command_args(context))
    rt = runtime(context)
    scope, period, count, spool = await in_thread(_export_file, rt, person, request.scope, request.period, lang)
    assert update.effective_chat is not None
    name = f"griddesk-{scope.code}-{period.first:%Y%m%d}-{period.last:%Y%m%d}.xlsx"
    caption = t(lang, "desk.export_caption", scope=esc(scope.names.get(lang)), period=period.label(), count=count)
    if count == 0:
        caption += "\n" + t(lang, "desk.export_empty")
    try:
        await context.bot.send_document(
            update.effective_chat.id, InputFile(spool.read(), filename=name), caption=caption
        )
    finally:
        spool.close()


# --- /map -----------------------------------------------------------------------------------


def _map(
    rt: Runtime, person: Person, scope_code: str | None, period_text: str | None, lang: str, colour: str = maps.BY_STATE
) -> tuple[Scope, Period, maps.Drawn]:
    scope, period = service.scope_and_period(rt, person, scope_code, period_text)
    title = f"{scope.names.get(lang)} · {period.label()}"
    return scope, period, maps.spec(rt, scope, period, lang, title, colour)


_MAP_COLOUR_CODES = {maps.BY_STATE: "st", maps.BY_CATEGORY: "ct"}


def map_keyboard(lang: str, scope: Scope, period: Period, colour: str) -> InlineKeyboardMarkup | None:
    """One button: the same map coloured the other way (by category / by state)."""
    other = maps.BY_CATEGORY if colour == maps.BY_STATE else maps.BY_STATE
    key = N_("desk.map_by_category") if other == maps.BY_CATEGORY else N_("desk.map_by_state")
    try:
        data = DeskMap(scope.code, period.text, _MAP_COLOUR_CODES[other]).pack()
    except ValueError:  # a period typed as a long range does not fit a button: no button
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(t_plain(lang, key), callback_data=data)]])


async def _send_map(
    update: Update,
    context: Ctx,
    person: Person,
    lang: str,
    scope_code: str | None,
    period_text: str | None,
    colour: str,
) -> None:
    scope, period, found = await in_thread(_map, runtime(context), person, scope_code, period_text, lang, colour)
    assert update.effective_chat is not None
    caption = t(lang, "desk.map_caption", scope=esc(scope.names.get(lang)), period=period.label(), count=found.cases)
    markup = map_keyboard(lang, scope, period, colour)
    await send_picture(context, update.effective_chat.id, drawing.draw_map, found.spec, caption, markup)


async def map_command(update: Update, context: Ctx) -> None:
    """/map [SCOPE] [PERIOD]: the grids and the period's cases, coloured by state (a button: by category)."""
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    request = service.read_args(command_args(context))
    await _send_map(update, context, person, lang, request.scope, request.period, maps.BY_STATE)


async def on_map_button(update: Update, context: Ctx, button: DeskMap) -> None:
    query, person = await pressed(update, context)
    lang = await chat_language(update, context, person)
    await query.answer()
    colour = maps.BY_CATEGORY if button.colour == "ct" else maps.BY_STATE
    await _send_map(update, context, person, lang, button.scope, button.period, colour)
