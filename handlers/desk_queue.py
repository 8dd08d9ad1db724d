"""/queue (the desk's work queue, filters as buttons, 10 a page) and /find TEXT; a tapped
line opens the case's card in private with the presser's own actions."""

from __future__ import annotations

from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError

from bot.cases import query as casequery
from bot.desk import corrections
from bot.desk import queue as desk
from bot.desk.buttons import DeskFix, DeskFixTo, DeskOpen, DeskQueue
from bot.i18n import N_, bilingual, t, t_plain
from bot.runtime import Runtime
from handlers import tasks
from handlers.common import Ctx, chat_language, clip, esc, in_thread, off_loop, person_of, pressed, reply, runtime

FILTER_KEYS = {
    "all": N_("desk.q_all"),
    "overdue": N_("desk.q_overdue"),
    "unclaimed": N_("desk.q_unclaimed"),
    "today": N_("desk.q_today"),
    "waiting": N_("desk.q_waiting"),
    "team": N_("desk.q_by_team"),
    "grid": N_("desk.q_by_grid"),
}


def time_left(lang: str, due: datetime | None, now: datetime) -> str:
    """ "剩 3 小时", "超期 1 天": the largest whole unit, wall-clock."""
    if due is None:
        return t(lang, "desk.no_due")
    seconds = (due - now).total_seconds()
    span = abs(seconds)
    if span >= 86400:
        count, unit = int(span // 86400), "days"
    elif span >= 3600:
        count, unit = int(span // 3600), "hours"
    else:
        count, unit = max(1, int(span // 60)), "minutes"
    if seconds >= 0:
        key = {"days": N_("desk.left_days"), "hours": N_("desk.left_hours"), "minutes": N_("desk.left_minutes")}[unit]
    else:
        key = {"days": N_("desk.over_days"), "hours": N_("desk.over_hours"), "minutes": N_("desk.over_minutes")}[unit]
    return t(lang, key, count=count)


def line_text(rt: Runtime, lang: str, line: desk.Line) -> str:
    mark = "🔴 " if line.urgent else ""
    owner = esc(line.owner) if line.owner else t(lang, "desk.no_owner")
    when = time_left(lang, line.due_at, rt.clock.now()) if line.state != "reported" else t(lang, "state.reported")
    return (
        f"{mark}<code>{esc(line.code)}</code> · {esc(line.category.get(lang))} · "
        f"{esc(line.place.get(lang))} · {owner} · {when}"
    )


def _open_buttons(lines: tuple[desk.Line, ...] | list[desk.Line]) -> list[list[InlineKeyboardButton]]:
    cells = [InlineKeyboardButton(line.code, callback_data=DeskOpen(line.case_id).pack()) for line in lines]
    return [cells[i : i + 2] for i in range(0, len(cells), 2)]


def render_queue(rt: Runtime, lang: str, page: desk.QueuePage) -> tuple[str, InlineKeyboardMarkup]:
    label = t(lang, FILTER_KEYS[page.kind])
    if page.arg_name is not None:
        label += f" · {esc(page.arg_name.get(lang))}"
    lines = [t(lang, "desk.queue_title", filter=label, page=page.page + 1)]
    if not page.lines:
        lines.append(t(lang, "desk.queue_empty"))
    lines += [f"{i}. {line_text(rt, lang, line)}" for i, line in enumerate(page.lines, start=page.page * desk.PAGE + 1)]
    rows = _open_buttons(page.lines)

    def cell(kind: str, arg: int = 0) -> InlineKeyboardButton:
        mark = "• " if page.kind == kind else ""
        return InlineKeyboardButton(
            mark + t_plain(lang, FILTER_KEYS[kind]), callback_data=DeskQueue(kind, arg, 0).pack()
        )

    rows.append([cell("all"), cell("overdue"), cell("unclaimed")])
    rows.append([cell("today"), cell("waiting")])
    rows.append(
        [
            InlineKeyboardButton(t_plain(lang, "desk.q_by_team"), callback_data=DeskQueue("pickteam", 0, 0).pack()),
            InlineKeyboardButton(t_plain(lang, "desk.q_by_grid"), callback_data=DeskQueue("pickgrid", 0, 0).pack()),
        ]
    )
    nav = []
    if page.page > 0:
        nav.append(
            InlineKeyboardButton(
                t_plain(lang, "tasks.prev"), callback_data=DeskQueue(page.kind, page.arg, page.page - 1).pack()
            )
        )
    if page.has_more:
        nav.append(
            InlineKeyboardButton(
                t_plain(lang, "tasks.next"), callback_data=DeskQueue(page.kind, page.arg, page.page + 1).pack()
            )
        )
    if nav:
        rows.append(nav)
    return clip("\n".join(lines)), InlineKeyboardMarkup(rows)


async def queue_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    rt = runtime(context)
    page = await in_thread(desk.queue, rt, person)
    text, markup = render_queue(rt, lang, page)
    await reply(update, text, markup=markup)


async def on_queue_button(update: Update, context: Ctx, button: DeskQueue) -> None:
    query, person = await pressed(update, context)
    lang = await chat_language(update, context, person)
    rt = runtime(context)
    if button.kind in ("pickteam", "pickgrid"):
        kind = "team" if button.kind == "pickteam" else "grid"
        options = await off_loop(desk.choices, rt, person, kind)
        rows = [
            [InlineKeyboardButton(names.get(lang)[:40], callback_data=DeskQueue(kind, ident, 0).pack())]
            for ident, names in options[:40]
        ]
        rows.append([InlineKeyboardButton(t_plain(lang, "desk.q_all"), callback_data=DeskQueue("all", 0, 0).pack())])
        await query.answer()
        await query.edit_message_text(t(lang, "desk.queue_pick"), reply_markup=InlineKeyboardMarkup(rows))
        return
    try:
        page = await in_thread(desk.queue, rt, person, kind=button.kind, arg=button.arg, page=button.page)
    except desk.StalePage:  # the cases moved on: say so, and show the first page
        await query.answer(t_plain(person.language, "desk.queue_stale"), show_alert=True)  # the presser's pop-up
        page = await in_thread(desk.queue, rt, person, kind=button.kind, arg=button.arg, page=0)
    else:
        await query.answer()
    text, markup = render_queue(rt, lang, page)
    try:
        await query.edit_message_text(text, reply_markup=markup)
    except BadRequest as e:  # the same page again (a stale press answered with what is shown)
        if "not modified" not in str(e).lower():
            raise


async def find_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    rt = runtime(context)
    found = await in_thread(desk.find, rt, person, " ".join(context.args or []))
    if not found:
        await reply(update, t(lang, "desk.find_none"))
        return
    lines = [t(lang, "desk.find_title", count=len(found))]
    lines += [f"{i}. {line_text(rt, lang, line)}" for i, line in enumerate(found, start=1)]
    await reply(update, "\n".join(lines), markup=InlineKeyboardMarkup(_open_buttons(found)))


async def on_open(update: Update, context: Ctx, button: DeskOpen) -> None:
    """The card in the presser's private chat (the /case view) with their own buttons."""
    query, person = await pressed(update, context)
    rt = runtime(context)
    lang = person.language
    opened = await off_loop(desk.open_card, rt, person, button.case_id, lang)
    detail = await off_loop(casequery.detail, rt, person=person, code=opened.code)
    if detail is None:
        raise desk.lifecycle.CaseNotFound()
    text = tasks.render_detail(rt, lang, detail)
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in opened.rows]
    )
    try:
        await context.bot.send_message(person.telegram_id, text, reply_markup=markup if opened.rows else None)
    except TelegramError:  # never started the bot in private: say how
        await query.answer(t_plain(lang, "desk.open_start_first"), show_alert=True)
        return
    await query.answer(t_plain(lang, "desk.opened", code=opened.code))


# --- 更正分类 ---------------------------------------------------------------------------------


async def on_fix(update: Update, context: Ctx, button: DeskFix) -> None:
    query, person = await pressed(update, context)
    rt = runtime(context)
    lang = person.language
    await off_loop(corrections.check, rt, person, button.case_id)  # the lifecycle's refusal, or stale
    options = await off_loop(corrections.categories, rt)
    cells = [
        InlineKeyboardButton(
            bilingual(lang, c.name_zh, c.name_en)[:30], callback_data=DeskFixTo(button.case_id, c.id).pack()
        )
        for c in options
        if c.id is not None
    ]
    rows = [cells[i : i + 2] for i in range(0, len(cells), 2)]
    await query.answer()
    await context.bot.send_message(
        person.telegram_id, t(lang, "desk.fix_choose"), reply_markup=InlineKeyboardMarkup(rows)
    )


async def on_fix_to(update: Update, context: Ctx, button: DeskFixTo) -> None:
    query, person = await pressed(update, context)
    rt = runtime(context)
    lang = person.language
    done = await off_loop(corrections.recategorize, rt, person, button.case_id, button.category_id)
    await query.answer()
    text = t(lang, "desk.fix_done_moved" if done.team_changed else "desk.fix_done", code=esc(done.code))
    await query.edit_message_text(text)
