"""What a reporter asked to verify sees: the handler's result note, the departments'
replies, and the before and after photos side by side in one image (处置前 | 处置后, drawn by
bot/cases/composite.py in a photo worker)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bot.cases.cards import CaseView, Names
from bot.i18n import t_plain
from bot.org import index
from bot.runtime import Runtime
from storage import worklists
from storage.models import CaseState


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


COMPOSITE_DIR = "composites"


def shows_composite(view: CaseView) -> bool:
    """Whether the case's photo cards show the before/after composite (a cheap test, no files)."""
    return view.state == CaseState.CLOSED and bool(view.photo_paths) and bool(view.after_photo_paths)


@dataclass(frozen=True)
class Composite:
    """The before/after composite a CLOSED case's cards show: which photos, and where the
    composite is kept under the media dir."""

    before: str
    after: str
    path: str
    labels: tuple[str, str]


def closed_composite(view: CaseView, lang: str) -> Composite | None:
    """The composite a CLOSED case's cards show instead of the first report photo: drawn once
    per case, photos and language (a reopened case closed with a new after photo gets a new
    file), then reused by every chat (and, once uploaded, sent by Telegram's file_id). None
    when the case is not closed or lacks a before or an after photo."""
    if not shows_composite(view):
        return None
    before, after = view.photo_paths[0], view.after_photo_paths[-1]
    digest = hashlib.sha1(f"{before}|{after}".encode()).hexdigest()[:12]
    return Composite(before, after, f"{COMPOSITE_DIR}/{view.id}-{digest}-{lang}.jpg", labels(lang))


def labels(lang: str) -> tuple[str, str]:
    return t_plain(lang, "work.photo_before"), t_plain(lang, "work.photo_after")
