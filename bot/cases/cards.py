"""The case card: what a case looks like in a chat, rendered from the database at send time.

Plain data out (HTML text, a photo path, rows of (label, callback data)); the Telegram
glue turns it into a message. Rendering when sending, not when queueing, means a card
that waited in the outbox still shows the case as it is.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.callbacks import Claim, Confirm, Dispatch, DispatchMenu, NotFixed, Release, ReportIn, Work
from bot.cases import lifecycle
from bot.cases.timewords import when_words
from bot.desk.buttons import DeskFix
from bot.i18n import bilingual, t
from bot.org import index
from bot.org.geo import amap_link, map_link
from bot.runtime import Runtime
from bot.textlimits import utf16_len, utf16_prefix
from storage import cases, casework, people
from storage.models import Case, CaseState, pk

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096


@dataclass(frozen=True)
class Names:
    zh: str
    en: str

    def get(self, lang: str) -> str:
        return bilingual(lang, self.zh, self.en)


@dataclass(frozen=True)
class CaseView:
    id: int
    code: str
    state: str
    source: str
    urgent: bool
    category: Names
    platform: Names | None
    grid: Names
    community: Names
    street: Names
    latitude: float | None
    longitude: float | None
    address: str | None
    description: str
    created_at: datetime
    suggested_unit_id: int | None
    suggested_unit: Names | None
    unit: Names | None
    reporter_name: str | None
    reporter_telegram_id: int | None
    owner_name: str | None = None
    photo_paths: tuple[str, ...] = ()
    # (JPEG path, file_id) for the photos Telegram already has from an earlier card
    sent_file_ids: tuple[tuple[str, str], ...] = ()
    voice_count: int = 0
    support_count: int = 0
    duplicate_of: str | None = None
    decision_note: str | None = None
    whistles: tuple[WhistleView, ...] = ()
    after_photo_paths: tuple[str, ...] = ()
    has_owner: bool = False
    due_at: datetime | None = None
    rung: int = 0
    approximate: bool = False  # the point is the grid's centre, not where the problem is


@dataclass(frozen=True)
class WhistleView:
    id: int
    unit_id: int
    unit: Names
    reported_in_at: datetime | None


@dataclass(frozen=True)
class Card:
    text: str
    photo_path: str | None
    buttons: list[list[tuple[str, str]]] = field(default_factory=list)


def _names(row: Any) -> Names | None:
    if row is None:
        return None
    return Names(row.name_zh, row.name_en)


def case_view(rt: Runtime, case_id: int) -> CaseView | None:
    with rt.db.read() as s:
        case = cases.get_case(s, case_id)
        return view_in(s, rt, case) if case is not None else None


def view_in(s: Session, rt: Runtime, case: Case) -> CaseView:
    """:func:`case_view` of a case read in the caller's unit of work."""
    case_id = pk(case)
    users = people.users_by_id(s, (case.reporter_user_id, case.owner_user_id))
    known = index.org(rt)  # names of places and teams from memory, not the database
    category = known.category(case.category_id)
    platform = known.platform(category.platform_id) if category else None
    grid = known.grid(case.grid_id)
    community = known.community(case.community_id)
    street = known.street(case.street_id)
    suggested = known.unit(case.suggested_unit_id)
    unit = known.unit(case.unit_id)
    reporter = users.get(case.reporter_user_id) if case.reporter_user_id else None
    owner = users.get(case.owner_user_id) if case.owner_user_id else None
    media = cases.media_of(s, case_id)  # every stage at once, sorted out below
    photos = [m for m in media if m.stage == "report" and m.kind == "photo"]
    voices = [m for m in media if m.kind == "voice"]
    after = [m for m in media if m.stage == "after" and m.kind == "photo"]
    original = cases.get_case(s, case.duplicate_of_id) if case.duplicate_of_id else None
    whistles = tuple(
        WhistleView(w.id, w.unit_id, _names(known.unit(w.unit_id)) or Names("?", "?"), w.reported_in_at)
        for w in casework.whistles_of(s, case_id)
    )
    unknown = Names("—", "—")
    return CaseView(
        id=case_id,
        code=case.code,
        state=case.state,
        source=case.source,
        urgent=case.urgent,
        category=_names(category) or unknown,
        platform=_names(platform),
        grid=_names(grid) or unknown,
        community=_names(community) or unknown,
        street=_names(street) or unknown,
        latitude=case.latitude,
        longitude=case.longitude,
        address=case.address,
        description=case.description,
        created_at=case.created_at,
        suggested_unit_id=case.suggested_unit_id,
        suggested_unit=_names(suggested),
        unit=_names(unit),
        reporter_name=reporter.display_name if reporter else None,
        reporter_telegram_id=reporter.telegram_id if reporter else None,
        owner_name=owner.display_name if owner else None,
        photo_paths=tuple(p.jpeg_path for p in photos if p.jpeg_path),
        sent_file_ids=tuple((p.jpeg_path, p.jpeg_file_id) for p in (*photos, *after) if p.jpeg_path and p.jpeg_file_id),
        voice_count=len(voices),
        support_count=cases.support_count(s, case_id),
        duplicate_of=original.code if original else None,
        decision_note=case.decision_note,
        whistles=whistles,
        after_photo_paths=tuple(p.jpeg_path for p in after if p.jpeg_path),
        has_owner=case.owner_user_id is not None,
        due_at=case.due_at,
        rung=case.rung,
        approximate=grid is not None
        and grid.centre_lat is not None
        and grid.centre_lon is not None
        and case.latitude is not None
        and case.longitude is not None
        and abs(grid.centre_lat - case.latitude) < 1e-9
        and abs(grid.centre_lon - case.longitude) < 1e-9,
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=False)


