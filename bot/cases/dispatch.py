"""The command room's decisions on a new case (立案 → 派遣): dispatch it to a team, mark it a
duplicate of an open case, or reject it as out of scope.

Each decision is one transaction: a compare-and-set on the case's state, its audit event
and the outbox rows it causes (cards refreshed, the reporter told). Who may decide: a
dispatcher of the case's street, or an admin. Anything else is a typed error the handlers
answer politely; a case someone else already decided raises `CaseMovedOn`, which says
what became of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot import notify
from bot.cases import lifecycle
from bot.cases.cards import Names
from bot.cases.lifecycle import NotDispatcher
from bot.errors import DomainError
from bot.i18n import N_, t
from bot.intake.submit import find_duplicates
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, cases, chats, orgs, outbox, people
from storage.models import Case, CaseState, Role, SupportingReport, Unit, UnitKind, pk

MAX_NOTE = 500

# Preset reasons for rejecting (code in callback data and audit -> catalog key).
REASONS: dict[str, str] = {
    "scope": N_("dispatch.reason_scope"),  # not our responsibility
    "info": N_("dispatch.reason_info"),  # not enough information to act on
    "handled": N_("dispatch.reason_handled"),  # already handled
    "notreal": N_("dispatch.reason_not_real"),  # no real problem found
}

ACTION_DISPATCHED = "case.dispatched"
ACTION_DUPLICATE = "case.marked_duplicate"
ACTION_REJECTED = "case.rejected"


class UnknownCase(DomainError):
    key = "dispatch.unknown_case"


class UnknownTeam(DomainError):
    """A unit that is not an active team of the case's street: only a forged button names one."""

    key = "button.stale"


class UnknownReason(DomainError):
    key = "button.stale"


class SameCase(DomainError):
    key = "dispatch.same_case"


class OriginalNotOpen(DomainError):
    key = "dispatch.original_not_open"


@dataclass(frozen=True)
class Outcome:
    """What became of a case: enough to tell a late presser who decided what."""

    code: str
    state: str
    team: Names | None
    actor: str | None  # who made the last decision; None when the bot did (auto-dispatch)
    original: str | None  # the case it duplicates
    note: str | None  # why it was rejected


class CaseMovedOn(lifecycle.MoveNotAllowed):
    """The case is no longer waiting for this decision: someone else decided first."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(code=outcome.code, state=outcome.state)
        self.outcome = outcome


@dataclass(frozen=True)
class Decided:
    case_id: int
    code: str
    state: str
    team: Names | None = None
    team_notified: bool = True  # False: the team has no group bound, tell them another way
    original: str | None = None
    note: str | None = None
    cards: frozenset[tuple[int, int]] = frozenset()  # (chat, message) of the cards kept up to date

    def is_card(self, chat_id: int, message_id: int) -> bool:
        """Is this message one of the case's cards the outbox re-renders? (Any other copy
        of a card only loses its spent buttons.)"""
        return (chat_id, message_id) in self.cards


@dataclass(frozen=True)
class TeamOption:
    unit_id: int
    name: Names
    suggested: bool


@dataclass(frozen=True)
class OriginalOption:
    case_id: int
    code: str
    distance_m: float
    description: str


# --- reading ----------------------------------------------------------------------


def find_case(rt: Runtime, person: Person, code: str) -> int:
    """The id of the case with this code, for the /duplicate and /reject commands.

    Only people who may decide somewhere get an answer, so codes cannot be probed."""
    if not (person.is_admin or person.has_role(Role.DISPATCHER)):
        raise NotDispatcher()
    with rt.db.read() as s:
        case = cases.get_case_by_code(s, code)
        if case is None:
            raise UnknownCase(code=code.strip().upper())
        return case.id  # type: ignore[return-value]


def team_options(rt: Runtime, person: Person, *, case_id: int) -> list[TeamOption]:
    """The teams of the case's street, for "choose another team"."""
    with rt.db.read() as s:
        case = _case_for(rt, s, person, case_id, "dispatch")
        if case.street_id is None:
            return []
        return [
            TeamOption(team.id, Names(team.name_zh, team.name_en), team.id == case.suggested_unit_id)  # type: ignore[arg-type]
            for team in orgs.teams_of_street(s, case.street_id)
        ]


def original_options(rt: Runtime, person: Person, *, case_id: int) -> tuple[str, list[OriginalOption]]:
    """The case's code, and the open cases of its category nearby: what it probably duplicates."""
    with rt.db.read() as s:
        case = _case_for(rt, s, person, case_id, "duplicate")
        code, category_id, lat, lon, grid_id = case.code, case.category_id, case.latitude, case.longitude, case.grid_id
    if category_id is None or lat is None or lon is None:
        return code, []
    found = find_duplicates(rt, category_id=category_id, latitude=lat, longitude=lon, grid_id=grid_id)
    return code, [OriginalOption(c.case_id, c.code, c.distance_m, c.description) for c in found if c.case_id != case_id]


