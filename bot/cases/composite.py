"""The before and after photos side by side in one JPEG (处置前 | 处置后): what a reporter
verifies from, and what a closed case's cards show. Pillow and the shipped font only: it is
drawn in the photo workers (handlers/workers.py), 50–60 ms a composite that would otherwise
take one of the database's threads."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from bot.fonts import CJK_FONT
from bot.intake.photos import absolute

# The composite's height; each side keeps its aspect ratio at it.
HEIGHT = 720
GAP = 12
BAR = 48  # the coloured bar over each side, red before and green after, with its label
BEFORE_COLOUR = (200, 40, 40)
AFTER_COLOUR = (40, 160, 70)


def before_after_jpeg(
    before: bytes, after: bytes, *, labels: tuple[str, str] = ("处置前", "处置后"), height: int = HEIGHT
) -> bytes:
    """One JPEG: the before photo on the left, the after photo on the right, each under a
    coloured bar (red before, green after) that names it in the reader's language."""
    sides = []
    for data in (before, after):
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
            width = max(1, round(image.width * height / image.height))
            sides.append(image.resize((width, height)))
    total = sides[0].width + GAP + sides[1].width
    canvas = Image.new("RGB", (total, height + BAR), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(str(CJK_FONT), size=BAR * 2 // 3)
    x = 0
    for side, colour, label in zip(sides, (BEFORE_COLOUR, AFTER_COLOUR), labels, strict=True):
        draw.rectangle((x, 0, x + side.width - 1, BAR - 1), fill=colour)
        draw.text((x + side.width // 2, BAR // 2), label, font=font, fill=(255, 255, 255), anchor="mm")
        canvas.paste(side, (x, BAR))
        x += side.width + GAP
    out = io.BytesIO()
    canvas.save(out, format="JPEG", quality=85)
    return out.getvalue()


def from_files(media_dir: Path, before: str, after: str, labels: tuple[str, str]) -> bytes:
    """:func:`before_after_jpeg` of two stored photos (paths under ``media_dir``)."""
    return before_after_jpeg(
        absolute(media_dir, before).read_bytes(), absolute(media_dir, after).read_bytes(), labels=labels
    )


def write_file(media_dir: Path, before: str, after: str, labels: tuple[str, str], target: str) -> None:
    """:func:`from_files`, stored at ``target`` (under ``media_dir``) whole or not at all: two
    writers at once (two chats' cards) write the same bytes, and the last one wins whole."""
    path = absolute(media_dir, target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{secrets.token_hex(6)}.part")
    partial.write_bytes(from_files(media_dir, before, after, labels))
    os.replace(partial, path)
