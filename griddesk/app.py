"""The Application factory: PTB wired to our runtime, handlers and start-up work."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, Defaults
from telegram.request import BaseRequest

from bot import outbox
from bot.i18n import SUPPORTED_LANGUAGES, t
from bot.intake import locate
from bot.org import categories, index
from bot.rating import ratings as rating
from bot.runtime import Runtime
from griddesk import inbox, webhook_sender
from griddesk.inbox import InboxQueue
from griddesk.metered import MeteredApplication
from handlers.jobs import schedule
from handlers.outbox_sender import FROM_OUTBOX, start_sender, stop_sender
from handlers.registry import register
from handlers.workers import shutdown_all as shutdown_workers

log = logging.getLogger(__name__)

# A direct reply (answers, prompts) that meets a 429 is retried by PTB's limiter this many
# times; the outbox sender's sends are not (it reschedules them itself, per chat).
DIRECT_REPLY_RETRIES = 3
# …and one that meets a 5xx, a timeout or a dropped connection, after these pauses.
DIRECT_REPLY_BACKOFF_S = (0.5, 1.5, 4.0)
LOCK_CHECK_S = 2.0  # how often a polling process makes sure it still holds the poller lock (one cheap query)
LOCK_LOST = "griddesk_lock_lost"  # set in bot_data when polling stopped for that reason
# Set when griddesk/serve.py runs the application itself (not run_polling/run_webhook).
SERVED = "served_with_http"
NOT_RETRIED = frozenset({"getUpdates", "getMe", "close", "logOut"})  # PTB's own loops retry these
# At shutdown the sender gets this long to send what is due before the bot goes away.
SHUTDOWN_DRAIN_S = 10.0

# The command menu (the "/" button), in this order for everyone; /help is role-aware.
MENU_COMMANDS = ("report", "my", "help", "whoami", "lang", "cancel", "start")


def build_application(
    rt: Runtime, *, request: BaseRequest | None = None, updates_request: BaseRequest | None = None
) -> Application:
    settings = rt.settings
    builder = (
        ApplicationBuilder()
        .application_class(MeteredApplication)
        .token(settings.telegram_bot_token)
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .post_init(_post_init)
        .post_stop(_post_stop)
        .post_shutdown(_post_shutdown)
        .concurrent_updates(True)
        # Every message GridDesk writes is Telegram HTML (bot/i18n.py); links in cards and
        # notices are map and rating links, which need no preview card.
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
    )
    inbox_queue = InboxQueue()  # updates stored before Telegram hears we have them
    builder = builder.update_queue(inbox_queue)
    if request is not None:
        builder = builder.request(request).get_updates_request(updates_request or request)
    else:
        # Stopping, PTB cancels the long poll and calls getUpdates once more to confirm what
        # it fetched: with one connection, that call can find it not yet given back
        # (PoolTimeout, and a traceback at every other shutdown).
        builder = builder.get_updates_connection_pool_size(2)
    if settings.rate_limit:
        # Telegram allows ~30 messages a second overall and ~20 a minute per group; PTB's
        # limiter spaces all our calls under those (the outbox sender also paces itself per
        # chat, so it rarely waits here).
        app: Application = builder.rate_limiter(RetryingRateLimiter()).build()
    else:
        # No pacing (a fake or a local server without limits), but a direct reply is still
        # retried through 5xx answers, timeouts, dropped connections and 429s.
        app = builder.rate_limiter(RetryingRateLimiter(throttle=False)).build()
    app.bot_data["rt"] = rt
    inbox_queue.app = app
    register(app)
    return app


class RetryingRateLimiter(AIORateLimiter):
    """PTB's limiter, retrying a direct reply after a 429 but never an outbox send.

    AIORateLimiter reads per-call `rate_limit_args` as an int of retries and treats 0 as
    "use the default" (`rate_limit_args or max_retries`), so a per-call 0 cannot undo a
    default of 3. Hence the default stays 0 and direct replies get DIRECT_REPLY_RETRIES
    here; the outbox sender (FROM_OUTBOX set in its send tasks) handles its own 429s.
    """

    def __init__(self, *, direct_retries: int = DIRECT_REPLY_RETRIES, throttle: bool = True, **kwargs: Any) -> None:
        super().__init__(max_retries=0, **kwargs)
        self.direct_retries = direct_retries
        self.throttle = throttle

    async def _once(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        if self.throttle:
            return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
        for attempt in range((rate_limit_args or 0) + 1):  # 429s, as AIORateLimiter would
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt >= (rate_limit_args or 0):
                    raise
                await asyncio.sleep(min(exc._retry_after.total_seconds(), 60.0) + 0.1)
        raise AssertionError("unreachable")

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        if FROM_OUTBOX.get() or endpoint in NOT_RETRIED:
            return await self._once(callback, args, kwargs, endpoint, data, rate_limit_args)
        if rate_limit_args is None:
            rate_limit_args = self.direct_retries
        # A direct reply meeting a 5xx, a timeout or a dropped connection is tried again
        # after a short pause (429s are retried by AIORateLimiter above).
        for pause in (*DIRECT_REPLY_BACKOFF_S, None):
            try:
                return await self._once(callback, args, kwargs, endpoint, data, rate_limit_args)
            except BadRequest:
                raise
            except NetworkError as exc:  # TimedOut included
                if pause is None:
                    raise
                log.info("%s failed (%s); trying again in %s s", endpoint, exc, pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")


async def _post_init(app: Application) -> None:
    rt: Runtime = app.bot_data["rt"]
    rt.bot_username = app.bot.username
    await asyncio.to_thread(warm_caches, rt)
    await set_command_menus(app)
    schedule(app)
    if app.bot_data.get("poller_lock") is not None:  # the one sending process (griddesk run)
        recovered = await asyncio.to_thread(outbox.recover_after_crash, rt)
        if recovered:
            log.info("%s outbox row(s) held by a stopped process are due again", recovered)
    start_sender(app)  # one background sender per process, woken by flush()
    webhook_sender.start(app)  # and one for webhook events, woken by the same flush()
    await inbox.resume(app)  # updates stored by a run that died before handling them
    if app.bot_data.get(SETTLE_HEAP):
        settle_heap()
    if app.bot_data.get("poller_lock") is not None:
        app.bot_data["lock_watch"] = asyncio.get_running_loop().create_task(_watch_lock(app), name="griddesk-lock")


# A long-running process (griddesk run) sets this before it starts: see settle_heap.
SETTLE_HEAP = "settle_heap"
# The collector's youngest generation is collected after this many new container objects
# (Python's default: 700, dozens of collections a second in a busy bot, and every tenth of
# those tenth a full one).
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once a long-running process is ready: what start-up built (modules, the organisation,
    PTB, SQLAlchemy's metadata) lives as long as the process, so the collector stops walking
    it, and it collects young objects less often. Full collections over that heap paused
    every update in flight, up to 170 ms under load (benchmarks/open_loop)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def warm_caches(rt: Runtime) -> None:
    """Read the organisation, the catalogue and the grid shapes before the first update, so
    the handlers can ask them on the event loop without a thread hop. (After an import
    clears them, the first asker reads them again: a few milliseconds, once.)"""
    index.org(rt)
    categories.catalogue(rt)
    locate.grid_index(rt)
    rating.remember_windows(rt)  # who may be writing a comment on their rating


async def _watch_lock(app: Application) -> None:
    """Never two pollers: if this process's hold on the poller lock is gone (its database
    connection died, so a standby may have taken over), stop polling at once."""
    lock = app.bot_data["poller_lock"]
    while True:
        await asyncio.sleep(LOCK_CHECK_S)
        if not await asyncio.to_thread(lock.still_held):
            log.error("the poller lock is no longer held by this process: stopping polling")
            app.bot_data[LOCK_LOST] = True
            if not app.bot_data.get(SERVED):  # griddesk/serve.py stops its own server on LOCK_LOST
                app.stop_running()
            return


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


async def _post_stop(app: Application) -> None:
    # Updates and jobs have stopped, the bot is still up: send what is due, then stop.
    try:
        await asyncio.wait_for(inbox.wait_idle(app), SHUTDOWN_DRAIN_S)
    except TimeoutError:
        log.warning("updates still being handled at shutdown; they are processed again on the next start")
    await stop_sender(app, drain_timeout=SHUTDOWN_DRAIN_S)
    await webhook_sender.stop(app)


async def _post_shutdown(app: Application) -> None:
    watch = app.bot_data.pop("lock_watch", None)
    if watch is not None:
        watch.cancel()
    await stop_sender(app)  # if post_stop did not run (start-up failed half way)
    await webhook_sender.stop(app)
    shutdown_workers()  # the photo decoders' and chart drawers' processes
    rt: Runtime = app.bot_data["rt"]
    rt.db.dispose()
