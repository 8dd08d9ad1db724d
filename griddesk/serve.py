"""`griddesk run --http HOST:PORT`: the PTB Application and the HTTP app in one event loop.

Without --webhook the application polls Telegram; with it, Telegram posts to our own route
(PTB's custom-webhook pattern) and the secret token is checked there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import uvicorn
from telegram import Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application

from bot.settings import Settings, SettingsError
from griddesk.startup import StartupError, prepare
from storage.db import PollerLock

log = logging.getLogger("griddesk")
STANDBY_RETRY_S = 5


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the signal ends serving, then the bot stops
    in order (uvicorn would raise the signal again once it returned, mid-shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop_serving(self) -> None:
        self.should_exit = True


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError("--http must be HOST:PORT, like 127.0.0.1:8080.")
    return host.strip("[]") or "0.0.0.0", int(port)


def run_with_http(settings: Settings, *, http: str, webhook: str | None) -> int:
    from griddesk.app import build_application
    from griddesk.cli import _bot_username

    host, port = parse_listen(http)
    path = None
    if webhook:
        parsed = urlparse(webhook)
        if parsed.scheme != "https" or not parsed.hostname:
            raise SettingsError("--webhook must be a public https:// URL, like https://bot.example.org/telegram.")
        path = parsed.path or "/"
    settings.require_token()
    rt = prepare(settings)
    lock = PollerLock(rt.db)
    if not lock.try_acquire():
        log.info("another GridDesk process is polling this bot; standing by until it stops")
        while not lock.try_acquire():
            time.sleep(STANDBY_RETRY_S)
    asyncio.run(_bot_username(settings))
    app = build_application(rt)
    secret = settings.webhook_secret or secrets.token_urlsafe(32)
    try:
        asyncio.run(_serve(app, host, port, webhook=webhook, path=path, secret=secret))
    except InvalidToken:
        raise SettingsError("Telegram refused TELEGRAM_BOT_TOKEN: set it to the token @BotFather gave you.") from None
    except TelegramError as exc:
        raise StartupError(f"Could not reach the Bot API at {settings.telegram_api_base_url}: {exc}.") from None
    finally:
        lock.release()
    return 0


async def _serve(app: Application, host: str, port: int, *, webhook: str | None, path: str | None, secret: str) -> None:
    from griddesk.http.app import build_http_app

    http_app = build_http_app(app, webhook_path=path, webhook_secret=secret if webhook else None)
    await app.initialize()
    if app.post_init:
        await app.post_init(app)
    assert app.updater is not None
    if webhook:
        await app.bot.set_webhook(webhook, secret_token=secret, allowed_updates=Update.ALL_TYPES)
        log.info("Telegram posts updates to %s; HTTP on %s:%s", webhook, host, port)
    else:
        await app.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        log.info("long polling, and HTTP on %s:%s", host, port)
    await app.start()
    server = _Server(uvicorn.Config(http_app, host=host, port=port, lifespan="off", log_level="info"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # ours, not uvicorn's: it re-raises them after serving
        loop.add_signal_handler(sig, server.stop_serving)
    try:
        await server.serve()  # until SIGINT/SIGTERM
    finally:
        if app.updater.running:
            await app.updater.stop()
        await app.stop()
        if app.post_stop:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)
