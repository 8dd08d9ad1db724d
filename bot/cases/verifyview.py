"""What a reporter asked to verify sees: the handler's result note, the departments'
replies, and the before and after photos side by side in one image (处置前 | 处置后)."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont, ImageOps

from bot.cases.cards import CaseView, Names
from bot.fonts import CJK_FONT
from bot.i18n import t_plain
from bot.intake.photos import absolute
from bot.org import index
from bot.runtime import Runtime
from storage import worklists
from storage.models import CaseState

# The composite's height; each side keeps its aspect ratio at it.
HEIGHT = 720
GAP = 12
BAR = 48  # the coloured bar over each side, red before and green after, with its label
BEFORE_COLOUR = (200, 40, 40)
AFTER_COLOUR = (40, 160, 70)


@dataclass(frozen=True)
class VerifyDetails:
    note: str | None = None  # the handler's result note (the latest resolution's)
    replies: list[tuple[Names, str]] = field(default_factory=list)  # (department, what it said)
    rounds: int = 0  # how many times the case was resolved (2+: reopened in between)


def verify_details(rt: Runtime, case_id: int) -> VerifyDetails:
    known = index.org(rt)
    note: str | None = None
    replies: list[tuple[Names, str]] = []
    rounds = 0
    with rt.db.read() as s:
        for event in worklists.timeline(s, case_id):
            if event.action == "case.resolved":
                rounds += 1
                note = event.note
            elif event.action == "case.department_reply" and event.note:
                unit = known.unit((event.data or {}).get("unit_id"))
                name = Names(unit.name_zh, unit.name_en) if unit is not None else Names("—", "—")
                replies.append((name, event.note))
    return VerifyDetails(note, replies, rounds)


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


COMPOSITE_DIR = "composites"


def shows_composite(view: CaseView) -> bool:
    """Whether the case's photo cards show the before/after composite (a cheap test, no files)."""
    return view.state == CaseState.CLOSED and bool(view.photo_paths) and bool(view.after_photo_paths)


def closed_composite(rt: Runtime, view: CaseView, lang: str) -> str | None:
    """The before/after composite a CLOSED case's cards show instead of the first report
    photo: its path under the media dir, rendered once per case, photos and language (a
    reopened case closed with a new after photo gets a new file), then reused by every chat
    (and, once uploaded, sent by Telegram's file_id). None when the case is not closed or
    lacks a before or an after photo."""
    if not shows_composite(view):
        return None
    before, after = view.photo_paths[0], view.after_photo_paths[-1]
    digest = hashlib.sha1(f"{before}|{after}".encode()).hexdigest()[:12]
    rel = f"{COMPOSITE_DIR}/{view.id}-{digest}-{lang}.jpg"
    root = rt.settings.media_dir
    target = absolute(root, rel)
    if target.exists():
        return rel
    labels = (t_plain(lang, "work.photo_before"), t_plain(lang, "work.photo_after"))
    data = before_after_jpeg(absolute(root, before).read_bytes(), absolute(root, after).read_bytes(), labels=labels)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{secrets.token_hex(6)}.part")  # one per writer, threads too
    partial.write_bytes(data)
    os.replace(partial, target)  # two senders at once: the same bytes, the last one wins whole
    return rel
