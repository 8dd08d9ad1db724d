"""All handler registration, in one place and in order.

PTB runs the first matching handler of each group, so the order below is the order of
precedence: features first, then the fallbacks that answer whatever nothing else took.
Group -1 watches the bot's own membership of chats.
"""

from __future__ import annotations

from telegram.ext import Application, CallbackQueryHandler, ChatMemberHandler, CommandHandler, MessageHandler, filters

from handlers import bind, buttons, errors, fallback, help, invite, lang, membership, start, whoami


def register(app: Application) -> None:
    app.add_handler(ChatMemberHandler(membership.bot_membership, ChatMemberHandler.MY_CHAT_MEMBER), group=-1)

    app.add_handler(CommandHandler("start", start.start))
    app.add_handler(CommandHandler("help", help.help_command))
    app.add_handler(CommandHandler("lang", lang.lang_command))
    app.add_handler(CommandHandler("whoami", whoami.whoami))
    app.add_handler(CommandHandler("invite", invite.invite))
    app.add_handler(CommandHandler("bind", bind.bind))
    app.add_handler(CommandHandler("cancel", fallback.cancel))

    buttons.route("lang", lang.lang_pressed)
    app.add_handler(CallbackQueryHandler(buttons.on_button))

    app.add_handler(MessageHandler(filters.COMMAND, fallback.unknown_command))
    private = filters.ChatType.PRIVATE & ~filters.UpdateType.EDITED
    app.add_handler(MessageHandler(private & filters.TEXT, fallback.private_text))
    app.add_handler(MessageHandler(private & ~filters.TEXT & ~filters.StatusUpdate.ALL, fallback.private_other))

    app.add_error_handler(errors.on_error)
