"""/bind CODE (admins, in a group): this group now serves a team, command room or department."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, Forbidden

from bot.errors import AdminOnly
from bot.i18n import bilingual, t
from bot.org import chats as chat_service
from bot.org.chats import GROUP_TYPES
from handlers.common import Ctx, chat_language, esc, off_loop, person_of, reply, runtime

log = logging.getLogger(__name__)


async def bot_can_post(context: Ctx, chat_id: int) -> bool:
    try:
        member = await context.bot.get_chat_member(chat_id, context.bot.id)
    except (Forbidden, BadRequest):
        return False
    if member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER):
        return True
    if member.status == ChatMemberStatus.MEMBER:
        return True
    if member.status == ChatMemberStatus.RESTRICTED:
        return bool(getattr(member, "can_send_messages", False))
    return False


async def bind(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    chat = update.effective_chat
    if person is None or chat is None:
        return
    if not person.is_admin:
        raise AdminOnly()
    lang = await chat_language(update, context, person)
    if chat.type not in GROUP_TYPES:
        await reply(update, t(lang, "bind.not_group"))
        return
    if len(context.args or []) != 1:
        await reply(update, t(lang, "bind.usage"))
        return
    if not await bot_can_post(context, chat.id):
        await _tell_privately(
            context, person.telegram_id, t(person.language, "bind.cannot_post", chat=esc(chat.title or chat.id))
        )
        return
    bound = await off_loop(
        chat_service.bind_chat,
        runtime(context),
        person=person,
        chat_telegram_id=chat.id,
        title=chat.title or "",
        chat_type=chat.type,
        unit_code=context.args[0],  # type: ignore[index]
    )
    name = bilingual(lang, bound.unit_name_zh, bound.unit_name_en)
    text = t(lang, "bind.done", unit=esc(name), code=esc(bound.unit_code), kind=t(lang, f"unit.{bound.unit_kind}"))
    if bound.replaced_chat_id is not None:
        text += "\n" + t(lang, "bind.replaced")
    try:
        await reply(update, text)
    except (Forbidden, BadRequest):
        log.warning("bound chat %s but cannot post there", chat.id)
        await _tell_privately(
            context, person.telegram_id, t(person.language, "bind.cannot_post", chat=esc(chat.title or chat.id))
        )


async def _tell_privately(context: Ctx, telegram_id: int, text: str) -> None:
    try:
        await context.bot.send_message(telegram_id, text)
    except (Forbidden, BadRequest):
        log.info("could not tell %s privately either", telegram_id)
