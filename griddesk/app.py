"""The Application factory: PTB wired to our runtime, handlers and start-up work."""

from __future__ import annotations

import logging

from telegram import BotCommand
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder
from telegram.request import BaseRequest

from bot.i18n import SUPPORTED_LANGUAGES, t
from bot.runtime import Runtime
from handlers.jobs import schedule
from handlers.registry import register

log = logging.getLogger(__name__)

# The command menu (the "/" button), in this order for everyone; /help is role-aware.
MENU_COMMANDS = ("report", "my", "help", "whoami", "lang", "cancel", "start")


def build_application(
    rt: Runtime, *, request: BaseRequest | None = None, updates_request: BaseRequest | None = None
) -> Application:
    settings = rt.settings
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .concurrent_updates(True)
    )
    if request is not None:
        builder = builder.request(request).get_updates_request(updates_request or request)
    if settings.rate_limit:
        # Telegram allows ~30 messages a second overall and ~20 a minute per group; PTB's
        # limiter spaces our sends under those. A 429 that still happens is the outbox
        # sender's to retry (max_retries=0 here), so no message is retried twice.
        builder = builder.rate_limiter(AIORateLimiter(max_retries=0))
    app = builder.build()
    app.bot_data["rt"] = rt
    register(app)
    return app


async def _post_init(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    rt.bot_username = app.bot.username
    await set_command_menus(app)
    schedule(app)


async def set_command_menus(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    default = rt.settings.default_language
    try:
        for lang in SUPPORTED_LANGUAGES:
            commands = [BotCommand(name, t(lang, f"cmd.{name}")) for name in MENU_COMMANDS]
            # Telegram keys menus by ISO 639-1 code; the unkeyed menu is the default language's.
            await app.bot.set_my_commands(commands, language_code=lang.split("_")[0])
            if lang == default:
                await app.bot.set_my_commands(commands)
    except TelegramError:
        log.exception("could not set the command menus; carrying on")


async def _post_shutdown(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    rt.db.dispose()
