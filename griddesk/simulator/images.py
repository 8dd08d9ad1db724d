"""The fake server's Pillow work: photo dimensions and Telegram-style thumbnails.

Cheap on purpose, so benchmarks measure the bot and not the harness: the photo is decoded
once at a reduced scale (JPEG draft mode still reads the whole stream, so a truncated file
fails as on Telegram), and thumbnails are only rendered when someone asks for their bytes.
"""

from __future__ import annotations

import io
import math

from PIL import Image

THUMBNAIL_BOXES = (90, 320, 800)  # the smaller PhotoSizes Telegram keeps next to the original


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a complete, decodable image; None for anything Telegram would
    refuse to process (garbage, truncated files)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            # Decoding at 1/8 scale still parses every byte: truncation is still detected.
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
            return size
    except Exception:
        return None


def fit(width: int, height: int, box: int) -> tuple[int, int]:
    """The size ``Image.thumbnail((box, box))`` gives an image of this size (same rounding)."""
    if box >= width and box >= height:
        return width, height

    def round_aspect(number: float, key: object) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)  # type: ignore[call-overload]

    aspect = width / height
    if aspect <= 1:
        return round_aspect(box * aspect, key=lambda n: abs(aspect - n / box)), box
    return box, round_aspect(box / aspect, key=lambda n: 0 if n == 0 else abs(aspect - box / n))


def thumbnail(data: bytes, box: int) -> bytes:
    """A JPEG no larger than box×box (re-encoding also drops EXIF, as Telegram does)."""
    with Image.open(io.BytesIO(data)) as image:
        target = fit(*image.size, box)
        image.draft("RGB", target)
        rgb = image.convert("RGB").resize(target)
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=80)
        return out.getvalue()


def plain_jpeg(width: int = 640, height: int = 480, colour: tuple[int, int, int] = (120, 160, 200)) -> bytes:
    """A small real JPEG (a photo a simulated person sends when no bytes are given)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="JPEG", quality=85)
    return out.getvalue()