def place_line(view: CaseView, lang: str) -> str:
    grid, community = view.grid.get(lang), view.community.get(lang)
    # "劳动路社区第1网格 · 清波街道", not "劳动路社区第1网格 · 劳动路社区 · 清波街道"
    parts = (
        (grid, view.street.get(lang)) if community and community in grid else (grid, community, view.street.get(lang))
    )
    where = " · ".join(parts)
    if view.approximate:  # a grid's centre: no pin where the problem is not
        return _e(where) + " · " + t(lang, "card.approximate")
    if view.latitude is None or view.longitude is None:
        return _e(where)
    link = amap_link(view.latitude, view.longitude) if lang == "zh_CN" else map_link(view.latitude, view.longitude)
    return f'{_e(where)} · <a href="{html.escape(link)}">{_e(t(lang, "card.map"))}</a>'


def render_card(
    view: CaseView,
    *,
    lang: str,
    purpose: str,
    tz: ZoneInfo,
    photo: bool = True,
    viewer_unit_id: int | None = None,
    now: datetime | None = None,
) -> Card:
    """The card for a chat: its text, its first photo, its buttons for this purpose. Given
    `now`, a near due time is said in day words ("今天 17:30", "明天 10:28"), which stay true
    until the card is next re-rendered on the day; never the hours left, which would not."""
    head = f"<b>{_e(view.code)}</b> · {_e(view.category.get(lang))}"
    if view.urgent:
        head = "🔴 " + head + f" · {_e(t(lang, 'card.urgent'))}"
    lines = [
        head,
        t(lang, "card.state", state=t(lang, f"state.{view.state}")),
        "📍 " + place_line(view, lang),
        t(
            lang,
            "card.reported",
            at=view.created_at.astimezone(tz).strftime("%m-%d %H:%M"),
            source=t(lang, f"source.{view.source}"),
            reporter=_e(_fit(view.reporter_name or "—", "name")),
        ),
    ]
    if view.address:
        lines.append("🏷 " + _e(_fit(view.address, "address")))
    if view.due_at is not None and view.state not in CaseState.FINAL:
        due = (
            when_words(lang, view.due_at, now, tz)
            if now is not None
            else view.due_at.astimezone(tz).strftime("%m-%d %H:%M")
        )
        lines.append(t(lang, "card.due", due=due))
    if view.rung and view.state not in CaseState.FINAL:
        lines.append(t(lang, "card.supervised", rung=view.rung))
    if view.unit is not None:
        lines.append(t(lang, "card.team", team=_e(view.unit.get(lang))))
        if view.owner_name:
            lines.append(t(lang, "card.owner", owner=_e(_fit(view.owner_name, "name"))))
    elif view.suggested_unit is not None and view.state == CaseState.REPORTED:
        lines.append(t(lang, "card.suggested", team=_e(view.suggested_unit.get(lang))))
    elif view.state == CaseState.REPORTED:
        lines.append(t(lang, "card.no_team"))
    for w in view.whistles:
        if w.reported_in_at is not None:
            lines.append(
                t(
                    lang,
                    "card.whistle_in",
                    unit=_e(w.unit.get(lang)),
                    at=w.reported_in_at.astimezone(tz).strftime("%m-%d %H:%M"),
                )
            )
        else:
            lines.append(t(lang, "card.whistle_waiting", unit=_e(w.unit.get(lang))))
    if view.after_photo_paths:
        lines.append(t(lang, "card.after_photos", count=len(view.after_photo_paths)))
    if view.support_count:
        lines.append(t(lang, "card.supports", count=view.support_count))
    if view.voice_count:
        lines.append(t(lang, "card.voices", count=view.voice_count))
    if view.duplicate_of:
        lines.append(t(lang, "card.duplicate_of", code=_e(view.duplicate_of)))
    if view.decision_note:
        lines.append(t(lang, "card.note", note=_e(_fit(view.decision_note, "note"))))
    header = "\n".join(lines)
    has_photo = photo and bool(view.photo_paths)
    limit = CAPTION_LIMIT if has_photo else TEXT_LIMIT
    # Telegram counts the visible text (tags gone, entities decoded) in UTF-16 units.
    room = limit - utf16_len(_visible(header)) - 4
    if utf16_len(view.description) <= room:
        description = view.description
    else:
        description = utf16_prefix(view.description, room - 1) + "…" if room > 1 else ""
    text = header + ("\n\n" + _e(description) if description else "")
    return Card(
        text=text,
        photo_path=view.photo_paths[0] if has_photo else None,
        buttons=buttons_for(view, lang, purpose, viewer_unit_id),
    )


