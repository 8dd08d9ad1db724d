"""/invite ROLE SCOPE (admins): a single-use, expiring deep link that gives a role.

/invite with no arguments offers pickers as buttons (role → street → community → grid, or
team, department, district by role: bot.people.invite_picker), ending with the same link.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.callbacks import BadCallback, InvitePick
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
        await reply(update, t(lang, "invite.pick_role"), markup=_role_keyboard(lang))
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


def _role_keyboard(lang: str) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(t_plain(lang, f"role.{role}"), callback_data=InvitePick(role, "role", 0).pack())]
        for role in invite_picker.PICK_ROLES
    ]
    return InlineKeyboardMarkup(rows)


def _keyboard(lang: str, options: tuple[invite_picker.Option, ...]) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(bilingual(lang, o.name_zh, o.name_en), callback_data=o.pick.pack()) for o in options
    ]
    # Two a row when the names are short enough to read side by side.
    width = 2 if all(len(b.text) <= 12 for b in buttons) else 1
    return InlineKeyboardMarkup([buttons[i : i + width] for i in range(0, len(buttons), width)])


async def on_pick(update: Update, context: Ctx, pick: InvitePick) -> None:
    query = update.callback_query
    assert query is not None
    person = await person_of(update, context)
    if person is None:
        raise BadCallback(pick)
    if not person.is_admin:
        raise AdminOnly()
    if not is_private(update):  # pickers are only ever sent in private: a forged press
        raise BadCallback(pick)
    lang = person.language
    rt = runtime(context)
    step = await off_loop(invite_picker.next_step, rt, pick)
    if step.scope_code is not None:
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
    await query.edit_message_text(text, reply_markup=_keyboard(lang, step.options))
