"""/my: the cases I reported, newest first."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.cases.mine import my_page
from bot.cases.timewords import when_words
from bot.i18n import t
from handlers.common import Ctx, chat_language, esc, off_loop, person_of, reply, runtime


async def my_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    rt = runtime(context)
    lang = await chat_language(update, context, person)  # /my sent in a group answers in the group's language
    page = await off_loop(my_page, rt, user_id=person.user_id, limit=20)
    rows = page.cases
    if not rows:
        await reply(update, t(lang, "my.none"))
        return
    lines = [t(lang, "my.title", count=len(rows))]
    now = rt.clock.now()
    for row in rows:
        when = when_words(lang, row.created_at, now, rt.settings.tz)
        # a tap on the code opens the case (/start case-CODE in this chat)
        code = f'<a href="{esc(rt.deep_link(f"case-{row.code}"))}">{esc(row.code)}</a>'
        lines.append(
            t(
                lang,
                "my.line",
                code=code,
                category=esc(row.category(lang)),
                state=t(lang, f"state.{row.state}"),
                at=when,
            )
        )
    # a resident who skipped rating a closed case can do it from here
    rows_markup = [
        [InlineKeyboardButton(t(lang, "my.rate_now", code=code), url=rt.deep_link(f"ratereq-{request_id}"))]
        for code, request_id in page.unrated.items()
    ]
    await reply(update, "\n".join(lines), markup=InlineKeyboardMarkup(rows_markup[:5]) if rows_markup else None)
