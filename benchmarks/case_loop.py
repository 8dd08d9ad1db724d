"""The whole case loop, N cases at once: report → dispatch → claim → resolve (with an
"after" photo) → confirmed → closed, every step a real update through the real
Application and the fake Bot API; every photo distinct (the bot stores them by content). Prints closed cases per second and the time per update,
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
from benchmarks.photos import PhotoFactory
from benchmarks.scene import Reporter, Scene
from storage.models import Case, CaseState


async def run_loop(db_url: str, n: int, media: Path) -> tuple[float, Timed, int]:
    bench = await start(db_url, media)
    scene = await Scene.build(bench, staff=n)
    reporters = [await scene.reporter(resident=False) for _ in range(n)]
    # Distinct bytes per photo: the bot stores photos by content, so reusing one JPEG would
    # process it once. Encoded here, before the clock starts.
    photo = PhotoFactory(pool=8)
    befores, afters = [photo() for _ in range(n)], [photo() for _ in range(n)]
    timed = Timed()

    async def one_case(i: int, r: Reporter) -> None:
        staff = scene.staff[i]
        await timed(scene.report_photo(r, befores[i], caption=f"违章搭建 {i}"))
        await timed(scene.report_location(r))
        await timed(scene.report_category(r))
        await timed(scene.report_submit(r))
        case_id, _ = scene.case_of(r)
        await timed(scene.dispatch(case_id))
        await timed(scene.claim(case_id, staff))
        await timed(scene.work(case_id, staff, "resolve"))
        await timed(scene.input_photo(staff, afters[i]))
        await timed(scene.input_done(staff))
        await timed(scene.confirm(case_id, r))

    began = time.perf_counter()
    await asyncio.gather(*(one_case(i, r) for i, r in enumerate(reporters)))
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
