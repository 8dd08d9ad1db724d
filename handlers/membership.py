"""The bot added to or removed from a group (my_chat_member updates)."""

from __future__ import annotations

import logging

from telegram import ChatMember, ChatMemberRestricted, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden

from bot.i18n import t
from bot.org import chats as chat_service
from bot.people import identity as people
from handlers.common import Ctx, off_loop, runtime
from handlers.outbox_sender import flush

log = logging.getLogger(__name__)

PRESENT = ("member", "administrator", "creator", "restricted")


async def bot_membership(update: Update, context: Ctx) -> None:
    change = update.my_chat_member
    if change is None:
        return
    chat = change.chat
    present = change.new_chat_member.status in PRESENT
    rt = runtime(context)
    if chat.type == ChatType.PRIVATE:
        # A user blocked (kicked) or unblocked the bot in their private chat.
        if not present:
            await off_loop(people.mark_unreachable, rt, chat.id)
        return
    was_present = change.old_chat_member.status in PRESENT
    await off_loop(
        chat_service.bot_membership_changed,
        rt,
        chat_telegram_id=chat.id,
        title=chat.title or "",
        chat_type=chat.type,
        present=present,
        actor_telegram_id=change.from_user.id if change.from_user else None,
    )
    if present and not was_present:
        if not _may_post(change.new_chat_member):
            log.info("added to %s but may not post there: no greeting", chat.id)
            return
        info = await off_loop(chat_service.chat_info, rt, chat.id)
        lang = (info.language if info else None) or rt.settings.default_language
        try:
            await context.bot.send_message(chat.id, t(lang, "group.hello"))
        except (Forbidden, BadRequest) as exc:  # rights changed meanwhile: "not enough rights"
            log.info("added to %s but may not post there: %s", chat.id, exc)
    elif not present:
        log.warning("removed from group %s (%s)", chat.id, chat.title)
        await flush(context.application)  # the command room hears of it at once


def _may_post(member: ChatMember) -> bool:
    """A restricted bot may be barred from sending messages (Telegram answers 400 then)."""
    if isinstance(member, ChatMemberRestricted):
        return bool(member.can_send_messages)
    return True