def check_decision(rt: Runtime, person: Person, *, case_id: int, action: str) -> str:
    """May this person make `action` (a lifecycle move) on the case now? Its code if so."""
    with rt.db.read() as s:
        return _case_for(rt, s, person, case_id, action).code


def refresh_cards(rt: Runtime, *, case_id: int) -> int:
    """Queue a re-render of every card of the case already posted (after a late press)."""
    now = rt.clock.now()
    with rt.db.session() as s:
        posted = cases.cards_of(s, case_id)
        for card in posted:
            outbox.enqueue(s, chat_id=card.chat_id, kind="case_card", case_id=case_id, purpose=card.purpose, now=now)
        return len(posted)


def is_posted_card(rt: Runtime, *, case_id: int, chat_id: int, message_id: int) -> bool:
    """Is this message one of the case's cards the outbox keeps up to date? (A decision
    answers this itself: `Decided.is_card`.)"""
    with rt.db.read() as s:
        return (chat_id, message_id) in _posted(s, case_id)


def _posted(s: Session, case_id: int) -> frozenset[tuple[int, int]]:
    return frozenset((c.chat_id, c.message_id) for c in cases.cards_of(s, case_id))


# --- deciding ---------------------------------------------------------------------


def dispatch_case(rt: Runtime, person: Person, *, case_id: int, unit_id: int) -> Decided:
    """派遣: send the case to one of its street's teams."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _load(s, case_id)
        who = _check(rt, s, person, case, "dispatch")
        unit = index.org(rt).unit(unit_id)
        if unit is None or not unit.active or unit.kind != UnitKind.TEAM or unit.street_id != case.street_id:
            raise UnknownTeam()
        try:
            notified = lifecycle.dispatch_to(rt, s, case, unit, person, now, who=who)
        except lifecycle.MoveNotAllowed:
            raise CaseMovedOn(outcome(s, case)) from None
        return Decided(
            _id(case), case.code, case.state, team=Names(unit.name_zh, unit.name_en), team_notified=notified,
            cards=_posted(s, _id(case)),
        )  # fmt: skip


def mark_duplicate(rt: Runtime, person: Person, *, case_id: int, original_id: int) -> Decided:
    """The case reports a problem another open case already has. Nothing of it is lost: its
    reporter and photos join the original as a supporting report."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _load(s, case_id)
        who = _check(rt, s, person, case, "duplicate")
        if original_id == case_id:
            raise SameCase()
        original = cases.get_case(s, original_id)
        if original is None:
            raise UnknownCase(code=str(original_id))
        if original.state in CaseState.FINAL:
            raise OriginalNotOpen(code=original.code)
        _move(
            rt,
            s,
            case,
            "duplicate",
            person,
            who,
            now,
            {"duplicate_of_id": original.id},
            data={"original_id": original.id, "original_code": original.code},
        )
        support = cases.add_support(
            s,
            SupportingReport(
                origin="duplicate",
                case_id=original.id,  # type: ignore[arg-type]
                reporter_user_id=case.reporter_user_id,
                description=case.description,
                latitude=case.latitude,
                longitude=case.longitude,
                created_at=case.created_at,  # when it was really reported
            ),
        )
        copies = [
            _copy_media(m, case_id=pk(original), support_id=pk(support), now=now)
            for m in cases.media_of(s, case_id, stage="report")
        ]
        cases.add_media(s, copies)
        audit.record(
            s,
            action="case.supported",
            subject_type="case",
            subject_id=original.id,
            case_id=original.id,
            actor_user_id=person.user_id,
            data={"support_id": support.id, "duplicate_id": case.id, "duplicate_code": case.code},
            at=now,
        )
        # The original's cards now count one more report.
        notify.refresh_cards(s, case_id=original.id, now=now)  # type: ignore[arg-type]
        lifecycle.tell(
            s, case, case.reporter_user_id, N_("dispatch.reporter_duplicate"), now,
            unless=person.user_id, original=original.code,
        )  # fmt: skip
        return Decided(_id(case), case.code, case.state, original=original.code, cards=_posted(s, _id(case)))


