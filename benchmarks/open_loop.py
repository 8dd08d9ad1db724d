"""Response times under an open-loop load: people who think between their messages.

A closed loop with no think time (every user sends the next update the moment the last
one is answered) measures only queueing: its median is users ÷ throughput. Here each of
the simulated people waits a think time (exponential, mean ``--think`` seconds) between
updates, counted from when they *sent* the last one, so arrivals do not slow down when
the bot does. Latency is measured from the planned send time (if the previous update was
still unanswered then, the wait counts too: no coordinated omission).

The people (``--users``, default 50): grid workers and residents filing reports through
the full /report flow (each photo distinct, 1280×960) and confirming their resolved cases,
dispatchers in the command room dispatching reported cases and confirming residents'
resolved ones, and staff who claim, note and resolve (with an after photo). As in
production, the outbox sender sends cards and notices in the background: an update's time
is its handlers' (a person who needs a card's button waits for it to arrive), and "submit →
card" times a report until its card is in the command room. ``--drain`` instead drains
the outbox after every update, inside its time, as the tests do; under load that also
waits for other people's rows, so it measures the harness more than the bot.

With ``--big-photo-users N`` (default 3), N more grid workers whose reports carry three
4000×3000 photos each (``--big-photos-per-report``) are active in half of the measured
time only, in windows without, with, with, without them (``--window``, default a quarter
of ``--seconds``), so a steady drift over the run weighs on both alike: the p99 of text
updates with them against without them shows whether big photos hold up everyone else.
``--stats-users N`` (default 0) adds N supervisors asking for /stats (a chart drawn each
time: the figures change as cases move) in the same windows; run it with
``--big-photo-users 0`` to see what charts alone do to everyone else.
A warm-up (``--warmup``) is not counted.

    python -m benchmarks.open_loop --seconds 20
    python -m benchmarks.open_loop --seconds 30 --database postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from benchmarks.common import percentile, start, stop
from benchmarks.photos import BIG, STANDARD, PhotoFactory
from benchmarks.scene import Reporter, Scene
from bot import callbacks
from tests.fakebot import FakeUser

# What a step is, for the summary: text messages (and commands), button presses,
# locations, photos. A submit is a press, also counted on its own line.
TEXT, PRESS, LOCATION, PHOTO = "text", "press", "location", "photo"
CHART = "chart"  # /stats: answered with a chart drawn for it
CARD = "card"  # not an update: from a submit until its card shows in the command room
CARD_WAIT_S = 60.0


@dataclass
class Step:
    name: str
    kind: str
    run: Callable[[], Awaitable[object]]
    user_id: int = 0


@dataclass
class Record:
    name: str
    kind: str
    phase: int
    latency: float


@dataclass
class Work:
    """Cases handed from one role to the next (the harness's bookkeeping, not the bot's)."""

    to_dispatch: asyncio.Queue[tuple[int, Reporter]] = field(default_factory=asyncio.Queue)
    to_claim: asyncio.Queue[tuple[int, Reporter]] = field(default_factory=asyncio.Queue)
    room_confirms: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    reporter_confirms: dict[int, list[int]] = field(default_factory=dict)  # telegram id -> case ids


@dataclass
class Run:
    scene: Scene
    work: Work
    photos: PhotoFactory
    big_photos: PhotoFactory
    think: float
    began: float
    measured_from: float  # the warm-up before it is not counted
    end: float
    big_photos_per_report: int
    window: float  # with heavy users: windows without (phase 1) and with them (phase 2) alternate
    heavy: bool  # big-photo people or supervisors asking for charts, in phase-2 windows only
    records: list[Record] = field(default_factory=list)
    submitted: dict[int, float] = field(default_factory=dict)  # reporter -> planned time of the last submit
    watchers: set[asyncio.Task[None]] = field(default_factory=set)
    late: int = 0  # updates sent later than planned because the previous one was unanswered
    full_collections: list[float] = field(default_factory=list)  # ms each (generation 2)

    def phase(self, at: float) -> int:
        """0: warm-up; 1: without the heavy users; 2: with them. Windows go without,
        with, with, without (and again), so a steady drift over the run (open cases piling
        up, a busier machine) weighs on both alike."""
        if at < self.measured_from:
            return 0
        if not self.heavy:
            return 1
        return (1, 2, 2, 1)[int((at - self.measured_from) / self.window) % 4]


# ---- the scripts: what each kind of person does, one step at a time ------------------------


async def reporter_script(run: Run, r: Reporter, big: bool) -> AsyncIterator[Step | None]:
    scene, work = run.scene, run.work
    photo = run.big_photos if big else run.photos
    while True:
        for case_id in work.reporter_confirms.pop(r.user.id, []):
            yield Step("confirm (reporter)", PRESS, partial(scene.confirm, case_id, r))
        yield Step("/report", TEXT, lambda: scene.report_command(r))
        yield Step("location", LOCATION, lambda: scene.report_location(r))
        for _ in range(run.big_photos_per_report if big else 1):
            yield Step(
                "report photo" + (" (big)" if big else ""),
                PHOTO,
                lambda: scene.report_photo(r, photo(), size=photo.size),
            )
        yield Step("photos done", PRESS, lambda: scene.photos_done(r))
        yield Step("description", TEXT, lambda: scene.report_description(r, "路边垃圾堆积，无人清运"))
        yield Step("category", PRESS, lambda: scene.report_category(r))
        yield Step("submit", PRESS, lambda: scene.report_submit(r), r.user.id)
        case_id, _ = scene.case_of(r)
        watcher = asyncio.create_task(watch_card(run, case_id, run.submitted[r.user.id]))
        run.watchers.add(watcher)
        watcher.add_done_callback(run.watchers.discard)
        work.to_dispatch.put_nowait((case_id, r))


async def watch_card(run: Run, case_id: int, since: float) -> None:
    """Time until the case's card (with its dispatch button) is in the command room: the
    outbox's part of a report, whether or not turns drain the outbox."""
    key = (run.scene.room.id, callbacks.Dispatch.KIND, case_id)
    seen = run.scene.buttons.first_seen
    while key not in seen and time.perf_counter() - since < CARD_WAIT_S:
        await asyncio.sleep(0.01)
    if key in seen:
        run.records.append(Record("submit → card", CARD, run.phase(since), seen[key] - since))


