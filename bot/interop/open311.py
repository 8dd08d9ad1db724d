"""Open311 GeoReport v2: our categories as services, our cases as service requests.

The status mapping (docs/open311.md): every state of kind "closed" (closed, rejected,
duplicate) is `closed`; every other state is `open`, and `status_notes` says where the
case stands, in the request's language. What never leaves: reporters (names, ids, phone
numbers, the hotline caller), the original photos (only our EXIF-free JPEG, by a signed
URL), and anything of a category marked `public: false`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.i18n import N_, bilingual, normalise_language, t
from bot.org import index
from bot.runtime import Runtime
from storage.models import CaseState as S
from storage.models import Category

# state -> (Open311 status, the note's message key)
STATUS: dict[str, tuple[str, str]] = {
    S.REPORTED: ("open", N_("open311.status.reported")),
    S.DISPATCHED: ("open", N_("open311.status.dispatched")),
    S.CLAIMED: ("open", N_("open311.status.claimed")),
    S.RETURNED: ("open", N_("open311.status.returned")),
    S.ESCALATED: ("open", N_("open311.status.escalated")),
    S.REOPENED: ("open", N_("open311.status.reopened")),
    S.RESOLVED: ("open", N_("open311.status.resolved")),
    S.CLOSED: ("closed", N_("open311.status.closed")),
    S.REJECTED: ("closed", N_("open311.status.rejected")),
    S.DUPLICATE: ("closed", N_("open311.status.duplicate")),
}
OPEN_STATES = tuple(state for state, (status, _) in STATUS.items() if status == "open")
CLOSED_STATES = tuple(state for state, (status, _) in STATUS.items() if status == "closed")

GROUP_KEY = N_("open311.group")


def states_for(status: str) -> tuple[str, ...]:
    return OPEN_STATES if status == "open" else CLOSED_STATES


def language(rt: Runtime, accept_language: str | None) -> str:
    """The first language of Accept-Language we speak, else the district's default."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip()
        found = normalise_language(code) if code else None
        if found:
            return found
    return rt.settings.default_language


def public_categories(rt: Runtime) -> list[Category]:
    cats = [c for c in index.org(rt).categories.values() if c.active and c.public]
    return sorted(cats, key=lambda c: (c.sort_order, c.code))


def public_category(rt: Runtime, code: str) -> Category | None:
    return next((c for c in public_categories(rt) if c.code == code), None)


def service(rt: Runtime, cat: Category, lang: str) -> dict[str, Any]:
    platform = index.org(rt).platform(cat.platform_id)
    return {
        "service_code": cat.code,
        "service_name": bilingual(lang, cat.name_zh, cat.name_en),
        "description": bilingual(lang, cat.name_zh, cat.name_en),
        "metadata": bool(cat.questions),
        "type": "realtime",
        "keywords": ",".join(cat.keywords),
        "group": bilingual(lang, platform.name_zh, platform.name_en) if platform else t(lang, GROUP_KEY),
    }


def definition(cat: Category, lang: str) -> dict[str, Any]:
    attributes = []
    for order, q in enumerate(cat.questions, start=1):
        name = q.get("name") or {}
        text = bilingual(lang, name.get("zh"), name.get("en")) or q["code"]
        attributes.append(
            {
                "variable": True,
                "code": q["code"],
                "datatype": q.get("datatype", "string"),
                "required": bool(q.get("required")),
                "datatype_description": "",
                "order": order,
                "description": text,
                "values": [{"key": v, "name": v} for v in q.get("values") or []],
            }
        )
    return {"service_code": cat.code, "attributes": attributes}


def check_attributes(cat: Category, given: dict[str, list[str]]) -> dict[str, Any]:
    """The answers to the category's questions, checked; raises ValueError saying why."""
    known = {q["code"]: q for q in cat.questions}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown attribute {unknown[0]} for service_code {cat.code}")
    out: dict[str, Any] = {}
    for code, q in known.items():
        values = [v for v in given.get(code, []) if v != ""]
        if not values:
            if q.get("required"):
                raise ValueError(f"attribute {code} is required for service_code {cat.code}")
            continue
        datatype = q.get("datatype", "string")
        allowed = q.get("values") or []
        if datatype in ("singlevaluelist", "multivaluelist"):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"attribute {code} must be one of {', '.join(allowed)}")
            if datatype == "singlevaluelist" and len(values) > 1:
                raise ValueError(f"attribute {code} takes one value")
            out[code] = values if datatype == "multivaluelist" else values[0]
        elif datatype == "number":
            try:
                out[code] = float(values[0])
            except ValueError:
                raise ValueError(f"attribute {code} must be a number") from None
        else:
            out[code] = values[0][:1000]
    return out


def iso(rt: Runtime, at: datetime | None) -> str | None:
    return at.astimezone(rt.settings.tz).isoformat(timespec="seconds") if at else None


def media_signature(rt: Runtime, media_id: int) -> str:
    """An unguessable name for a photo's EXIF-free JPEG, stable across restarts."""
    key = hashlib.sha256(("griddesk-media:" + rt.settings.telegram_bot_token).encode()).digest()
    return hmac.new(key, str(media_id).encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class RequestView:
    case: Any  # a Case, or a row of its columns (storage/external.py REQUEST_COLUMNS)
    media_id: int | None
    duplicate_of: str | None = None


def request(
    rt: Runtime, view: RequestView, lang: str, base_url: str, notes: dict[tuple[str, Any, Any], str] | None = None
) -> dict[str, Any]:
    """One case as a GeoReport v2 service request (nothing personal in it). `notes` caches
    the status notes across the requests of one answer."""
    case = view.case
    known = index.org(rt)
    cat = known.category(case.category_id)
    unit = known.unit(case.unit_id)
    status, note_key = STATUS[case.state]
    team = bilingual(lang, unit.name_zh, unit.name_en) if unit else ""
    key = (case.state, case.unit_id, view.duplicate_of)
    note = notes.get(key) if notes is not None else None
    if note is None:
        note = t(lang, note_key, team=team, code=view.duplicate_of or "")
        if notes is not None:
            notes[key] = note
    media = (
        f"{base_url}/open311/v2/media/{view.media_id}-{media_signature(rt, view.media_id)}.jpg"
        if view.media_id is not None
        else None
    )
    return {
        "service_request_id": case.code,
        "status": status,
        "status_notes": note,
        "service_name": bilingual(lang, cat.name_zh, cat.name_en) if cat else "",
        "service_code": cat.code if cat else "",
        "description": case.description if cat is not None and cat.public else "",
        "agency_responsible": team,
        "service_notice": "",
        "requested_datetime": iso(rt, case.created_at),
        "updated_datetime": iso(rt, case.updated_at),
        "expected_datetime": iso(rt, case.due_at),
        "address": case.address or "",
        "address_id": "",
        "zipcode": "",
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": media,
    }