def reject_case(
    rt: Runtime, person: Person, *, case_id: int, reason: str | None = None, text: str | None = None
) -> Decided:
    """不予受理: out of scope. A preset `reason` (see REASONS) or the dispatcher's own `text`."""
    text = (text or "").strip()[:MAX_NOTE]
    if reason is not None and reason not in REASONS:
        raise UnknownReason()
    if reason is None and not text:
        raise UnknownReason()
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _load(s, case_id)
        who = _check(rt, s, person, case, "reject")
        # The note on the card is read by the command room: write it in their language.
        note = t(_command_room_language(rt, s, case), REASONS[reason]) if reason else text
        _move(
            rt,
            s,
            case,
            "reject",
            person,
            who,
            now,
            {"decision_note": note},
            note=note,
            data={"reason": reason or "other"},
        )
        # A preset reason in the reporter's language; the dispatcher's own words as typed.
        reason_params = (
            {"reason_zh": t("zh_CN", REASONS[reason]), "reason_en": t("en", REASONS[reason])}
            if reason
            else {"reason": text}
        )
        lifecycle.tell(
            s,
            case,
            case.reporter_user_id,
            N_("dispatch.reporter_rejected"),
            now,
            unless=person.user_id,
            **reason_params,
        )
        return Decided(_id(case), case.code, case.state, note=note, cards=_posted(s, _id(case)))


# --- helpers ----------------------------------------------------------------------


def _load(s: Session, case_id: int) -> Case:
    case = cases.get_case(s, case_id)
    if case is None:
        raise UnknownCase(code=str(case_id))
    return case


def _check(rt: Runtime, s: Session, person: Person, case: Case, action: str) -> frozenset[str]:
    """Rights first (only the street's dispatchers and admins), then the state: a case
    somebody already decided raises `CaseMovedOn` saying what became of it."""
    who = lifecycle.relations(rt, s, person, case)
    if not lifecycle.may(action, who):
        raise NotDispatcher()  # the same words for every outsider: nothing about the case
    try:
        lifecycle.authorize(action, who, case)
    except lifecycle.MoveNotAllowed:
        raise CaseMovedOn(outcome(s, case)) from None
    return who


def _case_for(rt: Runtime, s: Session, person: Person, case_id: int, action: str) -> Case:
    case = _load(s, case_id)
    _check(rt, s, person, case, action)
    return case


def _move(
    rt: Runtime,
    s: Session,
    case: Case,
    action: str,
    person: Person | None,
    who: frozenset[str],
    now: datetime,
    values: dict[str, object],
    *,
    note: str | None = None,
    data: dict[str, object] | None = None,
) -> None:
    """Apply the decision through the lifecycle; the command room's card is re-rendered
    (no decision buttons now) or posted if it never was, the other cards refreshed."""
    room = notify.command_room_chat(rt, s, case)
    _, room_chat = room
    skip = frozenset({(room_chat, notify.COMMAND)}) if room_chat is not None else frozenset()
    try:
        lifecycle.transition(
            rt, s, case, action, person, now=now, who=who, values=values, note=note, data=data, skip_cards=skip
        )
    except lifecycle.MoveNotAllowed:
        raise CaseMovedOn(outcome(s, case)) from None
    notify.card_to_command_room(rt, s, case=case, now=now, room=room)


def _id(row: Unit | Case) -> int:
    assert row.id is not None
    return row.id


def outcome(s: Session, case: Case) -> Outcome:
    """Who decided what on the case, from its row and its audit trail."""
    action = {CaseState.DUPLICATE: ACTION_DUPLICATE, CaseState.REJECTED: ACTION_REJECTED}.get(
        case.state, ACTION_DISPATCHED
    )
    event = cases.last_case_event(s, case_id=case.id, actions=(action,))  # type: ignore[arg-type]
    actor = people.get_user(s, event.actor_user_id) if event is not None and event.actor_user_id else None
    unit = orgs.unit(s, case.unit_id) if case.unit_id else None
    original = cases.get_case(s, case.duplicate_of_id) if case.duplicate_of_id else None
    return Outcome(
        code=case.code,
        state=case.state,
        team=Names(unit.name_zh, unit.name_en) if unit else None,
        actor=actor.display_name if actor else None,
        original=original.code if original else None,
        note=case.decision_note,
    )


def _command_room_language(rt: Runtime, s: Session, case: Case) -> str:
    room = index.org(rt).command_room(case.street_id) if case.street_id else None
    chat = chats.chat_for_unit(s, room.id) if room is not None else None  # type: ignore[arg-type]
    return (chat.language if chat else None) or rt.settings.default_language


def _copy_media(media: cases.MediaRow, *, case_id: int, support_id: int, now: datetime) -> dict[str, Any]:
    """A supporting report's copy of a duplicate's photo or voice note: a new row, without
    its id or the JPEG file_id recorded for the duplicate's case (keep_jpeg_file_ids)."""
    kept = {k: v for k, v in dataclasses.asdict(media).items() if k not in ("id", "jpeg_file_id")}
    return kept | {"case_id": case_id, "support_id": support_id, "stage": "support", "created_at": now}
