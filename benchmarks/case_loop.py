"""The whole case loop, N cases at once: report → dispatch → claim → resolve (with an
"after" photo) → confirmed → closed, every step a real update through the real
Application and the fake Bot API. Prints closed cases per second and the time per update,
beside a bare PTB echo bot on the same fake.

    python -m benchmarks.case_loop --cases 50
    python -m benchmarks.case_loop --cases 50 --database postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sqlmodel import func, select

from benchmarks.common import Timed, print_echo_comparison, run_echo, start, stop
from storage.models import Case, CaseState
from tests.fakebot import FakeUser
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.test_claim import join_directly

GRID = "33010200100101"


async def run_loop(db_url: str, n: int, media: Path) -> tuple[float, Timed, int]:
    bench = await start(db_url, media)
    tg, admin = bench.tg, bench.admin
    room = await bound_group(tg, admin, -100900, "QB-CMD")
    team = await bound_group(tg, admin, -100901, "QB-ZF")
    dispatcher = tg.user(30_000, "dispatcher", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    lat, lon = grid_centre(bench.db, GRID)
    pairs: list[tuple[FakeUser, FakeUser]] = []
    for i in range(n):
        worker = tg.user(31_000 + i, f"w{i}", language_code="zh-hans")
        await onboard(admin, worker, "worker", GRID)
        join_directly(bench.rt, 32_000 + i, f"s{i}", "staff", "QB-ZF")
        pairs.append((worker, tg.user(32_000 + i, f"s{i}", language_code="zh-hans")))
    before, after = make_jpeg(1280, 960, color=(150, 40, 40)), make_jpeg(1280, 960, color=(40, 150, 40))
    timed = Timed()

    async def one_case(i: int, worker: FakeUser, staff: FakeUser) -> None:
        await timed(worker.send_photo(before, caption=f"违章搭建 {i}"))
        await timed(worker.send_location(lat + 0.00001 * i, lon))
        await timed(worker.press(worker.last_message(), "违法建设"))
        summary = worker.last_message()
        submit = next(
            b.callback_data
            for row in summary.reply_markup.inline_keyboard
            for b in row
            if b.callback_data.startswith("v1:rs:")
        )
        await timed(worker.press(summary, submit))
        # The command room's card for this report, found by its description.
        card = next(
            c
            for c in bench.tg.api.messages.values()
            if c["chat"]["id"] == room.id
            and f"违章搭建 {i}\n" in (c.get("caption", "") + "\n")
            and c.get("reply_markup")
        )
        data = next(
            b["callback_data"]
            for row in card["reply_markup"]["inline_keyboard"]
            for b in row
            if b["callback_data"].startswith("v1:dp:")
        )
        case_id = int(data.split(":")[2])
        await timed(dispatcher.press_data(room.id, card["message_id"], data))
        team_card = next(
            c
            for c in bench.tg.api.messages.values()
            if c["chat"]["id"] == team.id and f"v1:cl:{case_id}" in str(c.get("reply_markup"))
        )
        await timed(staff.press_data(team.id, team_card["message_id"], f"v1:cl:{case_id}"))
        await timed(staff.press_data(team.id, team_card["message_id"], f"v1:wk:resolve:{case_id}"))
        await timed(staff.send_photo(after, caption="已拆除"))
        await timed(staff.press(staff.last_message(), "✅ 完成"))
        await timed(worker.press(worker.last_message(), "✅ 确认已解决"))

    began = time.perf_counter()
    await asyncio.gather(*(one_case(i, w, s) for i, (w, s) in enumerate(pairs)))
    elapsed = time.perf_counter() - began
    with bench.db.read() as s:
        closed = int(s.exec(select(func.count()).select_from(Case).where(Case.state == CaseState.CLOSED)).one())
    await stop(bench)
    return elapsed, timed, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a fresh SQLite file); it is emptied")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        elapsed, timed, closed = asyncio.run(run_loop(url, args.cases, Path(tmp) / "media"))
        steps = len(timed.latencies) // max(args.cases, 1)
        echo_elapsed, echo = asyncio.run(run_echo(args.cases, steps))
    n = len(timed.latencies)
    print(
        f"GridDesk full loop on {'PostgreSQL' if args.database else 'SQLite'}: {args.cases} cases, {closed} closed, {n} updates"
    )
    print(f"  closed cases/s {closed / elapsed:6.1f}   updates/s {n / elapsed:7.1f}   per update: {timed.summary()}")
    print_echo_comparison(elapsed, timed, echo_elapsed, echo)
    if closed != args.cases:
        raise SystemExit(f"expected {args.cases} closed cases, found {closed}")


if __name__ == "__main__":
    main()
