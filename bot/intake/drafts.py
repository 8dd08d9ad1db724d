"""The report being written: which fields it has, and what to ask for next.

Slot filling rather than a fixed script: a worker can send the photo first (with the
description as its caption), or the location first, and the bot asks only for what is
still missing. The draft lives in the database, so a restart loses nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.intake import submit as intake
from bot.intake.submit import PhotoIn, ReportIn, VoiceIn
from bot.runtime import Runtime
from storage import drafts, people

MAX_PHOTOS = 10
MAX_DESCRIPTION = intake.MAX_DESCRIPTION  # one limit: what the draft takes, the case keeps whole
TOKEN_LIMIT = 10**12  # fits the typed button classes (at most 12 digits)

LOCATION, PHOTOS, DESCRIPTION, CATEGORY, CONFIRM = "location", "photos", "description", "category", "confirm"


@dataclass
class Draft:
    id: int
    user_id: int
    source: str
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None
    grid_id: int | None = None
    outside: bool = False  # the last location fell outside every grid
    photos: list[dict[str, Any]] = field(default_factory=list)
    voices: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    category_id: int | None = None
    exif_offer: list[float] | None = None  # a photo's GPS position, offered as the location
    albums: dict[str, int] = field(default_factory=dict)  # media_group_id -> our ack message id
    photos_prompted: bool = False
    # Names this draft in its buttons. Not the row id: SQLite hands a deleted row's id to
    # the next insert, so a button of a cancelled report would match the new one.
    token: int = 0

    @property
    def ref(self) -> int:
        return self.token or self.id

    @property
    def has_location(self) -> bool:
        return self.grid_id is not None

    @property
    def has_description(self) -> bool:
        return bool(self.description) or bool(self.voices)

    def next_step(self) -> str:
        if not self.has_location:
            return LOCATION
        if not self.photos:
            return PHOTOS
        if not self.has_description:
            return DESCRIPTION
        if self.category_id is None:
            return CATEGORY
        return CONFIRM

    def data(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("id")
        d.pop("user_id")
        return d

    def to_report(self) -> ReportIn:
        assert self.grid_id is not None and self.category_id is not None
        assert self.latitude is not None and self.longitude is not None
        return ReportIn(
            reporter_user_id=self.user_id,
            source=self.source,
            latitude=self.latitude,
            longitude=self.longitude,
            address=self.address,
            grid_id=self.grid_id,
            category_id=self.category_id,
            description=self.description or "",
            photos=tuple(PhotoIn(**_photo_fields(p)) for p in self.photos),
            voices=tuple(VoiceIn(**v) for v in self.voices),
        )


def _photo_fields(p: dict[str, Any]) -> dict[str, Any]:
    taken = p.get("taken_at")
    return {
        "file_id": p["file_id"],
        "sha256": p["sha256"],
        "original_path": p["original_path"],
        "jpeg_path": p["jpeg_path"],
        "thumb_path": p["thumb_path"],
        "width": p["width"],
        "height": p["height"],
        "taken_at": datetime.fromisoformat(taken) if taken else None,
    }


def _from_row(row: Any) -> Draft:
    known = {k: v for k, v in (row.data or {}).items() if k in Draft.__dataclass_fields__}
    return Draft(id=row.id, user_id=row.user_id, **known)


@dataclass(frozen=True)
class Loaded:
    draft: Draft | None
    expired: bool  # there was one, but it sat idle too long and is gone


def load(rt: Runtime, user_id: int) -> Loaded:
    """The user's draft; an idle one is discarded (and reported) instead of resumed.

    Every private message asks this, so it reads without the write lock and only takes it
    to discard an expired draft."""
    with rt.db.read() as s:
        row = drafts.get(s, user_id)
    return loaded(rt, user_id, row)


def loaded(rt: Runtime, user_id: int, row: Any) -> Loaded:
    """What a draft row read just now means: none, one to resume, or one idle too long
    (discarded here, in a unit of work of its own: rare)."""
    if row is None:
        return Loaded(None, False)
    cutoff = rt.clock.now() - timedelta(minutes=rt.settings.report_idle_minutes)
    if row.updated_at >= cutoff:
        return Loaded(_from_row(row), False)
    with rt.db.session() as s:
        drafts.remove_if_idle(s, user_id, cutoff)
    return Loaded(None, True)


def start(rt: Runtime, *, user_id: int, source: str) -> Draft:
    with rt.db.session() as s:
        token = secrets.randbelow(TOKEN_LIMIT - 1) + 1
        row = drafts.create(
            s, user_id=user_id, step=LOCATION, data={"source": source, "token": token}, now=rt.clock.now()
        )
        return _from_row(row)


def begin(rt: Runtime, *, user_id: int, source: str, resident: bool) -> Loaded:
    """The report under way, resumed, or else a new one once the hourly limit allows it
    (RateLimited otherwise): one unit of work for /report."""
    now = rt.clock.now()
    cutoff = now - timedelta(minutes=rt.settings.report_idle_minutes)
    with rt.db.session() as s:
        row = drafts.get(s, user_id)
        if row is not None and row.updated_at >= cutoff:
            return Loaded(_from_row(row), False)
        intake.check_rate_in(s, rt, user_id=user_id, resident=resident)
        token = secrets.randbelow(TOKEN_LIMIT - 1) + 1
        # create() replaces an idle draft, which the caller reports as timed out.
        fresh = drafts.create(s, user_id=user_id, step=LOCATION, data={"source": source, "token": token}, now=now)
        return Loaded(_from_row(fresh), row is not None)


def save(rt: Runtime, draft: Draft) -> None:
    with rt.db.session() as s:
        row = drafts.get(s, draft.user_id)
        if row is None or row.id != draft.id or (row.data or {}).get("token", 0) != draft.token:
            return  # cancelled or replaced meanwhile: nothing to save into
        drafts.save(s, row, step=draft.next_step(), data=draft.data(), now=rt.clock.now())


def discard(rt: Runtime, user_id: int) -> bool:
    with rt.db.session() as s:
        existed = drafts.get(s, user_id) is not None
        drafts.remove(s, user_id)
        return existed


def expire_idle(rt: Runtime) -> list[int]:
    """Drop drafts idle past the limit; returns the users to tell (their telegram ids)."""
    before = rt.clock.now() - timedelta(minutes=rt.settings.report_idle_minutes)
    told = []
    with rt.db.session() as s:
        for row in drafts.idle_since(s, before):
            user = people.get_user(s, row.user_id)
            drafts.remove(s, row.user_id)
            if user is not None:
                told.append(user.telegram_id)
    return told


def photo_dict(photo: PhotoIn) -> dict[str, Any]:
    d = asdict(photo)
    d["taken_at"] = photo.taken_at.isoformat() if photo.taken_at else None
    return d
