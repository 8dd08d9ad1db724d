"""/invite ROLE SCOPE (admins): a single-use, expiring deep link that gives a role.

/invite with no arguments offers pickers as buttons (role → street → community → grid, or
team, department, district by role: bot.people.invite_picker), ending with the same link.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot.callbacks import BadCallback, InvitePage, InvitePick
from bot.errors import AdminOnly
from bot.i18n import bilingual, t, t_plain
from bot.people import invite_picker, onboarding
from bot.people.roles import Person
from bot.runtime import Runtime
from handlers.common import Ctx, chat_language, esc, is_private, off_loop, person_of, reply, runtime


async def invite(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if not person.is_admin:
        raise AdminOnly()
    lang = await chat_language(update, context, person)  # a refusal in a group is the group's post
    if not is_private(update):
        # An invite link posted in a group could be used by anyone who reads it.
        await reply(update, t(lang, "invite.private_only"))
        return
    args = context.args or []
    if not args:
        step = invite_picker.first_step()
        await reply(update, t(lang, step.prompt), markup=_keyboard(lang, step, 0))
        return
    if len(args) != 2:
        await reply(update, t(lang, "invite.usage"))
        return
    await reply(update, await _make(runtime(context), person, args[0], args[1]))


async def _make(rt: Runtime, person: Person, role: str, scope_code: str) -> str:
    """The invite, and the words that carry its link (the same for typed and picked invites)."""
    lang = person.language
    made = await off_loop(
        onboarding.create_invite,
        rt,
        role=role,
        scope_code=scope_code,
        created_by=person.telegram_id,
        actor_user_id=person.user_id,
    )
    scope = bilingual(lang, made.scope_name_zh, made.scope_name_en)
    expires = made.expires_at.astimezone(rt.settings.tz).strftime("%Y-%m-%d %H:%M")
    return t(
        lang,
        "invite.created",
        role=t(lang, f"role.{made.role}"),
        scope=esc(scope),
        code=esc(made.scope_code),
        link=esc(made.link),
        expires=expires,
    )


def _keyboard(lang: str, step: invite_picker.Step, page: int) -> InlineKeyboardMarkup:
    """A page of the step's options, the way to its other pages, and the way back."""
    shown = invite_picker.page_of(step, page)
    buttons = [
        InlineKeyboardButton(bilingual(lang, o.name_zh, o.name_en), callback_data=o.pick.pack()) for o in shown.options
    ]
    # Two a row when the names are short enough to read side by side.
    width = 2 if all(len(b.text) <= 12 for b in buttons) else 1
    rows = [buttons[i : i + width] for i in range(0, len(buttons), width)]
    at = step.at
    if at is not None and (shown.has_prev or shown.has_next):
        nav = []
        if shown.has_prev:
            previous = InvitePage(at.role, at.level, at.ref, shown.page - 1)
            nav.append(InlineKeyboardButton(t_plain(lang, "tasks.prev"), callback_data=previous.pack()))
        if shown.has_next:
            following = InvitePage(at.role, at.level, at.ref, shown.page + 1)
            nav.append(InlineKeyboardButton(t_plain(lang, "tasks.next"), callback_data=following.pack()))
        rows.append(nav)
    if step.back is not None:
        rows.append([InlineKeyboardButton(t_plain(lang, "dispatch.btn_back"), callback_data=step.back.pack())])
    return InlineKeyboardMarkup(rows)


async def on_pick(update: Update, context: Ctx, button: InvitePick | InvitePage) -> None:
    """A pick, a page of the same choice, or the way back (a pick of the step before)."""
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(button)
    if not person.is_admin:
        raise AdminOnly()
    if not is_private(update):  # pickers are only ever sent in private: a forged press
        raise BadCallback(button)
    lang = person.language
    rt = runtime(context)
    pick, page = button, 0
    if isinstance(button, InvitePage):
        pick, page = InvitePick(button.role, button.level, button.ref), button.page
    step = await off_loop(invite_picker.next_step, rt, pick)
    if step.scope_code is not None:
        if isinstance(button, InvitePage):  # a page of a choice that ends the picking: not ours
            raise BadCallback(button)
        text = await _make(rt, person, step.role, step.scope_code)
        await query.answer()
        await query.edit_message_text(text)
        return
    if not step.options:
        await query.answer(t_plain(lang, "invite.pick_none"), show_alert=True)
        return
    place = bilingual(lang, step.place_zh, step.place_en)
    text = t(lang, step.prompt, role=t(lang, f"role.{step.role}"), place=esc(place))
    await query.answer()
    try:
        await query.edit_message_text(text, reply_markup=_keyboard(lang, step, page))
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():  # a double press shows the same page
            raise
