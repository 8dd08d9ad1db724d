"""What each kind of update costs: SQL statements, transactions, thread hops, Bot API calls
and time, one update at a time through the real Application on the fake Bot API.

A case is driven the way people do it (tests/test_case_loop.py): the full /report flow,
dispatch by the command room, claim, a progress note, resolve with an after photo, the
confirmation (the command room's for a resident's case, the reporter's for a grid
worker's), the resident's rating, and the lists and numbers people ask for. Cycles
alternate between a resident and a grid worker reporting. Updates are sent one after
another, so everything counted in an update's window is that update's: the outbox sends
it causes are drained inside the window (FakeTelegram's ``after_update``).

Counting: statements by SQLAlchemy's ``before_cursor_execute`` on the engine,
transactions by its ``begin`` event, thread hops by wrapping the loop's
``run_in_executor`` (``asyncio.to_thread`` goes through it), Bot API calls (downloads
included) by the fake. Every photo is distinct (benchmarks/photos.py). The first cycle
warms caches and is not counted. After each cycle, in the same loop, a bare PTB echo bot's time
per update on the same fake: the ratio is the machine-independent figure.

`--warm N` drives N cycles before counting. On PostgreSQL a statement prepared on a
connection is planned afresh at each run for its first five runs there, then (if no worse)
keeps one plan: a kind of update that comes once every other cycle reaches that steady
state, a long-running bot's, only after about 14 cycles. The default, 1, keeps the figures
comparable with earlier stops.

    python -m benchmarks.costs
    python -m benchmarks.costs --cycles 20 --database postgresql://postgres@127.0.0.1:5432/bench
    python -m benchmarks.costs --cycles 12 --warm 14 --database postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from benchmarks.common import Bench, EchoBot, Timed, start, stop
from benchmarks.photos import PhotoFactory
from benchmarks.scene import Reporter, Scene
from handlers.outbox_sender import SENDING
from tests.fakebot import FakeBotAPI, Turn

# What the harness adds to every row: FakeTelegram drains the outbox after each update, and
# a drain with nothing to send still looks at the database (production only wakes the sender).
IDLE_DRAIN = "(idle outbox drain)"
ECHO_PER_CYCLE = 200  # echo updates after each cycle: the ratio's denominator, as steady as the rows

# Row order of the table: the life of a case, then the lists.
ROWS = [
    "/report",
    "location",
    "photo",
    "photos done",
    "description",
    "category",
    "submit",
    "dispatch",
    "claim",
    "note: open",
    "note: text",
    "note: done",
    "resolve: open",
    "resolve: photo",
    "resolve: done",
    "confirm (command room)",
    "confirm (reporter)",
    "rating",
    "/tasks",
    "/case",
    "/my",
    "/stats",
    IDLE_DRAIN,
]


@dataclass
class Counters:
    statements: int = 0
    transactions: int = 0
    hops: int = 0
    api_calls: int = 0
    thread_cpu: float = 0.0  # CPU seconds its hops spent in the database's threads


@dataclass
class Sample:
    update: Counters  # the update's own work: its handlers
    outbox: Counters  # what the background sender did for it (cards, notices)
    seconds: float  # the whole turn: the update handled and its sends drained
    handled: float  # of which the update's handlers (and the tasks they started): its replies are out
    cpu: float  # CPU seconds of `handled`: the event loop's thread (the fake's share too) and its hops
    loop_cpu: float  # of which the event loop's thread


class _CountedCalls(list):
    """The fake's call log, telling the meter whose each call is."""

    def __init__(self, meter: Meter, calls: list[Any]) -> None:
        super().__init__(calls)
        self.meter = meter

    def append(self, item: Any) -> None:
        self.meter.now().api_calls += 1
        super().append(item)


