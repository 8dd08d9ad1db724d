"""The report being written: which fields it has, and what to ask for next.

Slot filling rather than a fixed script: a worker can send the photo first (with the
description as its caption), or the location first, and the bot asks only for what is
still missing. The draft lives in the database, so a restart loses nothing.
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.intake import submit as intake
from bot.intake.submit import PhotoIn, ReportIn, VoiceIn
from bot.runtime import Runtime
from storage import drafts, people
from storage.drafts import DraftRow

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


def _from_row(row: DraftRow) -> Draft:
    # A copy: changing the draft must not change the row the unit of work holds (a later
    # read of it by id, as save_in's, must see what the database has).
    known = {k: copy.deepcopy(v) for k, v in (row.data or {}).items() if k in Draft.__dataclass_fields__}
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


def loaded(rt: Runtime, user_id: int, row: DraftRow | None) -> Loaded:
    """What a draft row read just now means: none, one to resume, or one idle too long
    (discarded here, in a unit of work of its own: rare)."""
    if row is None or not _idle(rt, row):
        return Loaded(_from_row(row) if row is not None else None, False)
    with rt.db.session() as s:
        return loaded_in(s, rt, user_id, row)


def loaded_in(s: Session, rt: Runtime, user_id: int, row: DraftRow | None) -> Loaded:
    """:func:`loaded` in the caller's unit of work (an idle draft is discarded in it)."""
    if row is None:
        return Loaded(None, False)
    if not _idle(rt, row):
        return Loaded(_from_row(row), False)
    drafts.remove_if_idle(s, user_id, _cutoff(rt))
    return Loaded(None, True)


def drop_idle(rt: Runtime, user_id: int) -> None:
    with rt.db.session() as s:
        drafts.remove_if_idle(s, user_id, _cutoff(rt))


def _cutoff(rt: Runtime) -> datetime:
    return rt.clock.now() - timedelta(minutes=rt.settings.report_idle_minutes)


def _idle(rt: Runtime, row: DraftRow) -> bool:
    return bool(row.updated_at < _cutoff(rt))


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
    with rt.db.session() as s:
        row = drafts.get(s, user_id, for_update=True)
        if row is not None and not _idle(rt, row):
            return Loaded(_from_row(row), False)
        # create() replaces an idle draft, which the caller reports as timed out.
        return Loaded(start_in(s, rt, user_id=user_id, source=source, resident=resident), row is not None)


def start_in(s: Session, rt: Runtime, *, user_id: int, source: str, resident: bool) -> Draft:
    """A new draft in the caller's unit of work, once the hourly limit allows it (RateLimited
    otherwise); it replaces any draft the user had."""
    intake.check_rate_in(s, rt, user_id=user_id, resident=resident)
    token = secrets.randbelow(TOKEN_LIMIT - 1) + 1
    fresh = drafts.create(
        s, user_id=user_id, step=LOCATION, data={"source": source, "token": token}, now=rt.clock.now()
    )
    return _from_row(fresh)


def save(rt: Runtime, draft: Draft) -> None:
    with rt.db.session() as s:
        save_in(s, rt, draft)


def save_in(s: Session, rt: Runtime, draft: Draft) -> bool:
    """Store the draft's fields in the caller's unit of work; False if it was cancelled or
    replaced meanwhile (nothing to save into). A row this unit of work read costs no read."""
    row = drafts.by_id(s, draft.id)
    if row is None or row.user_id != draft.user_id or (row.data or {}).get("token", 0) != draft.token:
        return False
    drafts.save(s, row, step=draft.next_step(), data=draft.data(), now=rt.clock.now())
    return True


def note_album(rt: Runtime, user_id: int, ref: int, group: str, message_id: int) -> None:
    """Keep the message id of the acknowledgement sent for an album (its later items edit it),
    unless the draft was cancelled or replaced, or the album's slot filled, meanwhile."""
    with rt.db.session() as s:
        row = drafts.get(s, user_id, for_update=True)
        if row is None:
            return
        draft = _from_row(row)
        if draft.ref != ref or draft.albums.get(group) != 0:
            return
        draft.albums[group] = message_id
        drafts.save(s, row, step=draft.next_step(), data=draft.data(), now=rt.clock.now())


def discard(rt: Runtime, user_id: int) -> bool:
    with rt.db.session() as s:
        return discard_in(s, user_id)


def discard_in(s: Session, user_id: int) -> bool:
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
