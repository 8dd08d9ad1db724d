"""The command room's buttons on a new case's card, and the /duplicate and /reject commands.

Buttons (bot.callbacks; all re-checked on every press by bot.cases.dispatch):
  Dispatch(case, unit)                dispatch to that team
  DispatchMenu("teams", case)         list the street's teams
  DispatchMenu("originals", case)     list likely originals, each a Duplicate(case, original)
  DispatchMenu("reasons", case)       list preset reasons, each a Reject(case, reason)
  DispatchMenu("back", case)          back to the card's buttons
"""

from __future__ import annotations

import dataclasses
import logging

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, TelegramError

from bot.callbacks import BadCallback, Dispatch, DispatchMenu, Duplicate, Reject
from bot.cases import dispatch
from bot.cases.cards import buttons_for, case_view
from bot.i18n import N_, t, t_plain
from handlers.common import Ctx, chat_language, esc, off_loop, person_of, reply, runtime
from handlers.outbox_sender import flush
from storage.models import CaseState

log = logging.getLogger(__name__)

SNIPPET = 16

Rows = list[list[tuple[str, str]]]


# --- buttons ----------------------------------------------------------------------


async def on_button(update: Update, context: Ctx, button: Dispatch | Duplicate | Reject | DispatchMenu) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    rt = runtime(context)
    case_id = button.case_id
    menu = button.menu if isinstance(button, DispatchMenu) else None
    try:
        if isinstance(button, Dispatch):
            done = await off_loop(dispatch.dispatch_case, rt, person, case_id=case_id, unit_id=button.unit_id)
            await _decided(
                update, context, done, _done_text(person.language, done, html=False), alert=not done.team_notified
            )
            return
        if isinstance(button, Duplicate):
            done = await off_loop(dispatch.mark_duplicate, rt, person, case_id=case_id, original_id=button.original_id)
            await _decided(update, context, done, _done_text(person.language, done, html=False))
            return
        if isinstance(button, Reject):
            done = await off_loop(dispatch.reject_case, rt, person, case_id=case_id, reason=button.reason)
            await _decided(update, context, done, _done_text(person.language, done, html=False))
            return
        lang = await chat_language(update, context, person)  # the menus' buttons speak the group's language
        if menu == "teams":
            teams = await off_loop(dispatch.team_options, rt, person, case_id=case_id)
            rows: Rows = [
                [(("⭐ " if team.suggested else "") + team.name.get(lang), Dispatch(case_id, team.unit_id).pack())]
                for team in teams
            ]
            await query.answer(t_plain(person.language, "dispatch.pick_team"))
            await _show(query, rows + _back(lang, case_id))
        elif menu == "originals":
            code, originals = await off_loop(dispatch.original_options, rt, person, case_id=case_id)
            rows = [[(_original_label(lang, o), Duplicate(case_id, o.case_id).pack())] for o in originals]
            hint = t_plain(
                person.language, "dispatch.pick_original" if originals else "dispatch.no_originals", code=code
            )
            await query.answer(hint, show_alert=not originals)
            await _show(query, rows + _back(lang, case_id))
        elif menu == "reasons":
            code = await off_loop(dispatch.check_decision, rt, person, case_id=case_id, action="reject")
            rows = [[(t(lang, label), Reject(case_id, reason).pack())] for reason, label in dispatch.REASONS.items()]
            await query.answer(t_plain(person.language, "dispatch.pick_reason", code=code))
            await _show(query, rows + _back(lang, case_id))
        elif menu == "back":
            await off_loop(dispatch.check_decision, rt, person, case_id=case_id, action="dispatch")
            view = await off_loop(case_view, rt, case_id)
            if view is None:
                raise BadCallback(button)
            # The card's own decision buttons (a returned case is decided like a new one).
            await query.answer()
            await _show(query, buttons_for(dataclasses.replace(view, state=CaseState.REPORTED), lang, "command"))
        else:
            raise BadCallback(button)
    except (dispatch.UnknownCase, dispatch.UnknownTeam, dispatch.UnknownReason, dispatch.SameCase):
        raise BadCallback(button) from None  # forged or out of date: the stale answer
    except dispatch.CaseMovedOn as moved:
        await query.answer(moved_on_text(person.language, moved.outcome, html=False), show_alert=True)
        await off_loop(dispatch.refresh_cards, rt, case_id=case_id)
        await _late(update, context, case_id)


def _back(lang: str, case_id: int) -> Rows:
    return [[(t(lang, "dispatch.btn_back"), DispatchMenu("back", case_id).pack())]]


def _original_label(lang: str, option: dispatch.OriginalOption) -> str:
    text = " ".join(option.description.split())
    snippet = text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…"
    return t(lang, "dispatch.btn_original", code=option.code, metres=round(option.distance_m), description=snippet)


async def _show(query: CallbackQuery, rows: Rows) -> None:
    """Swap the keyboard of the pressed message in place."""
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )
    try:
        await query.edit_message_reply_markup(markup if rows else None)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():  # a double press shows the same menu
            raise


