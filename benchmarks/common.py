"""What every benchmark needs: a fresh database with the sample organisation, the real
Application on the fake Bot API, a timer, percentiles, and a bare echo bot to compare."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot.clock import Clock
from bot.org.org_file import DEFAULT_ORG_FILE, load_org_file
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk.app import build_application, settle_heap
from storage.db import Database, is_sqlite
from storage.migrate import upgrade
from storage.org_import import import_org
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser

ADMIN = 900001
T = TypeVar("T")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Timed:
    latencies: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the event loop thread's CPU time in each (awaited alone)

    async def __call__(self, awaitable: Awaitable[T]) -> T:
        start, cpu = time.perf_counter(), time.thread_time()
        result = await awaitable
        self.latencies.append(time.perf_counter() - start)
        self.cpu.append(time.thread_time() - cpu)
        return result

    def summary(self) -> str:
        lat = self.latencies
        return f"median {statistics.median(lat) * 1000:7.1f} ms   p99 {percentile(lat, 0.99) * 1000:7.1f} ms"


@dataclass
class Bench:
    db: Database
    rt: Runtime
    app: Application
    tg: FakeTelegram
    admin: FakeUser


def private_schema_url(db_url: str, schema: str) -> str:
    """The PostgreSQL URL with ``schema`` (emptied now) as its search path: benchmarks get a
    clean slate without dropping anything else kept in the database (benchmarks/worklists.py
    keeps a million cases in the public schema of the same ``bench`` database)."""
    server = Database(db_url)
    with server.engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    server.dispose()
    return db_url + ("&" if "?" in db_url else "?") + f"options=-csearch_path%3D{schema}"


def _outbox_hooks(app: Application, drain_outbox: bool) -> dict[str, Any]:
    """FakeTelegram arguments that make each update's turn include the sends it caused: the
    outbox sender drained after every update (unless ``drain_outbox`` is False: then sends
    happen in the background as in production), its own long-lived tasks not waited for."""
    try:
        from handlers import outbox_sender
    except ImportError:  # pragma: no cover - before the outbox sender existed
        return {}
    drain = getattr(outbox_sender, "drain", None)
    if drain is None:
        return {}
    ignore = {"ignore_task": lambda task: task.get_name().startswith("griddesk-")}
    if not drain_outbox:
        return ignore

    async def after_update() -> None:
        await drain(app)

    return {"after_update": after_update, **ignore}


async def start(
    db_url: str, media: Path, *, schema: str = "griddesk_bench", drain_outbox: bool = True, **settings: Any
) -> Bench:
    if not is_sqlite(db_url):
        db_url = private_schema_url(db_url, schema)
    db = Database(db_url)
    upgrade(db)
    with db.session() as s:
        import_org(s, load_org_file(DEFAULT_ORG_FILE))
    config = Settings(
        TELEGRAM_BOT_TOKEN="123456:bench",
        DATABASE_URL=db_url,
        GRIDDESK_MEDIA_DIR=str(media),
        GRIDDESK_ADMIN_IDS=str(ADMIN),
        GRIDDESK_WORKER_REPORTS_PER_HOUR=100_000,
        GRIDDESK_RESIDENT_REPORTS_PER_HOUR=100_000,
        GRIDDESK_RATE_LIMIT="false",
        _env_file=None,
        **settings,
    )
    rt = Runtime(settings=config, db=db, clock=Clock(), bot_username="GridDeskTestBot")
    api = FakeBotAPI()
    app = build_application(rt, request=api)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    settle_heap()  # as `griddesk run` does once it is ready
    tg = FakeTelegram(app, api, settle_timeout=300, **_outbox_hooks(app, drain_outbox))
    admin = tg.user(ADMIN, "admin", language_code="zh-hans")
    return Bench(db, rt, app, tg, admin)


async def stop(bench: Bench) -> None:
    try:
        from handlers.outbox_sender import stop_sender
    except ImportError:  # pragma: no cover - before the outbox sender existed
        pass
    else:
        await stop_sender(bench.app)  # what post_stop does in a running bot
    await bench.app.shutdown()
    bench.db.dispose()


class EchoBot:
    """A bare PTB echo bot on the same fake: the yardstick the machine's speed cancels in.
    Started beside the bot under test, it can be sampled between that bot's updates, so
    both are timed on the same machine at the same moments (this one's speed drifts)."""

    def __init__(self) -> None:
        self.api = FakeBotAPI()
        self.app = (
            ApplicationBuilder()
            .token("123456:echo")
            .request(self.api)
            .get_updates_request(self.api)
            .concurrent_updates(True)
            .build()
        )
        self.app.add_handler(MessageHandler(filters.TEXT, self._echo))
        self.tg: FakeTelegram | None = None

    @staticmethod
    async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "")

    async def start(self) -> None:
        await self.app.initialize()
        self.tg = FakeTelegram(self.app, self.api, settle_timeout=300)

    async def sample(self, timed: Timed, updates: int, users: int = 1) -> None:
        assert self.tg is not None, "start() first"
        people = [self.tg.user(20_000 + i, f"u{i}") for i in range(users)]

        async def talk(user: FakeUser) -> None:
            for n in range(updates):
                await timed(user.send(f"hello {n}"))

        await asyncio.gather(*(talk(u) for u in people))

    async def stop(self) -> None:
        await self.app.shutdown()


async def run_echo(users: int, updates_each: int) -> tuple[float, Timed]:
    """The echo bot alone: `users` people sending `updates_each` texts each."""
    bot = EchoBot()
    await bot.start()
    timed = Timed()
    began = time.perf_counter()
    await bot.sample(timed, updates_each, users)
    elapsed = time.perf_counter() - began
    await bot.stop()
    return elapsed, timed


def print_echo_comparison(elapsed: float, timed: Timed, echo_elapsed: float, echo: Timed) -> None:
    """The echo bot's line and the ratios: the figures the machine's speed cancels out of."""
    n, m = len(timed.latencies), len(echo.latencies)
    print(
        f"Bare PTB echo bot, same fake, {m} updates: updates/s {m / echo_elapsed:7.1f}   per update: {echo.summary()}"
    )
    print(
        f"Ratio echo/GridDesk: updates/s {(m / echo_elapsed) / (n / elapsed):.1f}x, "
        f"median latency {statistics.median(timed.latencies) / statistics.median(echo.latencies):.1f}x"
    )
