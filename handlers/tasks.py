"""/tasks (my work, paged) and /case CODE (the full card with its timeline)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.callbacks import Tasks
from bot.cases import query as casequery
from bot.cases.cards import render_card
from bot.cases.timewords import due_words, more_time_words, when_words
from bot.errors import NotAllowed
from bot.i18n import t
from bot.runtime import Runtime
from handlers import rate
from handlers.common import Ctx, chat_language, clip, esc, off_loop, person_of, pressed, reply, runtime


def _render_list(rt: Runtime, lang: str, work: casequery.WorkList) -> tuple[str, InlineKeyboardMarkup | None]:
    lines = [t(lang, f"tasks.title_{work.kind}")]
    if not work.lines:
        lines.append(t(lang, "tasks.empty"))
    now = rt.clock.now()
    for line in work.lines:
        mark = "🔴 " if line.urgent else ""
        # a tap on the code opens the case (/start case-CODE in this chat)
        code = f'<a href="{esc(rt.deep_link(f"case-{line.code}"))}">{esc(line.code)}</a>'
        text = t(
            lang,
            "tasks.line",
            code=code,
            category=esc(line.category(lang)),
            state=t(lang, f"state.{line.state}"),
            at=when_words(lang, line.created_at, now, rt.settings.tz),
        )
        if line.due_at is not None:
            text += " · ⏳" + due_words(lang, line.due_at, now, rt.settings.tz)
        if line.owner_name:
            text += " · " + t(lang, "tasks.owner", owner=esc(line.owner_name))
        lines.append(mark + text)
    nav = []
    if work.page > 0:
        nav.append(InlineKeyboardButton(t(lang, "tasks.prev"), callback_data=Tasks(work.kind, work.page - 1).pack()))
    if work.has_more:
        nav.append(InlineKeyboardButton(t(lang, "tasks.next"), callback_data=Tasks(work.kind, work.page + 1).pack()))
    return "\n".join(lines), InlineKeyboardMarkup([nav]) if nav else None


async def tasks_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    kinds = casequery.list_kinds(person)
    if not kinds:
        raise NotAllowed()
    rt = runtime(context)
    lang = await chat_language(update, context, person)
    lists = await off_loop(casequery.work_lists, rt, person=person, kinds=kinds)
    if not any(work.lines for work in lists):
        await reply(update, t(lang, "tasks.nothing"))  # one answer, not one "none" per list
        return
    for work in lists:
        text, markup = _render_list(rt, lang, work)
        await reply(update, text, markup=markup)


async def on_page(update: Update, context: Ctx, button: Tasks) -> None:
    query, person = await pressed(update, context)
    kind = button.list_kind
    if kind not in casequery.list_kinds(person):
        raise NotAllowed()
    rt = runtime(context)
    lang = await chat_language(update, context, person)
    work = await off_loop(casequery.work_list, rt, person=person, kind=kind, page=button.page)
    text, markup = _render_list(rt, lang, work)
    await query.answer()
    await query.edit_message_text(text, reply_markup=markup)


def render_detail(rt: Runtime, lang: str, detail: casequery.CaseDetail) -> str:
    card = render_card(detail.view, lang=lang, purpose="detail", tz=rt.settings.tz, photo=False, now=rt.clock.now())
    lines = [card.text]
    if detail.caller is not None:  # dispatchers only (bot/cases/query.py)
        caller = detail.caller
        lines.append(
            t(lang, "case.hotline_caller", name=esc(caller.name), phone=esc(caller.phone), ticket=esc(caller.ticket_no))
        )
    lines += ["", t(lang, "case.timeline")]
    for e in detail.events:
        when = e.at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")
        label = t(lang, f"audit.{e.action}") if e.action in casequery.TIMELINE_ACTIONS else esc(e.action)
        who = f" · {esc(e.actor)}" if e.actor else ""
        note = f" — {esc(e.note)}" if e.note and e.note != "auto" else ""
        tz = rt.settings.tz
        if e.due is not None:  # the time that was set, and the one it replaced
            label += t(lang, "case.due_now", due=e.due.astimezone(tz).strftime("%m-%d %H:%M"))
            if e.previous_due is not None:
                label += t(lang, "case.due_was", due=e.previous_due.astimezone(tz).strftime("%m-%d %H:%M"))
        if e.more is not None and e.unit is not None:  # what more time was asked for
            more = more_time_words(lang, e.more, e.unit)
            if e.asked_due is not None:
                label += t(lang, "case.more_asked", more=more, due=e.asked_due.astimezone(tz).strftime("%m-%d %H:%M"))
            else:
                label += t(lang, "case.more_asked_no_due", more=more)
        lines.append(f"{when} {label}{who}{note}")
    return clip("\n".join(lines))


async def case_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    if not context.args:
        await reply(update, t(lang, "case.usage"))
        return
    detail = await off_loop(casequery.detail, runtime(context), person=person, code=context.args[0])
    if detail is None:
        await reply(update, t(lang, "case.not_visible", code=esc(context.args[0][:32])))
        return
    text = render_detail(runtime(context), lang, detail)
    if detail.ratings:  # staff only: residents never see another's rating
        text = clip(text + "\n\n" + "\n".join(rate.rating_lines(runtime(context), lang, detail.ratings)))
    await reply(update, text)
