"""What the bot says to things it does not understand."""

from __future__ import annotations

from telegram import Update

from handlers.common import Ctx, esc, is_private, say


async def unknown_command(update: Update, context: Ctx) -> None:
    message = update.effective_message
    if message is None or not message.text:
        return
    command = message.text.split()[0]
    name, _, target = command.partition("@")
    # In groups, stay quiet about commands meant for other bots.
    if not is_private(update) and target.lower() != (context.bot.username or "").lower():
        return
    await say(update, context, "unknown.command", command=esc(name))


async def private_text(update: Update, context: Ctx) -> None:
    await say(update, context, "unknown.text")


async def private_other(update: Update, context: Ctx) -> None:
    await say(update, context, "unknown.other")
