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
from griddesk.app import build_application
from storage.db import Database, drop_everything
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

    async def __call__(self, awaitable: Awaitable[T]) -> T:
        start = time.perf_counter()
        result = await awaitable
        self.latencies.append(time.perf_counter() - start)
        return result

    def summary(self) -> str:
        lat = self.latencies
        return f"median {statistics.median(lat) * 1000:7.1f} ms   p99 {percentile(lat, 0.99) * 1000:7.1f} ms"


@dataclass
class Bench:
    db: Database
    rt: Runtime
    app: Application  # type: ignore[type-arg]
    tg: FakeTelegram
    admin: FakeUser


async def start(db_url: str, media: Path, **settings: Any) -> Bench:
    db = Database(db_url)
    if not db.sqlite:
        drop_everything(db)  # the benchmark's own database, emptied on purpose
    upgrade(db)
    with db.session() as s:
        import_org(s, load_org_file(DEFAULT_ORG_FILE))
    config = Settings(
        TELEGRAM_BOT_TOKEN="123456:bench",
        DATABASE_URL=db_url,
        GRIDDESK_MEDIA_DIR=str(media),
        GRIDDESK_ADMIN_IDS=str(ADMIN),
        GRIDDESK_WORKER_REPORTS_PER_HOUR=100_000,
        GRIDDESK_RATE_LIMIT="false",
        _env_file=None,
        **settings,
    )
    rt = Runtime(settings=config, db=db, clock=Clock(), bot_username="GridDeskTestBot")
    api = FakeBotAPI()
    app = build_application(rt, request=api)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    tg = FakeTelegram(app, api, settle_timeout=300)
    admin = tg.user(ADMIN, "admin", language_code="zh-hans")
    return Bench(db, rt, app, tg, admin)


async def stop(bench: Bench) -> None:
    await bench.app.shutdown()
    bench.db.dispose()


async def run_echo(users: int, updates_each: int) -> tuple[float, Timed]:
    """A bare PTB echo bot on the same fake: the yardstick the machine's speed cancels in."""
    api = FakeBotAPI()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "")

    app = (
        ApplicationBuilder().token("123456:echo").request(api).get_updates_request(api).concurrent_updates(True).build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    tg = FakeTelegram(app, api, settle_timeout=300)
    timed = Timed()
    people = [tg.user(20_000 + i, f"u{i}") for i in range(users)]

    async def talk(user: FakeUser) -> None:
        for n in range(updates_each):
            await timed(user.send(f"hello {n}"))

    began = time.perf_counter()
    await asyncio.gather(*(talk(u) for u in people))
    elapsed = time.perf_counter() - began
    await app.shutdown()
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
