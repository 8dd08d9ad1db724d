"""/start: welcome, and joining with an invite deep link (/start join-<code>)."""

from __future__ import annotations

from telegram import Update

from bot.i18n import bilingual, t
from bot.people import onboarding
from bot.rating import ratings as rating
from handlers import rate
from handlers.common import Ctx, esc, is_private, off_loop, person_of, reply, runtime, say
from handlers.menus import set_personal_menu
from handlers.outbox_sender import flush
from handlers.report import main_menu
from handlers.tasks import case_command


async def start(update: Update, context: Ctx) -> None:
    if not is_private(update):
        await say(update, context, "start.in_group", bot=esc(context.bot.username))
        return
    person = await person_of(update, context)
    if person is None:
        return
    payload = context.args[0] if context.args else ""
    token = rating.parse_rate_payload(payload)
    if token is not None:  # a rating link a worker gave a resident (rate-<token>)
        await rate.start_with_link(update, context, person, token)
        return
    if payload.startswith("ratereq-") and payload[len("ratereq-") :].isdigit():  # 去评价 in /my
        asked = await off_loop(
            rating.ask_again, runtime(context), person=person, request_id=int(payload[len("ratereq-") :])
        )
        if asked:
            await flush(context.application)
        else:
            await reply(update, t(person.language, "my.rate_gone"))
        return
    if payload.startswith("case-"):  # a case code tapped in /tasks or /my
        context.args = [payload[len("case-") :]]
        await case_command(update, context)
        return
    code = onboarding.parse_join_payload(payload)
    if code is not None:
        joined = await off_loop(onboarding.redeem_invite, runtime(context), code=code, user_id=person.user_id)
        lang = person.language
        scope = bilingual(lang, joined.scope_name_zh, joined.scope_name_en)
        await reply(
            update,
            t(
                lang,
                "join.already" if joined.already_member else "join.welcome",
                name=esc(person.name),
                role=t(lang, f"role.{joined.role}"),
                scope=esc(scope),
            )
            + "\n\n"
            + t(lang, "join.how_to_report")
            + "\n"
            + t(lang, "start.next_help"),
            markup=main_menu(lang),
        )
        context.__dict__.pop("_griddesk_person", None)  # the roles changed
        fresh = await person_of(update, context)
        if fresh is not None:
            await set_personal_menu(context.bot, fresh)
        return
    lang = person.language
    if payload:
        await reply(update, t(lang, "start.unknown_link"))
    if person.is_resident:
        text = t(lang, "start.welcome_resident", name=esc(person.name))
    else:
        roles = ", ".join(t(lang, f"role.{r}") for r in sorted(person.roles))
        text = t(lang, "start.welcome_member", name=esc(person.name), roles=roles)
    await reply(update, text, markup=main_menu(lang))
    await set_personal_menu(context.bot, person)
