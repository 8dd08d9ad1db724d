"""The photo pipeline: its speed against Pillow's own floor, and the bot's memory under a burst.

Speed. On distinct 4000×3000 JPEGs (varied content, so every content hash differs), in the
same run and interleaved: the Pillow draft-mode floor (open, draft to a box of the photo's
aspect ratio, resize to 1600 px, thumbnail from that: nothing else) against the whole of
``process_photo`` (checks, hash, EXIF, normalize, two JPEG encodes, three files, one fsync).
Medians and their ratio (the target is at most 1.2×), plus the same photos through the
process pool from the event loop, as the handler runs them.

Memory. Ten residents send the worst image we still accept, all at once, through the real
Application on the fake Bot API; a thread samples the RSS of the bot's process and of its
children (the photo workers) every few milliseconds. One burst per kind of worst image; the
peak of the sum is the figure (the target is under 600 MB). RSS counts shared library pages
once per process, so the sum overstates a little; PSS, which does not, is printed beside it.

    python -m benchmarks.photo_pipeline
    python -m benchmarks.photo_pipeline --images 16 --rounds 3 --skip-memory
    python -m benchmarks.photo_pipeline --skip-speed --residents 10
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from PIL import Image

from bot.intake.photos import JPEG_MAX_SIDE, THUMB_MAX_SIDE, process_photo

TZ = ZoneInfo("Asia/Shanghai")
PHOTO = (4000, 3000)


# --------------------------------------------------------------------------- speed


def photo_like(seed: int, size: tuple[int, int] = PHOTO) -> bytes:
    """A 4000×3000 JPEG that compresses like a photo (noise over gradients), distinct per seed."""
    rng = random.Random(seed)
    small = (size[0] // 8, size[1] // 8)
    bands = []
    for channel in range(3):
        noise = Image.effect_noise(small, 30 + rng.randrange(40))
        gradient = Image.linear_gradient("L").resize(small).rotate(rng.randrange(360), expand=False)
        bands.append(Image.blend(noise, gradient, 0.3 + 0.1 * channel))
    img = Image.merge("RGB", bands).resize(size, Image.Resampling.BICUBIC)
    img.putpixel((seed % size[0], 0), (seed % 256, 0, 0))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def fitted(size: tuple[int, int], side: int) -> tuple[int, int]:
    longest = max(size)
    if longest <= side:
        return size
    return round(size[0] * side / longest), round(size[1] * side / longest)


def pillow_floor(data: bytes) -> Image.Image:
    """The least Pillow work that gives the same two images: nothing checked, encoded or written."""
    with Image.open(io.BytesIO(data)) as img:
        target = fitted(img.size, JPEG_MAX_SIDE)
        img.draft("RGB", target)
        img.load()
        normalized = img.resize(target, Image.Resampling.LANCZOS)
    return normalized.resize(fitted(normalized.size, THUMB_MAX_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def run_speed(images: int, rounds: int, media_parent: Path | None) -> None:
    print(f"Generating {images} distinct {PHOTO[0]}×{PHOTO[1]} JPEGs…")
    datas = [photo_like(seed) for seed in range(images)]
    sizes = [len(d) / 1e6 for d in datas]
    print(f"  {min(sizes):.1f}–{max(sizes):.1f} MB each")
    with tempfile.TemporaryDirectory(dir=media_parent) as tmp:
        floor, pipeline, pooled = asyncio.run(_speed(datas, rounds, Path(tmp)))
    f, p, q = statistics.median(floor), statistics.median(pipeline), statistics.median(pooled)
    print(f"Speed, {len(floor)} runs each, interleaved (median):")
    print(f"  Pillow draft-mode floor      {f * 1000:7.1f} ms")
    print(f"  process_photo                {p * 1000:7.1f} ms   ratio {p / f:.2f}× (target ≤ 1.2×)")
    print(f"  through the pool (awaited)   {q * 1000:7.1f} ms   ratio {q / f:.2f}× (+ pickling, IPC; one at a time)")


async def _speed(datas: list[bytes], rounds: int, tmp: Path) -> tuple[list[float], list[float], list[float]]:
    from handlers.media import PHOTOS, decode_photo

    floor: list[float] = []
    pipeline: list[float] = []
    pooled: list[float] = []
    try:
        # Warm up all three (plugin imports, first allocations, the worker's start).
        pillow_floor(datas[0])
        process_photo(datas[0], tmp / "warm", default_tz=TZ)
        await decode_photo(datas[0], tmp / "warm-pool", default_tz=TZ)
        for n in range(rounds):
            # A fresh store each round and for each path: nothing is ever found stored.
            media, pool_media = tmp / f"round{n}", tmp / f"pool{n}"
            for data in datas:
                floor.append(timed(functools.partial(pillow_floor, data)))
                pipeline.append(timed(functools.partial(process_photo, data, media, default_tz=TZ)))
                began = time.perf_counter()
                await decode_photo(data, pool_media, default_tz=TZ)
                pooled.append(time.perf_counter() - began)
    finally:
        PHOTOS.shutdown()
    return floor, pipeline, pooled


# --------------------------------------------------------------------------- memory


def _encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def worst_images() -> dict[str, tuple[str, str, bytes]]:
    """Kind -> (file name, MIME type, bytes): the largest image of each costly kind that
    ``process_photo`` still accepts (and one it refuses). Flat content: tiny on the wire, full
    size in memory."""
    png = Image.new("RGBA", (6000, 6000), (10, 20, 30, 100))  # 36 MP, alpha: flattened on white
    webp = Image.new("RGBA", (4060, 2708), (10, 20, 30, 100))  # 11 MP
    tiff = Image.new("RGB", (6000, 6000), (10, 20, 30))
    gif = Image.new("P", (6000, 6000), 3)
    jpeg = Image.new("RGB", (6528, 6528), (10, 20, 30))  # 42.6 MP at 4:2:0: 128 MB of coefficients
    jpeg444 = Image.new("RGB", (4616, 4616), (10, 20, 30))  # 21.3 MP at 4:4:4: 128 MB of coefficients
    return {
        "PNG RGBA 36 MP": ("worst.png", "image/png", _encoded(png, "PNG")),
        "WebP RGBA 11 MP": ("worst.webp", "image/webp", _encoded(webp, "WEBP", lossless=True)),
        "TIFF RGB 36 MP": ("worst.tiff", "image/tiff", _encoded(tiff, "TIFF", compression="tiff_deflate")),
        "GIF 36 MP, transparent": ("worst.gif", "image/gif", _encoded(gif, "GIF", transparency=3)),
        "JPEG progressive 42.6 MP 4:2:0": ("worst.jpg", "image/jpeg", _encoded(jpeg, "JPEG", progressive=True)),
        "JPEG progressive 21.3 MP 4:4:4": (
            "worst444.jpg",
            "image/jpeg",
            _encoded(jpeg444, "JPEG", progressive=True, subsampling=0),
        ),
        "JPEG 19.9 MB (same bytes)": ("big.jpg", "image/jpeg", big_jpeg()),
        # The issue's: 143 KB, ~500 MB to decode; now refused from its header.
        "refused: PNG RGB 49 MP": ("bomb.png", "image/png", _encoded(Image.new("RGB", (7000, 7000)), "PNG")),
    }


def big_jpeg(limit: int = 20 * 1024 * 1024) -> bytes:
    """A baseline JPEG just under the 20 MB download limit: the most bytes a photo can bring."""
    side = 6000
    while True:
        noise = Image.effect_noise((side // 4, side // 4), 90).resize((side, side), Image.Resampling.NEAREST)
        img = Image.merge("RGB", [noise, noise.transpose(Image.Transpose.ROTATE_90), noise.rotate(45)])
        data = _encoded(img, "JPEG", quality=88)
        if len(data) <= limit:
            return data
        side -= 400


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def _pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1000
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # pid (comm) state ppid ...: comm may hold spaces, so split after ")"
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


@dataclass
class Sampler:
    """Samples RSS (and now and then PSS) of this process and its children until stopped."""

    interval: float = 0.005
    peak_total: float = 0.0
    peak_main: float = 0.0
    peak_children: float = 0.0
    peak_pss: float = 0.0
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> tuple[float, float]:
        me = os.getpid()
        children = _children(me)
        main = _rss_mb(me)
        kids = sum(_rss_mb(pid) for pid in children)
        return main, kids

    def _run(self) -> None:
        me = os.getpid()
        children = _children(me)
        n = 0
        while not self._stop.is_set():
            if n % 20 == 0:
                children = _children(me)
                self.peak_pss = max(self.peak_pss, _pss_mb(me) + sum(_pss_mb(pid) for pid in children))
            main = _rss_mb(me)
            kids = sum(_rss_mb(pid) for pid in children)
            self.peak_main = max(self.peak_main, main)
            self.peak_children = max(self.peak_children, kids)
            self.peak_total = max(self.peak_total, main + kids)
            self.processes = max(self.processes, 1 + len(children))
            n += 1
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()


async def run_memory(residents: int, db_url: str, media: Path) -> None:
    from benchmarks.common import start, stop
    from handlers.media import PHOTO_SLOTS, PHOTO_WORKERS, PHOTOS
    from tests.images import make_jpeg

    print("Generating the worst accepted images…")
    # In another process: making them takes GBs of Pillow images, which this one (standing in
    # for the bot) would partly keep in its heap afterwards.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as maker:
        kinds = maker.submit(worst_images).result()
    bench = await start(db_url, media)
    try:
        people = [bench.tg.user(70_000 + i, f"resident{i}", language_code="en") for i in range(residents)]
        # One photo first, so the workers exist: the idle figure is the bot at rest.
        await people[0].send_document(make_jpeg(800, 600), file_name="warm.jpg", mime_type="image/jpeg")
        await people[0].send("/cancel")
        await asyncio.sleep(0.5)
        main, kids = Sampler().sample()
        print(
            f"Memory: {residents} residents send the same kind of image at once; "
            f"{PHOTO_WORKERS} photo workers, {PHOTO_SLOTS} photos in flight at most."
        )
        print(
            f"  at rest (photo workers started): bot {main:.0f} MB + children {kids:.0f} MB = {main + kids:.0f} MB RSS"
        )
        print(f"  {'kind':32} {'bytes':>9} {'peak RSS':>9} {'bot':>6} {'children':>9} {'PSS':>6} {'took':>7}  answers")
        worst = 0.0
        for kind, (name, mime, data) in kinds.items():
            same = kind.endswith("(same bytes)")
            # Distinct bytes per resident (a tag after the image's end), so none is found stored.
            variants = [data if same else data + f"\0resident-{i}".encode() for i in range(residents)]
            began = time.perf_counter()
            with Sampler() as sampler:
                turns = await asyncio.gather(
                    *(
                        user.send_document(v, file_name=name, mime_type=mime)
                        for user, v in zip(people, variants, strict=True)
                    )
                )
            took = time.perf_counter() - began
            accepted = sum(1 for turn in turns if turn.texts and "1 photo received" in turn.texts[0])
            answers = f"{accepted}/{residents} taken" if accepted == residents else _first_answers(turns)
            print(
                f"  {kind:32} {len(data) / 1e6:7.2f}MB {sampler.peak_total:7.0f}MB {sampler.peak_main:5.0f}M "
                f"{sampler.peak_children:8.0f}M {sampler.peak_pss:5.0f}M {took:6.1f}s  {answers}"
            )
            worst = max(worst, sampler.peak_total)
            for user in people:
                await user.send("/cancel")
            del variants, turns
        print(f"  worst peak: {worst:.0f} MB RSS, bot + photo workers (target < 600 MB)")
    finally:
        await stop(bench)
        PHOTOS.shutdown()


def _first_answers(turns: list) -> str:
    seen: dict[str, int] = {}
    for turn in turns:
        text = (turn.texts or ["(no answer)"])[0][:60]
        seen[text] = seen.get(text, 0) + 1
    return "; ".join(f"{n}× {text}" for text, n in seen.items())


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12, help="distinct 4000×3000 JPEGs for the speed part")
    parser.add_argument("--rounds", type=int, default=2, help="times each is processed (a fresh store each round)")
    parser.add_argument("--residents", type=int, default=10, help="photos sent at once in the memory part")
    parser.add_argument("--media-parent", type=Path, default=None, help="where the media folders go (default: tmp)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        run_speed(args.images, args.rounds, args.media_parent)
    if args.skip_memory:
        return
    if not args.skip_speed:
        # The speed part decoded photos in this process, whose heap keeps some of that: measure
        # the bot's memory in a fresh interpreter.
        command = [
            sys.executable,
            "-m",
            "benchmarks.photo_pipeline",
            "--skip-speed",
            "--residents",
            str(args.residents),
        ]
        if args.media_parent is not None:
            command += ["--media-parent", str(args.media_parent)]
        sys.stdout.flush()
        subprocess.run(command, check=True)
        return
    with tempfile.TemporaryDirectory(dir=args.media_parent) as tmp:
        asyncio.run(run_memory(args.residents, f"sqlite:///{tmp}/bench.db", Path(tmp) / "media"))


if __name__ == "__main__":
    main()