async def dispatcher_script(run: Run) -> AsyncIterator[Step | None]:
    scene, work = run.scene, run.work
    while True:
        if not work.room_confirms.empty():
            case_id = work.room_confirms.get_nowait()
            r = Reporter(scene.dispatcher, True, scene.location)  # the room confirms
            yield Step("confirm (command room)", PRESS, partial(scene.confirm, case_id, r))
        elif not work.to_dispatch.empty():
            case_id, reporter = work.to_dispatch.get_nowait()
            yield Step("dispatch", PRESS, partial(scene.dispatch, case_id))
            work.to_claim.put_nowait((case_id, reporter))
        else:
            yield None  # nothing to do: think, look again


async def staff_script(run: Run, staff: FakeUser) -> AsyncIterator[Step | None]:
    scene, work = run.scene, run.work
    while True:
        if work.to_claim.empty():
            yield None
            continue
        case_id, reporter = work.to_claim.get_nowait()
        yield Step("claim", PRESS, partial(scene.claim, case_id, staff))
        yield Step("note: open", PRESS, partial(scene.work, case_id, staff, "note"))
        yield Step("note: text", TEXT, lambda: scene.input_text(staff, "已联系业主，明天上午现场查看"))
        yield Step("note: done", PRESS, lambda: scene.input_done(staff))
        yield Step("resolve: open", PRESS, partial(scene.work, case_id, staff, "resolve"))
        yield Step("resolve photo", PHOTO, lambda: scene.input_photo(staff, run.photos(), size=run.photos.size))
        yield Step("resolve: done", PRESS, lambda: scene.input_done(staff))
        if reporter.resident:
            work.room_confirms.put_nowait(case_id)
        else:
            work.reporter_confirms.setdefault(reporter.user.id, []).append(case_id)


# ---- the open loop ----------------------------------------------------------------------------


async def stats_script(run: Run, user: FakeUser) -> AsyncIterator[Step | None]:
    while True:
        yield Step("/stats", CHART, partial(run.scene.stats, user))


async def person(run: Run, script: AsyncIterator[Step | None], rng: random.Random, *, heavy: bool = False) -> None:
    """Send the script's steps, a think time apart counted from the planned send times (the
    heavy users only in phase-2 windows; they pick up where they left off)."""
    planned = run.began + rng.expovariate(1 / run.think)
    while planned < run.end:
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if heavy and run.phase(planned) != 2:
            planned += rng.expovariate(1 / run.think)
            continue
        step = await anext(script)  # decided now: the queues may have changed while thinking
        if step is not None:
            sent = time.perf_counter()
            run.late += sent - planned > 0.05  # the previous update was still unanswered
            if step.name == "submit":
                run.submitted[step.user_id] = planned
            await step.run()
            run.records.append(Record(step.name, step.kind, run.phase(planned), time.perf_counter() - planned))
        planned += rng.expovariate(1 / run.think)


