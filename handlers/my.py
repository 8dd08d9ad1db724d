"""/my: the cases I reported, newest first."""

from __future__ import annotations

from telegram import Update

from bot.cases.mine import my_cases
from bot.i18n import t
from handlers.common import Ctx, esc, off_loop, person_of, reply, runtime


async def my_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    rt = runtime(context)
    lang = person.language
    rows = await off_loop(my_cases, rt, user_id=person.user_id, limit=20)
    if not rows:
        await reply(update, t(lang, "my.none"))
        return
    lines = [t(lang, "my.title", count=len(rows))]
    for row in rows:
        when = row.created_at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")
        lines.append(
            t(
                lang,
                "my.line",
                code=esc(row.code),
                category=esc(row.category(lang)),
                state=t(lang, f"state.{row.state}"),
                at=when,
            )
        )
    await reply(update, "\n".join(lines))
