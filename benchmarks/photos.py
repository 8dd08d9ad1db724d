"""Distinct photos for benchmarks.

The bot stores photos by content (SHA-256), so sending the same bytes twice processes only
the first: a benchmark that reuses one JPEG measures a cache, not the photo pipeline. Here
every photo handed out has bytes no other photo has, while the expensive part (encoding a
JPEG of that size) is done up front, outside any measured window:

* a small pool of pixel-distinct JPEGs per size (a noise patch in a random place), and
* for each photo handed out, a JPEG comment segment carrying a serial number, so even a
  reused pool image hashes differently. Decoding it costs the bot exactly as much.
"""

from __future__ import annotations

import io
import itertools
import random
import struct

from PIL import Image, ImageDraw

STANDARD = (1280, 960)
BIG = (4000, 3000)
_SERIALS = itertools.count(1)  # shared by every factory: no two photos of a run are alike


def _render(size: tuple[int, int], rng: random.Random) -> bytes:
    """A photo-like JPEG: gradient, a few shapes, and a patch of noise no other photo has."""
    width, height = size
    base = (rng.randrange(40, 200), rng.randrange(40, 200), rng.randrange(40, 200))
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image = Image.blend(image, Image.new("RGB", size, base), 0.6)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 40, width // 8)
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    # Sensor-like grain, so the JPEG is about as big as a phone's (entropy decoding costs).
    grain = Image.effect_noise(size, 40).convert("RGB")
    image = Image.blend(image, grain, 0.12)
    patch = max(32, width // 20)
    noise = Image.frombytes("RGB", (patch, patch), rng.randbytes(patch * patch * 3))
    image.paste(noise, (rng.randrange(width - patch), rng.randrange(height - patch)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def with_serial(jpeg: bytes, serial: int) -> bytes:
    """The JPEG with a COM segment right after SOI: same pixels, different bytes."""
    comment = f"griddesk-bench-{serial}".encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


class PhotoFactory:
    """Hands out photos of one size, each with bytes never handed out before."""

    def __init__(self, size: tuple[int, int] = STANDARD, *, pool: int = 8, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.size = size
        self._pool = [_render(size, rng) for _ in range(pool)]

    def __call__(self) -> bytes:
        serial = next(_SERIALS)
        return with_serial(self._pool[serial % len(self._pool)], serial)