# What one field people typed may take of a card (UTF-16 units): all of them together stay
# far inside a text message, so the card always fits; a caption that overflows becomes a
# photo plus a text message (handlers/outbox_sender.py).
FIELD_LIMITS = {"name": 100, "address": 300, "note": 1500}


def _fit(value: str, field: str) -> str:
    units = FIELD_LIMITS[field]
    return value if utf16_len(value) <= units else utf16_prefix(value, units - 1) + "…"


def _visible(text: str) -> str:
    """Roughly what Telegram counts: the text without HTML tags and with entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


# Who reads a card in each kind of chat: its buttons are what those relations may do now
# (lifecycle.allowed), so a card never offers what the lifecycle would refuse.
READERS: dict[str, frozenset[str]] = {
    "command": frozenset({lifecycle.DISPATCHER}),
    "team": frozenset({lifecycle.TEAM, lifecycle.OWNER}),
    "department": frozenset({lifecycle.DEPARTMENT}),
    "verify": frozenset({lifecycle.DISPATCHER}),
}

Rows = list[list[tuple[str, str]]]


def buttons_for(view: CaseView, lang: str, purpose: str, viewer_unit_id: int | None = None) -> Rows:
    may = set(lifecycle.allowed(view.state, READERS.get(purpose, frozenset())))

    def rows(*cells: list[tuple[str, str, str]]) -> Rows:
        """Rows of (action, label, data) cells, keeping the cells whose action is allowed."""
        kept = [[(label, data) for action, label, data in row if action in may] for row in cells]
        return [row for row in kept if row]

    # 更正分类 (issue 11): the command room corrects a case's category before and after dispatch.
    fix = [("recategorize", t(lang, "desk.fix_button"), DeskFix(view.id).pack())]
    if purpose == "command" and "dispatch" not in may:
        return rows(fix)
    if purpose == "command":
        suggested = view.suggested_unit
        return rows(
            [
                (
                    "dispatch",
                    t(lang, "card.dispatch_to", team=suggested.get(lang)),
                    Dispatch(view.id, view.suggested_unit_id).pack(),
                )
            ]
            if suggested is not None and view.suggested_unit_id is not None
            else [],
            [("dispatch", t(lang, "card.choose_team"), DispatchMenu("teams", view.id).pack())],
            [
                ("duplicate", t(lang, "card.mark_duplicate"), DispatchMenu("originals", view.id).pack()),
                ("reject", t(lang, "card.reject"), DispatchMenu("reasons", view.id).pack()),
            ],
            fix,
        )
    if purpose == "team":
        if not view.has_owner:
            return rows([("claim", t(lang, "card.claim"), Claim(view.id).pack())])
        return rows(
            [
                ("resolve", t(lang, "card.resolve"), Work("resolve", view.id).pack()),
                ("note", t(lang, "card.note_button"), Work("note", view.id).pack()),
            ],
            [
                ("escalate", t(lang, "card.escalate"), Work("escalate", view.id).pack()),
                ("extend", t(lang, "card.extend"), Work("extend", view.id).pack()),
            ],
            [
                ("return", t(lang, "card.return"), Work("return", view.id).pack()),
                ("release", t(lang, "card.release"), Release(view.id).pack()),
            ],
        )
    if purpose == "department" and viewer_unit_id is not None:
        waiting = [w for w in view.whistles if w.unit_id == viewer_unit_id and w.reported_in_at is None]
        if waiting and view.state == CaseState.ESCALATED:  # a whistle is answered while it blows
            return rows([("report_in", t(lang, "card.report_in"), ReportIn(waiting[-1].id).pack())])
    if purpose == "verify":
        return rows(
            [
                ("confirm", t(lang, "card.confirm_fixed"), Confirm(view.id).pack()),
                ("not_fixed", t(lang, "card.not_fixed"), NotFixed(view.id).pack()),
            ]
        )
    return []