class Meter:
    """Counts what the bot does, process-wide: fine, since updates go one at a time. Work
    done in the outbox sender's context (handlers/outbox_sender.SENDING) counts apart."""

    def __init__(self, engine: Engine, api: FakeBotAPI) -> None:
        self.counters = {False: Counters(), True: Counters()}
        self.trace: list[str] | None = None  # statements of the update being traced
        self.api = api
        api.calls = _CountedCalls(self, api.calls)
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)
        self._engine = engine
        self.drain_seconds = 0.0  # time spent in the harness's outbox drains (see `timed_drains`)
        self.drain_cpu = 0.0  # and the event loop thread's CPU time in them

    def timed_drains(self, drain: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def timed() -> None:
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                await drain()
            finally:
                self.drain_seconds += time.perf_counter() - began
                self.drain_cpu += time.thread_time() - cpu

        return timed

    def now(self) -> Counters:
        return self.counters[SENDING.get()]

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.now().statements += 1
        if self.trace is not None:
            flat = " ".join(statement.split())
            # The head names the table, the tail its conditions: keep both.
            shown = flat if len(flat) <= 200 else flat[:90] + " … " + flat[-100:]
            self.trace.append(("outbox  " if SENDING.get() else "update  ") + shown)

    def _begin(self, *_: Any) -> None:
        self.now().transactions += 1

    @contextmanager
    def hops_counted(self) -> Iterator[None]:
        """Wrap the running loop's run_in_executor (what asyncio.to_thread calls)."""
        loop = asyncio.get_running_loop()
        original = loop.run_in_executor

        def counted(executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
            counters = self.now()
            counters.hops += 1
            if isinstance(executor, ProcessPoolExecutor):  # a worker process's CPU is not the bot's to wait on here
                return original(executor, func, *args)

            def timed() -> Any:
                began = time.thread_time()
                try:
                    return func(*args)
                finally:
                    counters.thread_cpu += time.thread_time() - began

            return original(executor, timed)

        loop.run_in_executor = counted  # type: ignore[assignment]
        try:
            yield
        finally:
            loop.run_in_executor = original  # type: ignore[method-assign]

    async def measure(self, step: Awaitable[object]) -> Sample:
        before = {k: Counters(**vars(c)) for k, c in self.counters.items()}
        downloads = len(self.api.downloads)
        drained, drained_cpu = self.drain_seconds, self.drain_cpu
        began, began_cpu = time.perf_counter(), time.thread_time()
        await step
        seconds = time.perf_counter() - began
        handled = seconds - (self.drain_seconds - drained)
        loop_cpu = time.thread_time() - began_cpu - (self.drain_cpu - drained_cpu)
        delta = {
            k: Counters(**{f: getattr(c, f) - getattr(before[k], f) for f in vars(c)}) for k, c in self.counters.items()
        }
        delta[False].api_calls += len(self.api.downloads) - downloads  # downloads are the update's
        cpu = loop_cpu + delta[False].thread_cpu
        return Sample(
            update=delta[False], outbox=delta[True], seconds=seconds, handled=handled, cpu=cpu, loop_cpu=loop_cpu
        )

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._statement)
        event.remove(self._engine, "begin", self._begin)


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=lambda: defaultdict(list))

    def add(self, row: str, sample: Sample) -> None:
        self.samples[row].append(sample)


async def one_cycle(
    scene: Scene, meter: Meter, photo: PhotoFactory, r: Reporter, results: Results | None, trace: str = ""
) -> None:
    """One case from /report to rating, then the lists; every update measured."""

    async def step(row: str, update: Awaitable[Turn]) -> None:
        if row == trace and results is not None:
            meter.trace = []
        sample = await meter.measure(update)
        if meter.trace is not None:
            print(f"-- {row}: {len(meter.trace)} statements")
            print("\n".join(meter.trace))
            meter.trace = None
        if results is not None:
            results.add(row, sample)

    staff = scene.staff[0]
    await step("/report", scene.report_command(r))
    await step("location", scene.report_location(r))
    await step("photo", scene.report_photo(r, photo(), size=photo.size))
    await step("photos done", scene.photos_done(r))
    await step("description", scene.report_description(r, "小区门口垃圾堆放好几天了，没人清运"))
    await step("category", scene.report_category(r))
    await step("submit", scene.report_submit(r))
    case_id, code = scene.case_of(r)
    await step("dispatch", scene.dispatch(case_id))
    await step("claim", scene.claim(case_id, staff))
    await step("note: open", scene.work(case_id, staff, "note"))
    await step("note: text", scene.input_text(staff, "已联系业主，明天上午现场查看"))
    await step("note: done", scene.input_done(staff))
    await step("resolve: open", scene.work(case_id, staff, "resolve"))
    await step("resolve: photo", scene.input_photo(staff, photo(), size=photo.size))
    await step("resolve: done", scene.input_done(staff))
    await step("confirm (command room)" if r.resident else "confirm (reporter)", scene.confirm(case_id, r))
    if r.resident:
        await step("rating", scene.rate(r))
    await step("/tasks", scene.tasks(staff))
    await step("/case", scene.case(staff, code))
    await step("/my", scene.my(r))
    await step("/stats", scene.stats())


