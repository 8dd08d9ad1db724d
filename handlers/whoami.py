"""/whoami: a user's roles and scopes."""

from __future__ import annotations

from telegram import Update

from bot.i18n import t
from handlers.common import Ctx, chat_language, esc, person_of, reply


async def whoami(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    lang = await chat_language(update, context, person)
    lines = [t(lang, "whoami.title", name=esc(person.name), id=person.telegram_id)]
    if person.is_admin:
        lines.append("• " + t(lang, "role.admin"))
    for m in person.memberships:
        lines.append(
            "• "
            + t(
                lang,
                "whoami.line",
                role=t(lang, f"role.{m.role}"),
                scope=esc(m.scope_name(lang)),
                code=esc(m.scope_code),
            )
        )
    if person.is_resident:
        lines.append(t(lang, "whoami.resident"))
    lines.append(t(lang, "whoami.language", language=t(lang, f"lang.{person.language}")))
    await reply(update, "\n".join(lines))
