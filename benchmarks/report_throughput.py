"""Reports per second through the real Application and the fake Bot API.

N grid workers file quick reports at once (photo with caption, location, category,
submit: four updates each). Beside it, in the same run, a bare PTB echo bot answers the
same number of updates on the same fake: the ratio between the two is the figure, since
the machine's own speed cancels out.

    python -m benchmarks.report_throughput --workers 50
    python -m benchmarks.report_throughput --workers 50 --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from telegram import Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters

from bot import onboarding
from bot.app import build_application
from bot.clock import Clock
from bot.org_file import DEFAULT_ORG_FILE, load_org_file
from bot.runtime import Runtime
from bot.settings import Settings
from storage.db import Database, drop_everything
from storage.migrate import upgrade
from storage.org_import import import_org
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons
from tests.images import make_jpeg

ADMIN = 900001
GRIDS = ["33010200100101", "33010200100102", "33010200100201", "33010200200101"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Timed:
    def __init__(self) -> None:
        self.latencies: list[float] = []

    async def __call__(self, awaitable):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        result = await awaitable
        self.latencies.append(time.perf_counter() - start)
        return result


async def run_griddesk(db_url: str, workers: int, media: Path) -> tuple[float, list[float], int]:
    db = Database(db_url)
    if not db.sqlite:
        drop_everything(db)
    upgrade(db)
    with db.session() as s:
        import_org(s, load_org_file(DEFAULT_ORG_FILE))
    settings = Settings(
        TELEGRAM_BOT_TOKEN="123456:bench",
        DATABASE_URL=db_url,
        GRIDDESK_MEDIA_DIR=str(media),
        GRIDDESK_ADMIN_IDS=str(ADMIN),
        GRIDDESK_WORKER_REPORTS_PER_HOUR=1000,
        _env_file=None,
    )
    rt = Runtime(settings=settings, db=db, clock=Clock(), bot_username="GridDeskTestBot")
    api = FakeBotAPI()
    app = build_application(rt, request=api)
    await app.initialize()
    await app.post_init(app)  # type: ignore[misc]
    tg = FakeTelegram(app, api, settle_timeout=120)
    admin = tg.user(ADMIN, "admin", language_code="zh-hans")
    group = tg.group(-100900, "command", admins=[admin], bot_status="administrator")
    await admin.send("/bind QB-CMD", chat=group)
    people: list[tuple[FakeUser, tuple[float, float]]] = []
    from tests.flows import grid_centre, onboard

    for i in range(workers):
        grid = GRIDS[i % len(GRIDS)]
        user = tg.user(10_000 + i, f"worker{i}", language_code="zh-hans")
        await onboard(admin, user, "worker", grid)
        people.append((user, grid_centre(db, grid)))
    photo = make_jpeg(1280, 960)
    timed = Timed()

    async def file_one(user: FakeUser, where: tuple[float, float]) -> None:
        await timed(user.send_photo(photo, caption="路边垃圾堆积，无人清运"))
        await timed(user.send_location(*where))
        card = user.last_message()
        await timed(user.press(card, buttons(card)[0][0]))
        summary = user.last_message()
        # Reports close together are offered as duplicates first; file each as new.
        submit = next(b.callback_data for row in summary.reply_markup.inline_keyboard for b in row if b.callback_data.startswith("v1:rs:"))
        await timed(user.press(summary, submit))

    start = time.perf_counter()
    await asyncio.gather(*(file_one(u, w) for u, w in people))
    elapsed = time.perf_counter() - start
    await app.shutdown()
    from sqlmodel import func, select

    from storage.models import Case

    with db.session() as s:
        filed = int(s.exec(select(func.count()).select_from(Case)).one())
    db.dispose()
    return elapsed, timed.latencies, filed


async def run_echo(users: int, updates_each: int) -> tuple[float, list[float]]:
    api = FakeBotAPI()

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(update.effective_message.text or "")

    app: Application = ApplicationBuilder().token("123456:echo").request(api).get_updates_request(api).concurrent_updates(True).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    await app.initialize()
    tg = FakeTelegram(app, api, settle_timeout=120)
    timed = Timed()
    people = [tg.user(20_000 + i, f"u{i}") for i in range(users)]

    async def talk(user: FakeUser) -> None:
        for n in range(updates_each):
            await timed(user.send(f"hello {n}"))

    start = time.perf_counter()
    await asyncio.gather(*(talk(u) for u in people))
    elapsed = time.perf_counter() - start
    await app.shutdown()
    return elapsed, timed.latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a fresh SQLite file); it is emptied")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        elapsed, lat, filed = asyncio.run(run_griddesk(url, args.workers, Path(tmp) / "media"))
        echo_elapsed, echo_lat = asyncio.run(run_echo(args.workers, 4))
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"GridDesk on {backend}, {args.workers} workers, {filed} cases filed ({len(lat)} updates)")
    print(f"  reports/s {filed / elapsed:8.1f}   updates/s {len(lat) / elapsed:8.1f}")
    print(f"  per update: median {statistics.median(lat) * 1000:7.1f} ms   p99 {percentile(lat, 0.99) * 1000:7.1f} ms")
    print(f"Bare PTB echo bot, same fake, {len(echo_lat)} updates")
    print(f"  updates/s {len(echo_lat) / echo_elapsed:8.1f}")
    print(f"  per update: median {statistics.median(echo_lat) * 1000:7.1f} ms   p99 {percentile(echo_lat, 0.99) * 1000:7.1f} ms")
    print(f"Ratio echo/GridDesk: updates/s {len(echo_lat) / echo_elapsed / (len(lat) / elapsed):.1f}x, "
          f"median latency {statistics.median(lat) / statistics.median(echo_lat):.1f}x")
    if filed != args.workers:
        raise SystemExit(f"expected {args.workers} cases, found {filed}")


if __name__ == "__main__":
    main()
