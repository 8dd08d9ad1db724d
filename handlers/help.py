"""/help: what this person may do, and nothing they may not."""

from __future__ import annotations

from telegram import Update

from bot.i18n import t
from bot.people.roles import commands_for
from handlers.common import Ctx, chat_language, person_of, reply


async def help_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    lines = [t(lang, "help.title")]
    lines += [f"/{name} — {t(lang, f'cmd.{name}')}" for name in commands_for(person)]
    lines.append("")
    lines.append(t(lang, "help.resident_footer" if person.is_resident else "help.member_footer"))
    await reply(update, "\n".join(lines))
