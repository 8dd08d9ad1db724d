"""/invite ROLE SCOPE (admins): a single-use, expiring deep link that gives a role."""

from __future__ import annotations

from telegram import Update

from bot.errors import AdminOnly
from bot.i18n import bilingual, t
from bot.people import onboarding
from handlers.common import Ctx, esc, is_private, off_loop, person_of, reply, runtime


async def invite(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if not person.is_admin:
        raise AdminOnly()
    lang = person.language
    if not is_private(update):
        # An invite link posted in a group could be used by anyone who reads it.
        await reply(update, t(lang, "invite.private_only"))
        return
    args = context.args or []
    if len(args) != 2:
        await reply(update, t(lang, "invite.usage"))
        return
    rt = runtime(context)
    made = await off_loop(
        onboarding.create_invite,
        rt,
        role=args[0],
        scope_code=args[1],
        created_by=person.telegram_id,
        actor_user_id=person.user_id,
    )
    scope = bilingual(lang, made.scope_name_zh, made.scope_name_en)
    expires = made.expires_at.astimezone(rt.settings.tz).strftime("%Y-%m-%d %H:%M")
    await reply(
        update,
        t(
            lang,
            "invite.created",
            role=t(lang, f"role.{made.role}"),
            scope=esc(scope),
            code=esc(made.scope_code),
            link=esc(made.link),
            expires=expires,
        ),
    )
