"""Reports per second through the real Application and the fake Bot API.

N grid workers file quick reports at once (photo with caption, location, category,
submit: four updates each; every photo distinct, 1280×960). Beside it, in the same run, a bare PTB echo bot answers the
same number of updates on the same fake: the ratio between the two is the figure, since
the machine's own speed cancels out.

    python -m benchmarks.report_throughput --workers 50
    python -m benchmarks.report_throughput --workers 50 --database postgresql://postgres@127.0.0.1:5432/bench
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
from storage.models import Case
from tests.fakebot import FakeUser
from tests.flows import grid_centre, onboard

GRIDS = ["33010200100101", "33010200100102", "33010200100201", "33010200200101"]


async def file_reports(db_url: str, workers: int, media: Path) -> tuple[float, Timed, int]:
    bench = await start(db_url, media)
    scene = await Scene.build(bench)
    people: list[Reporter] = []
    for i in range(workers):
        grid = GRIDS[i % len(GRIDS)]
        user: FakeUser = bench.tg.user(10_000 + i, f"worker{i}", language_code="zh-hans")
        await onboard(bench.admin, user, "worker", grid)
        people.append(Reporter(user, resident=False, location=grid_centre(bench.db, grid)))
    # Distinct bytes per report: the bot stores photos by content, so one JPEG sent N times
    # would be processed once. Encoded here, before the clock starts.
    photo = PhotoFactory(pool=8)
    photos = {r.user.id: photo() for r in people}
    timed = Timed()

    async def file_one(r: Reporter) -> None:
        await timed(scene.report_photo(r, photos[r.user.id], caption="路边垃圾堆积，无人清运"))
        await timed(scene.report_location(r))
        await timed(scene.report_category(r))
        # Reports close together are offered as duplicates first; file each as new.
        await timed(scene.report_submit(r))

    began = time.perf_counter()
    await asyncio.gather(*(file_one(r) for r in people))
    elapsed = time.perf_counter() - began
    with bench.db.session() as s:
        filed = int(s.exec(select(func.count()).select_from(Case)).one())
    await stop(bench)
    return elapsed, timed, filed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--database", default="", help="a PostgreSQL URL (default: a fresh SQLite file); it is emptied")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        elapsed, timed, filed = asyncio.run(file_reports(url, args.workers, Path(tmp) / "media"))
        echo_elapsed, echo = asyncio.run(run_echo(args.workers, 4))
    n = len(timed.latencies)
    print(
        f"GridDesk on {'PostgreSQL' if args.database else 'SQLite'}, {args.workers} workers, {filed} cases filed ({n} updates)"
    )
    print(f"  reports/s {filed / elapsed:8.1f}   updates/s {n / elapsed:8.1f}   per update: {timed.summary()}")
    print_echo_comparison(elapsed, timed, echo_elapsed, echo)
    if filed != args.workers:
        raise SystemExit(f"expected {args.workers} cases, found {filed}")


if __name__ == "__main__":
    main()