def split_roles(users: int) -> tuple[int, int, int]:
    """(reporters, dispatchers, staff): most people report; a tenth dispatch; staff keep up."""
    dispatchers = max(1, users // 10)
    staff = max(1, users // 4)
    return users - dispatchers - staff, dispatchers, staff


@dataclass
class Options:
    users: int
    big_users: int
    stats_users: int
    seconds: float
    warmup: float
    window: float
    think: float
    drain: bool
    big_photos_per_report: int
    freeze_every: float


async def load(db_url: str, media: Path, o: Options) -> Run:
    bench = await start(db_url, media, drain_outbox=o.drain)
    reporters_n, dispatchers_n, staff_n = split_roles(o.users)
    scene = await Scene.build(bench, staff=staff_n)
    scene.button_wait = 0.0 if o.drain else 60.0
    reporters = [await scene.reporter(resident=i % 3 == 0) for i in range(reporters_n)]
    big = [await scene.reporter(resident=False) for _ in range(o.big_users)]
    # Photos are encoded now, outside the measured time.
    photos, big_photos = PhotoFactory(STANDARD, pool=8), PhotoFactory(BIG, pool=2 if o.big_users else 1)
    began = time.perf_counter() + 0.5
    measured_from = began + o.warmup
    run = Run(
        scene,
        Work(),
        photos,
        big_photos,
        o.think,
        began,
        measured_from,
        measured_from + o.seconds,
        o.big_photos_per_report,
        o.window,
        o.big_users > 0 or o.stats_users > 0,
    )
    rng = random.Random(7)
    people = [person(run, reporter_script(run, r, False), random.Random(rng.random())) for r in reporters]
    people += [person(run, dispatcher_script(run), random.Random(rng.random())) for _ in range(dispatchers_n)]
    people += [person(run, staff_script(run, s), random.Random(rng.random())) for s in scene.staff]
    people += [person(run, reporter_script(run, r, True), random.Random(rng.random()), heavy=True) for r in big]
    supervisors = [await scene.supervisor(i) for i in range(o.stats_users)]
    people += [person(run, stats_script(run, u), random.Random(rng.random()), heavy=True) for u in supervisors]
    keeper = asyncio.create_task(freeze_harness(o.freeze_every)) if o.freeze_every > 0 else None
    try:
        with full_collections() as run.full_collections:
            await asyncio.gather(*people)
            await asyncio.gather(*run.watchers)
    finally:
        if keeper is not None:
            keeper.cancel()
        await stop(bench)
    return run


async def freeze_harness(every: float) -> None:
    """The fake Bot API keeps every message and call, and the run every record: a heap that
    grows all run long, in the bot's process. Frozen as it grows, so the collector's full
    passes walk what a bot process holds, not the harness's history (without it, full
    collections over that history paused everything for 100-170 ms: --freeze-every 0)."""
    while True:
        await asyncio.sleep(every)
        gc.freeze()


@contextmanager
def full_collections() -> Iterator[list[float]]:
    """The durations (ms) of the collector's full passes (generation 2) while the block runs."""
    pauses: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - began[0]) * 1000)

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


# ---- the report ---------------------------------------------------------------------------------


def line(label: str, latencies: list[float]) -> str:
    if not latencies:
        return f"  {label:<34}{0:>6}"
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    return f"  {label:<34}{len(latencies):>6}{p50:>10.1f}{p99:>10.1f}"


def ratio_interval(
    numerator: list[float], denominator: list[float], q: float, rounds: int = 1000
) -> tuple[float, float]:
    """How far the ratio of two samples' `q` quantiles can move by chance: the 5th and 95th
    percentiles of the ratio over resamples (with replacement) of both. A p99 of a few hundred
    latencies is one of its three largest, so one run's ratio alone says little."""
    draw = random.Random(0)
    ratios = sorted(
        percentile(draw.choices(numerator, k=len(numerator)), q)
        / percentile(draw.choices(denominator, k=len(denominator)), q)
        for _ in range(rounds)
    )
    return ratios[int(0.05 * rounds)], ratios[int(0.95 * rounds) - 1]


