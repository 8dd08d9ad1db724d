"""Intake: a finished report becomes a case (立案), routed and, where the street says so,
dispatched at once (派遣). Or it joins an open case as a supporting report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot import notify
from bot.cases import lifecycle
from bot.errors import DomainError
from bot.i18n import N_, bilingual
from bot.interop import webhooks
from bot.org import index
from bot.org.geo import bounding_box, haversine_m
from bot.org.routing import route
from bot.runtime import Runtime
from storage import audit, cases, drafts, external, orgs
from storage.models import Case, CaseState, ExternalTicket, SupportingReport, pk

MAX_DESCRIPTION = 8000  # the draft accepts this much; the case must keep all of it


class RateLimited(DomainError):
    key = "report.rate_limited"


class PlaceUnknown(DomainError):
    key = "report.place_unknown"


class CategoryUnknown(DomainError):
    key = "report.category_unknown"


class CaseNotOpen(DomainError):
    key = "report.case_not_open"


class NotOffered(DomainError):
    """A join naming a case the summary did not offer (another category, far away, old):
    a forged button, answered like any stale one."""

    key = "button.stale"


@dataclass(frozen=True)
class PhotoIn:
    file_id: str
    sha256: str
    original_path: str
    jpeg_path: str
    thumb_path: str
    width: int
    height: int
    taken_at: datetime | None = None


@dataclass(frozen=True)
class VoiceIn:
    file_id: str
    duration: int


@dataclass(frozen=True)
class ExternalIn:
    """Where a report that did not come through Telegram came from (Open311, the 12345
    hotline), and what about it must stay private (the caller's contact)."""

    source: str  # open311, hotline
    token: str  # Open311's token for the request
    api_key_id: int | None = None
    ticket_no: str | None = None
    caller_name: str | None = None
    caller_phone: str | None = None
    deadline: datetime | None = None  # the hotline's own deadline, if it set one
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReportIn:
    reporter_user_id: int | None  # None: from outside Telegram (see `external`)
    source: str
    latitude: float
    longitude: float
    grid_id: int
    category_id: int
    description: str
    photos: tuple[PhotoIn, ...]
    voices: tuple[VoiceIn, ...] = ()
    address: str | None = None
    external: ExternalIn | None = None


@dataclass(frozen=True)
class Submitted:
    case_id: int
    code: str
    state: str
    unit_id: int | None
    unit_name_zh: str | None
    unit_name_en: str | None
    joined: bool = False

    def unit_name(self, lang: str) -> str | None:
        return bilingual(lang, self.unit_name_zh, self.unit_name_en)


@dataclass(frozen=True)
class Candidate:
    case_id: int
    code: str
    distance_m: float
    created_at: datetime
    description: str


def check_rate(rt: Runtime, *, user_id: int, resident: bool) -> None:
    """Residents (and, more loosely, workers) may file so many reports an hour."""
    with rt.db.read() as s:
        check_rate_in(s, rt, user_id=user_id, resident=resident)


def check_rate_in(s: Session, rt: Runtime, *, user_id: int, resident: bool) -> None:
    """:func:`check_rate` inside the caller's unit of work."""
    limit = rt.settings.resident_reports_per_hour if resident else rt.settings.worker_reports_per_hour
    if cases.count_reports_since(s, user_id, rt.clock.now() - timedelta(hours=1)) >= limit:
        raise RateLimited(limit=limit)


def case_code(abbr: str, local_day: str, seq: int) -> str:
    return f"{abbr}-{local_day}-{seq:04d}"


@dataclass(frozen=True)
class Ack:
    """Whom to tell the case code, and the summary message they pressed Submit on: that
    message becomes the receipt (edited, so sending it again after a crash changes nothing
    Telegram shows: "not modified"), and nothing is sent twice to the reporter."""

    chat_id: int
    summary_message_id: int | None = None
    summary_html: str = ""  # the summary as shown, kept above the code


def acknowledge(s: Session, *, ack: Ack | None, done: Submitted, case: Case, unit: Any, now: datetime) -> None:
    """The reporter's acknowledgement with the case code, as an outbox row in the transaction
    that registers the report: a failed reply (one 502) can never leave them without it."""
    if ack is None:
        return
    if done.joined:
        key, params = N_("report.joined"), {}
    elif done.unit_id is not None and unit is not None:
        key, params = N_("report.submitted_to_team"), {"team_zh": unit.name_zh, "team_en": unit.name_en}
    else:
        key, params = N_("report.submitted_to_command"), {}
    if ack.summary_message_id is not None:
        receipt = notify.Receipt(ack.summary_message_id, ack.summary_html)
        notify.text_to_user(
            s, telegram_id=ack.chat_id, key=key, now=now, case_id=case.id, receipt=receipt, code=case.code, **params
        )
        return
    notify.text_to_user(
        s, telegram_id=ack.chat_id, key=key, now=now, case_id=case.id, menu="main", code=case.code, **params
    )


def submit_report(rt: Runtime, report: ReportIn, *, finish_draft: bool = False, ack: Ack | None = None) -> Submitted:
    """Register the case, route it, dispatch it if the street auto-dispatches, and queue the
    cards: all in one transaction, so a case never exists without its notifications (and,
    with `finish_draft`, never beside the draft it came from, which could be sent twice).
    With `ack`, the reporter's acknowledgement is queued in the same transaction."""
    with rt.db.session() as s:
        return submit_report_in(s, rt, report, finish_draft=finish_draft, ack=ack)


def submit_report_in(
    s: Session, rt: Runtime, report: ReportIn, *, finish_draft: bool = False, ack: Ack | None = None
) -> Submitted:
    """:func:`submit_report` in the caller's unit of work (the report conversation's step)."""
    now = rt.clock.now()
    local_day = now.astimezone(rt.settings.tz).strftime("%y%m%d")
    if finish_draft and report.reporter_user_id is not None:
        drafts.remove(s, report.reporter_user_id)
    known = index.org(rt)
    grid = known.grid(report.grid_id)
    if grid is None or not grid.active:
        raise PlaceUnknown()
    category = known.category(report.category_id)
    if category is None or not category.active:
        raise CategoryUnknown()
    street = known.street(grid.street_id)
    assert street is not None
    team = route(category.platform_id, known.teams(pk(street)))
    seq = cases.next_sequence(s, prefix=street.abbr, day=local_day)
    case = cases.add_case(
        s,
        code=case_code(street.abbr, local_day, seq),
        state=CaseState.REPORTED,
        source=report.source,
        reporter_user_id=report.reporter_user_id,
        street_id=street.id,
        community_id=grid.community_id,
        grid_id=grid.id,
        category_id=category.id,
        suggested_unit_id=team.id if team else None,
        latitude=report.latitude,
        longitude=report.longitude,
        address=report.address,
        description=report.description[:MAX_DESCRIPTION],
        urgent=category.urgent,
        created_at=now,
        updated_at=now,
    )
    add_media(
        s,
        case_id=pk(case),
        stage="report",
        added_by=report.reporter_user_id,
        now=now,
        photos=report.photos,
        voices=report.voices,
    )
    if report.external is not None:
        _add_ticket(s, pk(case), report.external, now)
    audit.record(
        s,
        action="case.reported",
        subject_type="case",
        subject_id=case.id,
        case_id=case.id,
        actor_user_id=report.reporter_user_id,
        to_state=CaseState.REPORTED,
        data={"source": report.source, "suggested_unit_id": case.suggested_unit_id},
        at=now,
    )
    webhooks.case_event(rt, s, case, webhooks.CREATED, now)
    # The command room sees every case: to decide, or (auto-dispatch) for information.
    if street.auto_dispatch and team is not None:
        lifecycle.dispatch_to(rt, s, case, team, None, now)
    else:
        notify.card_to_command_room(rt, s, case=case, now=now)
    unit = known.unit(case.unit_id or case.suggested_unit_id)
    done = Submitted(
        case_id=case.id,  # type: ignore[arg-type]
        code=case.code,
        state=case.state,
        unit_id=case.unit_id,
        unit_name_zh=unit.name_zh if unit and case.unit_id else None,
        unit_name_en=unit.name_en if unit and case.unit_id else None,
    )
    acknowledge(s, ack=ack, done=done, case=case, unit=unit, now=now)
    return done


def _add_ticket(s: Session, case_id: int, ext: ExternalIn, now: datetime) -> None:
    external.add_ticket(
        s,
        ExternalTicket(
            case_id=case_id,
            source=ext.source,
            api_key_id=ext.api_key_id,
            ticket_no=ext.ticket_no,
            token=ext.token,
            caller_name=ext.caller_name,
            caller_phone=ext.caller_phone,
            deadline=ext.deadline,
            attributes=ext.attributes or {},
            created_at=now,
        ),
    )


def add_media(
    s: Session,
    *,
    case_id: int,
    stage: str,
    added_by: int | None,
    now: datetime,
    photos: tuple[PhotoIn, ...] | list[PhotoIn] = (),
    voices: tuple[VoiceIn, ...] = (),
    support_id: int | None = None,
) -> None:
    """Attach stored photos and voice notes to a case at a stage of its life (report,
    support, progress, after, reverify)."""
    common: dict[str, Any] = {
        "case_id": case_id,
        "support_id": support_id,
        "stage": stage,
        "added_by_user_id": added_by,
        "created_at": now,
    }
    media = [
        common
        | {
            "kind": "photo",
            "telegram_file_id": photo.file_id,
            "sha256": photo.sha256,
            "original_path": photo.original_path,
            "jpeg_path": photo.jpeg_path,
            "thumb_path": photo.thumb_path,
            "width": photo.width,
            "height": photo.height,
            "taken_at": photo.taken_at,
        }
        for photo in photos
    ]
    media += [common | {"kind": "voice", "telegram_file_id": v.file_id, "duration": v.duration} for v in voices]
    cases.add_media(s, media)


def find_duplicates(
    rt: Runtime, *, category_id: int, latitude: float, longitude: float, grid_id: int | None = None
) -> list[Candidate]:
    """Open cases of the same category nearby and recent: probably the same problem.

    A grid's centre ("use my grid's centre") says where the grid is, not where the problem
    is: such a point is left out of the check, on either side."""
    if at_grid_centre(rt, grid_id, latitude, longitude):
        return []
    with rt.db.read() as s:
        return find_duplicates_in(
            s, rt, category_id=category_id, latitude=latitude, longitude=longitude, grid_id=grid_id
        )


def find_duplicates_in(
    s: Session, rt: Runtime, *, category_id: int, latitude: float, longitude: float, grid_id: int | None = None
) -> list[Candidate]:
    """:func:`find_duplicates` in the caller's unit of work."""
    if at_grid_centre(rt, grid_id, latitude, longitude):
        return []
    radius = rt.settings.duplicate_radius_m
    since = rt.clock.now() - timedelta(days=rt.settings.duplicate_window_days)
    min_lat, max_lat, min_lon, max_lon = bounding_box(latitude, longitude, radius)
    rows = cases.open_cases_in_box(
        s, category_id=category_id, min_lat=min_lat, max_lat=max_lat, min_lon=min_lon, max_lon=max_lon, since=since
    )
    found = []
    for row in rows:
        assert row.latitude is not None and row.longitude is not None
        if at_grid_centre(rt, row.grid_id, row.latitude, row.longitude):
            continue
        distance = haversine_m(latitude, longitude, row.latitude, row.longitude)
        if distance <= radius:
            found.append(Candidate(row.id, row.code, distance, row.created_at, row.description))
    return sorted(found, key=lambda c: (c.distance_m, -c.created_at.timestamp()))[:5]


def at_grid_centre(rt: Runtime, grid_id: int | None, latitude: float | None, longitude: float | None) -> bool:
    """Is the point exactly its grid's centre (placed there, not measured)?"""
    grid = index.org(rt).grid(grid_id) if grid_id is not None else None
    if grid is None or grid.centre_lat is None or grid.centre_lon is None or latitude is None or longitude is None:
        return False
    return abs(grid.centre_lat - latitude) < 1e-9 and abs(grid.centre_lon - longitude) < 1e-9


def _joinable(rt: Runtime, case: Case, report: ReportIn, *, now: datetime) -> bool:
    """What find_duplicates would offer: same category, near enough, recent enough."""
    if case.category_id != report.category_id or case.latitude is None or case.longitude is None:
        return False
    if case.created_at < now - timedelta(days=rt.settings.duplicate_window_days):
        return False
    return (
        haversine_m(report.latitude, report.longitude, case.latitude, case.longitude) <= rt.settings.duplicate_radius_m
    )


def join_case(
    rt: Runtime, *, case_id: int, report: ReportIn, finish_draft: bool = False, ack: Ack | None = None
) -> Submitted:
    """Add the report to an open case as a supporting report; its photos and reporter are kept."""
    with rt.db.session() as s:
        return join_case_in(s, rt, case_id=case_id, report=report, finish_draft=finish_draft, ack=ack)


def join_case_in(
    s: Session, rt: Runtime, *, case_id: int, report: ReportIn, finish_draft: bool = False, ack: Ack | None = None
) -> Submitted:
    """:func:`join_case` in the caller's unit of work."""
    now = rt.clock.now()
    if finish_draft and report.reporter_user_id is not None:
        drafts.remove(s, report.reporter_user_id)
    case = cases.get_case(s, case_id)
    if case is None or case.state in CaseState.FINAL:
        raise CaseNotOpen(code=case.code if case else "?")
    if not _joinable(rt, case, report, now=now):
        raise NotOffered()
    support = cases.add_support(
        s,
        SupportingReport(
            case_id=case_id,
            reporter_user_id=report.reporter_user_id,
            description=report.description[:MAX_DESCRIPTION],
            latitude=report.latitude,
            longitude=report.longitude,
            created_at=now,
        ),
    )
    add_media(
        s,
        case_id=case_id,
        stage="support",
        added_by=report.reporter_user_id,
        now=now,
        photos=report.photos,
        voices=report.voices,
        support_id=support.id,
    )
    audit.record(
        s,
        action="case.supported",
        subject_type="case",
        subject_id=case_id,
        case_id=case_id,
        actor_user_id=report.reporter_user_id,
        data={"support_id": support.id, "source": report.source},
        at=now,
    )
    # Refresh the cards already posted so everyone sees the extra report.
    notify.refresh_cards(s, case_id=case_id, now=now)
    unit = orgs.unit(s, case.unit_id) if case.unit_id else None
    done = Submitted(
        case_id=case_id,
        code=case.code,
        state=case.state,
        unit_id=case.unit_id,
        unit_name_zh=unit.name_zh if unit else None,
        unit_name_en=unit.name_en if unit else None,
        joined=True,
    )
    acknowledge(s, ack=ack, done=done, case=case, unit=unit, now=now)
    return done
