"""/revoke USER|ROLE [SCOPE] (admins), and members leaving a bound group (chat_member)."""

from __future__ import annotations

import logging

from telegram import Update

from bot.errors import AdminOnly
from bot.i18n import t
from bot.people import revoke as revocation
from handlers.common import Ctx, chat_language, esc, off_loop, person_of, reply, runtime
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)

GONE = ("left", "kicked")


async def revoke_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if not person.is_admin:
        raise AdminOnly()
    lang = await chat_language(update, context, person)  # the answer is a post where it was asked
    args = context.args or []
    if len(args) not in (1, 2):
        await reply(update, t(lang, "revoke.usage"))
        return
    rt = runtime(context)
    done = await off_loop(revocation.revoke, rt, by=person, who=args[0], scope=args[1] if len(args) == 2 else None)
    await flush(context.application)
    lines = [
        t(lang, "revoke.done_line", name=esc(r.name), role=t(lang, f"role.{r.role}"), code=esc(r.scope_code))
        for r in done
    ]
    await reply(update, t(lang, "revoke.done") + "\n" + "\n".join(lines))


async def member_changed(update: Update, context: Ctx) -> None:
    """Somebody left a group or was removed from it: a bound group's roles end for them."""
    change = update.chat_member
    if change is None or change.new_chat_member.user.is_bot:
        return
    if change.new_chat_member.status not in GONE or change.old_chat_member.status in GONE:
        return
    rt = runtime(context)
    done = await off_loop(
        revocation.left_group,
        rt,
        chat_telegram_id=change.chat.id,
        user_telegram_id=change.new_chat_member.user.id,
    )
    if done:
        log.info("%s left group %s: %s role(s) revoked", change.new_chat_member.user.id, change.chat.id, len(done))
        await flush(context.application)
