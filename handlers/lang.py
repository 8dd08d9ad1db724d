"""/lang: choose the language of a private chat, or (admins) of a group."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot.callbacks import BadCallback, Lang
from bot.i18n import SUPPORTED_LANGUAGES, language_name, normalise_language, t, t_plain
from bot.org import chats as chat_service
from bot.people import identity as people
from bot.people.roles import Person
from bot.runtime import Runtime
from handlers.common import Ctx, chat_language, is_private, off_loop, person_of, reply, runtime


def _keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(language_name(lang), callback_data=Lang(lang).pack()) for lang in SUPPORTED_LANGUAGES]]
    )


async def lang_command(update: Update, context: Ctx) -> None:
    person = await person_of(update, context)
    if person is None:
        return
    if context.args:
        chosen = normalise_language(context.args[0])
        if chosen is not None:
            await _apply(update, context, chosen)
            return
    lang = await chat_language(update, context, person)
    await reply(update, t(lang, "lang.choose"), markup=_keyboard())


async def _apply(update: Update, context: Ctx, chosen: str) -> None:
    person = await person_of(update, context)
    assert person is not None
    await _store(update, runtime(context), person, chosen)
    await reply(update, t(chosen, "lang.set", language=language_name(chosen)))


async def _store(update: Update, rt: Runtime, person: Person, chosen: str) -> None:
    chat = update.effective_chat
    assert chat is not None
    if is_private(update):
        await off_loop(people.set_language, rt, user_id=person.user_id, language=chosen)
    else:
        await off_loop(
            chat_service.set_chat_language,
            rt,
            person=person,
            chat_telegram_id=chat.id,
            title=chat.title or "",
            chat_type=chat.type,
            language=chosen,
        )


async def lang_pressed(update: Update, context: Ctx, button: Lang) -> None:
    query = update.callback_query
    assert query is not None
    chosen = normalise_language(button.language)
    if chosen is None:
        raise BadCallback(button)
    rt = runtime(context)
    person = await person_of(update, context)
    assert person is not None
    await _store(update, rt, person, chosen)
    text = t(chosen, "lang.set", language=language_name(chosen))
    await query.answer(t_plain(chosen, "lang.set", language=language_name(chosen)))
    await query.edit_message_text(text)
