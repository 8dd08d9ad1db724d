"""The photo pool (handlers/media.py): photos decode in worker processes, a bounded number at
a time, and what ten people can send at once stays within the bot's memory budget."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from bot.intake.photos import PhotoError, StoredPhoto, TooManyPixels, absolute, process_photo
from bot.workerinit import NICENESS
from handlers import media
from handlers.media import PHOTO_SLOTS, PHOTO_WORKERS, PHOTOS, decode_photo
from tests.fakebot import FakeTelegram
from tests.images import make_jpeg
from tests.test_photos import _huge_one_bit_png, assert_no_metadata

SHANGHAI = ZoneInfo("Asia/Shanghai")
photo_pool = PHOTOS.executor  # the process pool photos decode in, made on first use


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return 0.0


async def a_worker_pid() -> int:
    return await asyncio.wrap_future(photo_pool().submit(os.getpid))


async def test_a_photo_decodes_in_a_worker_process(tmp_path: Path) -> None:
    data = make_jpeg(4000, 3000, exif_gps=(30.2411, 120.1691), exif_time="2026:11:23 09:12:00")
    stored = await decode_photo(data, tmp_path, default_tz=SHANGHAI)
    assert isinstance(stored, StoredPhoto)
    assert (stored.width, stored.height) == (1600, 1200)
    assert stored.gps == pytest.approx((30.2411, 120.1691), abs=1e-6)
    assert_no_metadata(absolute(tmp_path, stored.jpeg_path))
    # The same as in this process (and found stored: nothing decoded twice).
    assert process_photo(data, tmp_path, default_tz=SHANGHAI) == stored
    assert await a_worker_pid() != os.getpid()


async def test_workers_do_not_load_the_bot(tmp_path: Path) -> None:
    # Spawned workers do not re-run __main__ (pytest here, the griddesk script in production):
    # they hold Pillow and bot.intake.photos, not PTB or SQLAlchemy.
    PHOTOS.shutdown()  # one fresh worker, which has decoded one photo
    await decode_photo(make_jpeg(300, 200), tmp_path, default_tz=SHANGHAI)
    heavy = "sorted(n for n in __import__('sys').modules if n.split('.')[0] in {'telegram', 'sqlalchemy', 'handlers', 'pytest', 'tests'})"
    assert await asyncio.wrap_future(photo_pool().submit(eval, heavy)) == []
    assert await asyncio.wrap_future(photo_pool().submit(eval, "'bot.intake.photos' in __import__('sys').modules"))


async def test_workers_give_way_to_the_bot(tmp_path: Path) -> None:
    """Decoding takes whole cores; the bot's own process, answering everyone's taps, comes first."""
    await decode_photo(make_jpeg(100, 100), tmp_path, default_tz=SHANGHAI)
    assert await asyncio.wrap_future(photo_pool().submit(os.nice, 0)) == min(os.nice(0) + NICENESS, 19)


async def test_a_refusal_crosses_the_process_boundary_typed(tmp_path: Path) -> None:
    with pytest.raises(TooManyPixels) as info:
        await decode_photo(_huge_one_bit_png(7000, 7000), tmp_path, default_tz=SHANGHAI)
    assert info.value.key == "photo.bad_size"
    assert info.value.params == {"min_side": 16, "max_megapixels": 36}
    assert info.value.size == (7000, 7000)
    assert list(tmp_path.rglob("*")) == []


async def test_shutdown_stops_the_workers_and_a_later_photo_starts_a_new_pool(tmp_path: Path) -> None:
    await decode_photo(make_jpeg(300, 200), tmp_path, default_tz=SHANGHAI)
    pool = photo_pool()
    pids = list(pool._processes)
    assert pids
    PHOTOS.shutdown()
    PHOTOS.shutdown()  # twice is fine
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: gone
    stored = await decode_photo(make_jpeg(300, 200, color=(1, 2, 3)), tmp_path, default_tz=SHANGHAI)
    assert stored.width == 300
    assert photo_pool() is not pool


async def test_shutdown_kills_a_worker_that_does_not_stop(tmp_path: Path) -> None:
    """A decoder stuck in a photo must not keep the bot (or pytest) from exiting: past its wait,
    shutdown kills the worker, and pools given up as broken are stopped with it."""
    others = set(threading.enumerate())  # other pools' (the picture worker's), if running
    broken = photo_pool()
    os.kill(await a_worker_pid(), signal.SIGKILL)
    with pytest.raises(PhotoError):
        for _ in range(50):
            await decode_photo(make_jpeg(300, 200), tmp_path, default_tz=SHANGHAI)
            await asyncio.sleep(0.05)
    pool = photo_pool()
    assert pool is not broken
    stuck = pool.submit(time.sleep, 600)
    pids = list(pool._processes)
    assert pids
    PHOTOS.shutdown(timeout=0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert stuck.done()
    assert PHOTOS._discarded == [] and not [
        t for t in set(threading.enumerate()) - others if type(t).__name__ == "_ExecutorManagerThread"
    ]


async def test_a_worker_that_dies_gives_a_photo_error_and_a_fresh_pool(tmp_path: Path) -> None:
    pool = photo_pool()
    os.kill(await a_worker_pid(), signal.SIGKILL)  # what the kernel's OOM killer would do
    with pytest.raises(PhotoError) as info:
        for _ in range(50):  # until the pool notices
            await decode_photo(make_jpeg(300, 200), tmp_path, default_tz=SHANGHAI)
            await asyncio.sleep(0.05)
    assert type(info.value) is PhotoError and info.value.key == "photo.error"
    assert photo_pool() is not pool
    stored = await decode_photo(make_jpeg(320, 200), tmp_path, default_tz=SHANGHAI)
    assert stored.width == 320


@pytest.mark.parametrize(
    "error", [OSError("handle is closed"), ValueError("bad value(s) in fds_to_keep")], ids=["pipe", "spawn"]
)
async def test_a_pool_that_breaks_under_the_submit_gives_a_photo_error_and_a_fresh_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """A worker killed while the pool starts another closes the pool's pipes under the
    submit itself (both errors seen under load): the same answer as a dead worker."""
    pool = photo_pool()

    def broken_submit(*_args: object, **_kwargs: object) -> None:
        raise error

    monkeypatch.setattr(pool, "submit", broken_submit)
    with pytest.raises(PhotoError) as info:
        await decode_photo(make_jpeg(300, 200), tmp_path, default_tz=SHANGHAI)
    assert type(info.value) is PhotoError and info.value.key == "photo.error"
    assert photo_pool() is not pool
    stored = await decode_photo(make_jpeg(320, 200), tmp_path, default_tz=SHANGHAI)
    assert stored.width == 320


async def test_concurrent_photos_are_bounded_by_the_slots(tg: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve residents send a photo at once: every one is taken, and no more than PHOTO_SLOTS
    are downloaded or decoding at any moment (the rest wait as updates, not as bytes)."""
    in_flight = 0
    most = 0
    real_decode = media.decode_photo

    async def counting(*args, **kwargs):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await real_decode(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(media, "decode_photo", counting)
    people = [tg.user(81_000 + i, f"resident{i}", language_code="en") for i in range(12)]
    turns = await asyncio.gather(
        *(
            user.send_document(make_jpeg(1200, 900, color=(i * 20, 40, 60)), file_name="p.jpg", mime_type="image/jpeg")
            for i, user in enumerate(people)
        )
    )
    assert all("1 photo received" in turn.texts[0] for turn in turns), [turn.texts for turn in turns]
    assert 1 <= most <= PHOTO_SLOTS
    assert PHOTO_WORKERS == 2


async def test_worst_images_at_once_memory(tmp_path: Path) -> None:
    """Four of the largest PNGs we accept (36 MP with alpha: ~145 MB each decoded) at once.
    Prints the RSS of this process and the photo workers; asserts only a loose sanity bound
    per worker (benchmarks/photo_pipeline.py measures the ten-resident figure)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (6000, 6000), (10, 20, 30, 100)).save(buffer, format="PNG")
    data = buffer.getvalue()
    await decode_photo(make_jpeg(100, 100), tmp_path, default_tz=SHANGHAI)  # workers up
    peaks: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in [os.getpid(), *photo_pool()._processes]:
                peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        results = await asyncio.gather(
            *(decode_photo(data + bytes([i]), tmp_path, default_tz=SHANGHAI) for i in range(4))
        )
    finally:
        stop.set()
        sampler.join()
    assert [(r.width, r.height) for r in results] == [(1600, 1600)] * 4
    main = peaks.pop(os.getpid())
    print(
        f"\nRSS peaks, 4 × 36 MP PNG at once: this process {main:.0f} MB, "
        f"photo workers {', '.join(f'{v:.0f} MB' for v in peaks.values())}, total {main + sum(peaks.values()):.0f} MB"
    )
    assert len(peaks) <= PHOTO_WORKERS
    assert all(peak < 350 for peak in peaks.values()), peaks