def summary(run: Run, phase: int) -> list[str]:
    rows = [r for r in run.records if r.phase == phase]
    out = [f"  {'updates':<34}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}"]
    out.append(line("non-photo updates", [r.latency for r in rows if r.kind in (TEXT, PRESS, LOCATION)]))
    out.append(line("  of them text messages", [r.latency for r in rows if r.kind == TEXT]))
    out.append(line("  of them button presses", [r.latency for r in rows if r.kind == PRESS]))
    out.append(line("  of them submits", [r.latency for r in rows if r.name == "submit"]))
    out.append(line("submit → card in command room", [r.latency for r in rows if r.kind == CARD]))
    out.append(line("photo updates (1280×960)", [r.latency for r in rows if r.kind == PHOTO and "big" not in r.name]))
    out.append(line("photo updates (4000×3000)", [r.latency for r in rows if "big" in r.name]))
    out.append(line("/stats (a chart)", [r.latency for r in rows if r.kind == CHART]))
    return out


def print_report(run: Run, o: Options, database: str) -> None:
    counted = [r for r in run.records if r.phase > 0]
    print(
        f"GridDesk open loop on {database}: {o.users} people (+{o.big_users} sending "
        f"{o.big_photos_per_report} × 4000×3000 per report, +{o.stats_users} asking for /stats), think time "
        f"exp(mean {o.think:g} s), {o.warmup:g} s warm-up + {o.seconds:g} s measured: {len(counted)} updates "
        f"({len(counted) / o.seconds:.1f}/s), {run.late} sent late (bot still busy). Latency from the planned send"
        f"{'; outbox drained inside each update (--drain)' if o.drain else ''}."
    )
    pauses = run.full_collections
    print(
        f"Full collections while it ran: {len(pauses)}, longest {max(pauses, default=0.0):.1f} ms "
        + (f"(the harness's heap frozen every {o.freeze_every:g} s)" if o.freeze_every > 0 else "(harness not frozen)")
    )
    if not run.heavy:
        print("\n".join(summary(run, 1)))
        return
    heavy = f"{o.big_users} people sending 4000×3000 photos, {o.stats_users} asking for /stats"
    print(f"Windows without the heavy users ({o.window:g} s windows, alternating):")
    print("\n".join(summary(run, 1)))
    print(f"Windows with them ({heavy}):")
    print("\n".join(summary(run, 2)))
    for label, kinds in (("text messages", {TEXT}), ("all non-photo updates", {TEXT, PRESS, LOCATION})):
        by_phase = {p: [r.latency for r in run.records if r.kind in kinds and r.phase == p] for p in (1, 2)}
        if by_phase[1] and by_phase[2]:
            p99 = percentile(by_phase[2], 0.99) / percentile(by_phase[1], 0.99)
            p50 = percentile(by_phase[2], 0.5) / percentile(by_phase[1], 0.5)
            low, high = ratio_interval(by_phase[2], by_phase[1], 0.99)
            print(
                f"{label} with / without the heavy users: p99 {p99:.2f}× "
                f"(90 % bootstrap interval {low:.2f}–{high:.2f}×), p50 {p50:.2f}×"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="not counted, before (default 5)")
    parser.add_argument("--window", type=float, default=0.0, help="with/without windows (default: seconds / 4)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--big-photo-users", type=int, default=3)
    parser.add_argument("--stats-users", type=int, default=0, help="supervisors asking for /stats (default 0)")
    parser.add_argument(
        "--big-photos-per-report", type=int, default=3, help="photos in each big-photo report (default 3)"
    )
    parser.add_argument("--think", type=float, default=2.0, help="mean think time in seconds (default 2)")
    parser.add_argument(
        "--drain",
        action="store_true",
        help="count the outbox sends in each update's time (the harness drains after each update)",
    )
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--freeze-every", type=float, default=1.0, help="freeze the harness's growing heap every so many s (0: never)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        window = args.window or args.seconds / 4
        options = Options(
            args.users,
            args.big_photo_users,
            args.stats_users,
            args.seconds,
            args.warmup,
            window,
            args.think,
            args.drain,
            args.big_photos_per_report,
            args.freeze_every,
        )
        run = asyncio.run(load(url, Path(tmp) / "media", options))
    print_report(run, options, "PostgreSQL" if args.database else "SQLite")


if __name__ == "__main__":
    main()
