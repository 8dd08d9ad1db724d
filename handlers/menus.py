"""The command menu ("/" button) of one person's private chat, set for their roles.

The default menu (griddesk/app.py) is what a resident sees; a member gets a menu scoped to
their chat (``BotCommandScopeChat``) in their language with the commands of their roles
(staff ``/tasks``, dispatchers ``/stats``, administrators ``/invite`` …), set when they join
and again at each ``/start``."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from bot.i18n import t_plain
from bot.people.roles import Person, commands_for

log = logging.getLogger(__name__)


def menu_commands(person: Person) -> list[BotCommand]:
    lang = person.language
    out = []
    for name in commands_for(person):
        description = t_plain(lang, f"cmd.{name}")
        if description and description != f"cmd.{name}":
            out.append(BotCommand(name, description))
    return out


async def set_personal_menu(bot: Bot, person: Person) -> None:
    if person.is_resident:
        return
    try:
        await bot.set_my_commands(menu_commands(person), scope=BotCommandScopeChat(person.telegram_id))
    except TelegramError as exc:  # the menu is a convenience: never fail a welcome for it
        log.info("could not set the command menu of %s: %s", person.telegram_id, exc)
