"""Reports from outside Telegram (an Open311 client, the 12345 hotline) become cases through
the same intake as a Telegram report (bot/intake/submit.py): located to a grid, routed by
the responsibility list, dispatched where the street auto-dispatches."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.intake import locate as locating
from bot.intake.submit import MAX_DESCRIPTION, ExternalIn, ReportIn, Submitted, submit_report
from bot.org import index
from bot.runtime import Runtime
from storage import external
from storage.models import Category, pk

OPEN311 = "open311"


class Refused(Exception):
    """A report we cannot take; `status` is the HTTP status the spec asks for."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(frozen=True)
class Incoming:
    source: str  # open311, hotline
    api_key_id: int
    category: Category
    latitude: float
    longitude: float
    description: str
    address: str | None = None
    ticket_no: str | None = None
    caller_name: str | None = None
    caller_phone: str | None = None
    deadline: datetime | None = None
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class Accepted:
    case_id: int
    code: str
    token: str
    existing: bool = False


def coordinates(lat: Any, lon: Any) -> tuple[float, float]:
    try:
        latitude, longitude = float(lat), float(lon)
    except (TypeError, ValueError):
        raise Refused(400, "lat and long must be decimal degrees") from None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise Refused(400, "lat and long are out of range")
    return latitude, longitude


def category_for(rt: Runtime, words: str) -> Category | None:
    """A category by its code, or by its name or keywords (the hotline's category text);
    only public categories for Open311, any active one for the hotline."""
    cats = [c for c in index.org(rt).categories.values() if c.active]
    text = words.strip()
    for c in cats:
        if text.upper() == c.code or text in (c.name_zh, c.name_en):
            return c
    scored = [(sum(1 for k in c.keywords if k and k in text), c) for c in cats]
    best = max(scored, key=lambda pair: pair[0], default=(0, None))
    return best[1] if best[0] > 0 else None


def submit(rt: Runtime, report: Incoming) -> Accepted:
    """Locate, then the one intake. Raises Refused (400) for a point outside every grid."""
    place = locating.locate(rt, report.latitude, report.longitude)
    if place is None:
        raise Refused(400, "the location lies outside every grid of this jurisdiction")
    token = secrets.token_urlsafe(24)
    done: Submitted = submit_report(
        rt,
        ReportIn(
            reporter_user_id=None,
            source=report.source,
            latitude=report.latitude,
            longitude=report.longitude,
            grid_id=place.grid_id,
            category_id=pk(report.category),
            description=report.description[:MAX_DESCRIPTION],
            photos=(),
            address=report.address,
            external=ExternalIn(
                source=report.source,
                token=token,
                api_key_id=report.api_key_id,
                ticket_no=report.ticket_no,
                caller_name=report.caller_name,
                caller_phone=report.caller_phone,
                deadline=report.deadline,
                attributes=report.attributes,
            ),
        ),
    )
    return Accepted(done.case_id, done.code, token)


def existing_ticket(rt: Runtime, *, api_key_id: int, ticket_no: str) -> Accepted | None:
    with rt.db.read() as s:
        ticket = external.ticket_by_number(s, api_key_id=api_key_id, ticket_no=ticket_no)
        if ticket is None:
            return None
        codes = external.codes_of(s, [ticket.case_id])
    return Accepted(ticket.case_id, codes[ticket.case_id], ticket.token, existing=True)


def geocode(rt: Runtime, address: str) -> tuple[float, float] | None:
    """A point for an address that names a grid (its name or code) or a community of the
    organisation file: the grid's centre, or the middle of the community's grids. None
    when it names neither (street names alone are too coarse to route)."""
    text = address.strip()
    if not text:
        return None
    known = index.org(rt)
    grids = [g for g in known.grids.values() if g.active and g.centre_lat is not None and g.centre_lon is not None]
    named = [g for g in grids if g.code in text or g.name_zh in text or (g.name_en and g.name_en in text)]
    if named:
        best = max(
            named, key=lambda g: max(len(g.name_zh) if g.name_zh in text else 0, len(g.code) if g.code in text else 0)
        )
        return best.centre_lat, best.centre_lon  # type: ignore[return-value]
    communities = [
        c for c in known.communities.values() if c.active and (c.name_zh in text or (c.name_en and c.name_en in text))
    ]
    if not communities:
        return None
    community = max(communities, key=lambda c: len(c.name_zh))
    members = [g for g in grids if g.community_id == community.id]
    if not members:
        return None
    lat = sum(g.centre_lat for g in members) / len(members)  # type: ignore[misc]
    lon = sum(g.centre_lon for g in members) / len(members)  # type: ignore[misc]
    return lat, lon