async def measure_costs(db_url: str, cycles: int, media: Path, trace: str = "", warm: int = 1) -> tuple[Results, Timed]:
    """The bot's updates, and the echo bot's sampled after each cycle in the same loop."""
    echo, echo_timed = EchoBot(), Timed()
    await echo.start()
    bench: Bench = await start(db_url, media)
    scene = await Scene.build(bench)
    photo = PhotoFactory(pool=4)
    meter = Meter(bench.db.engine, bench.tg.api)
    if bench.tg.after_update is not None:
        bench.tg.after_update = meter.timed_drains(bench.tg.after_update)
    results = Results()
    try:
        with meter.hops_counted():
            for i in range(warm):  # not counted
                await one_cycle(scene, meter, photo, await scene.reporter(resident=i % 2 == 0), None)
            for i in range(cycles):
                reporter = await scene.reporter(resident=i % 2 == 0)
                await one_cycle(scene, meter, photo, reporter, results, trace if i == 0 else "")
                if after_update := bench.tg.after_update:
                    results.add(IDLE_DRAIN, await meter.measure(after_update()))
                await echo.sample(echo_timed, ECHO_PER_CYCLE)
    finally:
        meter.close()
        await stop(bench)
        await echo.stop()
    return results, echo_timed


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(results: Results, echo: Timed, database: str) -> None:
    echo_median, echo_cpu = median(echo.latencies), median(echo.cpu)
    print(f"GridDesk cost per update on {database} (medians; n = samples; API calls include downloads)")
    print("  update = the update's handlers; outbox = what the background sender then did for it")
    header = (
        f"{'':<24}{'':>4}{'--------- update ---------':>30}{'----- outbox -----':>24}{'------------- handled -------------':>48}\n"
        f"{'update':<24}{'n':>4}{'SQL':>6}{'tx':>5}{'hops':>6}{'API':>5}{'ms':>8}"
        f"{'SQL':>6}{'tx':>5}{'hops':>6}{'API':>5}{'×echo':>8}{'ms':>8}{'×echo':>8}{'CPU':>8}{'×echo':>8}{'loop':>8}{'db':>8}"
    )
    print(header)
    width = len(header.splitlines()[-1])
    print("-" * width)
    total_ms = 0.0
    for row in ROWS:
        samples = results.samples.get(row, [])
        if not samples:
            continue
        ms = median([s.seconds for s in samples]) * 1000
        handled_ms = median([s.handled for s in samples]) * 1000
        cpu_ms = median([s.cpu for s in samples]) * 1000
        loop_ms = median([s.loop_cpu for s in samples]) * 1000
        db_ms = median([s.update.thread_cpu for s in samples]) * 1000
        total_ms += ms if row != IDLE_DRAIN else 0.0

        def col(part: str, name: str, samples: list[Sample] = samples) -> float:
            return median([getattr(getattr(s, part), name) for s in samples])

        print(
            f"{row:<24}{len(samples):>4}"
            f"{col('update', 'statements'):>6.0f}{col('update', 'transactions'):>5.0f}"
            f"{col('update', 'hops'):>6.0f}{col('update', 'api_calls'):>5.0f}{ms:>8.1f}"
            f"{col('outbox', 'statements'):>6.0f}{col('outbox', 'transactions'):>5.0f}"
            f"{col('outbox', 'hops'):>6.0f}{col('outbox', 'api_calls'):>5.0f}"
            f"{ms / (echo_median * 1000):>8.1f}{handled_ms:>8.1f}{handled_ms / (echo_median * 1000):>8.1f}"
            f"{cpu_ms:>8.1f}{cpu_ms / (echo_cpu * 1000):>8.1f}{loop_ms:>8.1f}{db_ms:>8.1f}"
        )
    print("-" * width)
    print("ms: the whole turn (the update handled, then its sends drained); ×echo: that over the echo bot's update")
    print("handled: the turn without the drain: the update's handlers and replies, what its sender waits for")
    print("CPU: the CPU time of `handled` (steadier than time on a busy machine, and the floor of what the update")
    print("  can take): loop, the event loop's thread (PTB, the handlers, and the fake's share: the echo bot's")
    print("  CPU is all loop); db, the threads its hops ran in (PostgreSQL's units of work; on SQLite a unit of")
    print("  work runs on the loop's thread when no other writer holds the database, and counts in loop)")
    print(
        f"Bare PTB echo bot, same fake, sampled between the cycles: median {echo_median * 1000:.2f} ms, "
        f"{echo_cpu * 1000:.2f} ms CPU per update"
    )
    print(
        f"Sum of the medians of the updates: {total_ms:.1f} ms = {total_ms / (echo_median * 1000):.0f}× the echo bot's update"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=10, help="cases driven and counted; default 10")
    parser.add_argument("--warm", type=int, default=1, help="cases driven first, not counted; default 1")
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument("--trace", default="", help="print the SQL of one update of this row (e.g. claim)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        results, echo = asyncio.run(measure_costs(url, args.cycles, Path(tmp) / "media", args.trace, args.warm))
    print_table(results, echo, "PostgreSQL" if args.database else "SQLite")


if __name__ == "__main__":
    main()
