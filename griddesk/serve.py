"""`griddesk run --http HOST:PORT`: the PTB Application and the HTTP app in one event loop.

Without --webhook the application polls Telegram; with it, Telegram posts to our own route
(PTB's custom-webhook pattern) and the secret token is checked there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from urllib.parse import urlparse

import uvicorn
from telegram import Update
from telegram.ext import Application

from bot.settings import SettingsError

log = logging.getLogger("griddesk")


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


async def serve(app: Application, host: str, port: int, *, webhook: str | None, secret: str) -> None:
    """Run the application (polling, or Telegram posting to `webhook`) and the HTTP app until
    SIGINT/SIGTERM, or until this process loses the poller lock."""
    from griddesk.app import LOCK_LOST, SERVED
    from griddesk.http.app import build_http_app

    app.bot_data[SERVED] = True

    path = (urlparse(webhook).path or "/") if webhook else None
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

    async def watch_lock() -> None:
        while not app.bot_data.get(LOCK_LOST):
            await asyncio.sleep(1)
        server.stop_serving()  # never two pollers: griddesk/app.py saw the lock go

    watcher = loop.create_task(watch_lock(), name="griddesk-http-lock")
    try:
        await server.serve()  # until SIGINT/SIGTERM
    finally:
        watcher.cancel()
        if app.updater.running:
            await app.updater.stop()
        await app.stop()
        if app.post_stop:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)