async def _decided(update: Update, context: Ctx, done: dispatch.Decided, toast: str, *, alert: bool = False) -> None:
    """After a decision: answer, send what the service queued, and make sure the pressed
    message keeps no buttons that no longer apply (the decision knows the case's cards)."""
    query = update.callback_query
    assert query is not None
    await query.answer(toast, show_alert=alert)
    await flush(context.application)
    message = query.message
    if message is not None and not done.is_card(message.chat.id, message.message_id):
        await _clear_buttons(query)


async def _late(update: Update, context: Ctx, case_id: int) -> None:
    """After a press on a case somebody else decided first (already answered): as above,
    the case's cards read now."""
    query = update.callback_query
    assert query is not None
    await flush(context.application)
    message = query.message
    if message is None:
        return
    if not await off_loop(
        dispatch.is_posted_card,
        runtime(context),
        case_id=case_id,
        chat_id=message.chat.id,
        message_id=message.message_id,
    ):
        await _clear_buttons(query)


async def _clear_buttons(query: CallbackQuery) -> None:
    """The posted card was re-rendered by the outbox; any other copy (an old card, a card in
    a group that is no longer bound) just loses its spent buttons."""
    try:
        await query.edit_message_reply_markup(None)
    except TelegramError as exc:
        log.debug("could not clear the buttons of a stale card: %s", exc)


# --- what to say ------------------------------------------------------------------


def _done_text(lang: str, done: dispatch.Decided, *, html: bool) -> str:
    """HTML for a message; plain text (`html=False`) for a pop-up, which Telegram shows as is."""
    q, say = (esc, t) if html else (str, t_plain)
    if done.state == CaseState.DUPLICATE:
        return say(lang, N_("dispatch.duplicate_done"), code=q(done.code), original=q(done.original))
    if done.state == CaseState.REJECTED:
        return say(lang, N_("dispatch.rejected_done"), code=q(done.code), reason=q(done.note))
    team = q(done.team.get(lang)) if done.team else "—"
    return say(
        lang, N_("dispatch.done") if done.team_notified else N_("dispatch.done_no_chat"), code=q(done.code), team=team
    )


def moved_on_text(lang: str, outcome: dispatch.Outcome, *, html: bool) -> str:
    """Who got there first, and what they decided."""
    q, say = (esc, t) if html else (str, t_plain)
    code = q(outcome.code)
    if outcome.state == CaseState.DUPLICATE and outcome.original:
        return say(
            lang,
            N_("dispatch.already_duplicate"),
            code=code,
            original=q(outcome.original),
            actor=q(outcome.actor or "—"),
        )
    if outcome.state == CaseState.REJECTED:
        return say(
            lang, N_("dispatch.already_rejected"), code=code, actor=q(outcome.actor or "—"), note=q(outcome.note or "—")
        )
    if outcome.team is not None:
        actor = q(outcome.actor) if outcome.actor else say(lang, N_("dispatch.by_auto"))
        return say(lang, N_("dispatch.already_dispatched"), code=code, team=q(outcome.team.get(lang)), actor=actor)
    return say(lang, N_("case.moved_on"), code=code)


# --- commands ---------------------------------------------------------------------


async def duplicate_command(update: Update, context: Ctx) -> None:
    """/duplicate CODE ORIGINAL_CODE: for an original the buttons did not offer."""
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    args = context.args or []
    if len(args) != 2:
        await reply(update, t(lang, "dispatch.duplicate_usage"))
        return
    rt = runtime(context)
    case_id = await off_loop(dispatch.find_case, rt, person, args[0])
    original_id = await off_loop(dispatch.find_case, rt, person, args[1])
    try:
        done = await off_loop(dispatch.mark_duplicate, rt, person, case_id=case_id, original_id=original_id)
    except dispatch.CaseMovedOn as moved:
        await reply(update, moved_on_text(lang, moved.outcome, html=True))
        await off_loop(dispatch.refresh_cards, rt, case_id=case_id)
    else:
        await reply(update, _done_text(lang, done, html=True))
    await flush(context.application)


async def reject_command(update: Update, context: Ctx) -> None:
    """/reject CODE reason…: rejected with the dispatcher's own words."""
    person = await person_of(update, context)
    message = update.effective_message
    if person is None or message is None or message.text is None:
        return
    lang = await chat_language(update, context, person)
    parts = message.text.split(maxsplit=2)  # keep the reason's own spacing and line breaks
    if len(parts) < 3 or not parts[2].strip():
        await reply(update, t(lang, "dispatch.reject_usage"))
        return
    rt = runtime(context)
    case_id = await off_loop(dispatch.find_case, rt, person, parts[1])
    try:
        done = await off_loop(dispatch.reject_case, rt, person, case_id=case_id, text=parts[2])
    except dispatch.CaseMovedOn as moved:
        await reply(update, moved_on_text(lang, moved.outcome, html=True))
        await off_loop(dispatch.refresh_cards, rt, case_id=case_id)
    else:
        await reply(update, _done_text(lang, done, html=True))
    await flush(context.application)
