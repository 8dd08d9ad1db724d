"""The command room's decisions on a new case (立案 → 派遣): dispatch it to a team, mark it a
duplicate of an open case, or reject it as out of scope.

Each decision is one transaction: a compare-and-set on the case's state, its audit event
and the outbox rows it causes (cards refreshed, the reporter told). Who may decide: a
dispatcher of the case's street, or an admin. Anything else is a typed error the handlers
answer politely; a case someone else already decided raises `CaseMovedOn`, which says
what became of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot import notify
from bot.cases import deadlines, workflow
from bot.cases.cards import Names
from bot.errors import DomainError, NotAllowed
from bot.i18n import N_, t
from bot.intake.submit import find_duplicates
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, cases, chats, orgs, outbox, people
from storage.models import Case, CaseMedia, CaseState, Role, SupportingReport, Unit, UnitKind

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


class NotDispatcher(NotAllowed):
    key = "dispatch.not_allowed"


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


class CaseMovedOn(workflow.MoveNotAllowed):
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
        case = _case_for(s, person, case_id, "dispatch")
        if case.street_id is None:
            return []
        return [
            TeamOption(team.id, Names(team.name_zh, team.name_en), team.id == case.suggested_unit_id)  # type: ignore[arg-type]
            for team in orgs.teams_of_street(s, case.street_id)
        ]


def original_options(rt: Runtime, person: Person, *, case_id: int) -> tuple[str, list[OriginalOption]]:
    """The case's code, and the open cases of its category nearby: what it probably duplicates."""
    with rt.db.read() as s:
        case = _case_for(s, person, case_id, "duplicate")
        code, category_id, lat, lon = case.code, case.category_id, case.latitude, case.longitude
    if category_id is None or lat is None or lon is None:
        return code, []
    found = find_duplicates(rt, category_id=category_id, latitude=lat, longitude=lon)
    return code, [OriginalOption(c.case_id, c.code, c.distance_m, c.description) for c in found if c.case_id != case_id]


def check_decision(rt: Runtime, person: Person, *, case_id: int, action: str) -> str:
    """May this person make `action` (a workflow move) on the case now? Its code if so."""
    with rt.db.read() as s:
        return _case_for(s, person, case_id, action).code


def refresh_cards(rt: Runtime, *, case_id: int) -> int:
    """Queue a re-render of every card of the case already posted (after a late press)."""
    now = rt.clock.now()
    with rt.db.session() as s:
        posted = cases.cards_of(s, case_id)
        for card in posted:
            outbox.enqueue(s, chat_id=card.chat_id, kind="case_card", case_id=case_id, purpose=card.purpose, now=now)
        return len(posted)


def is_posted_card(rt: Runtime, *, case_id: int, chat_id: int, message_id: int) -> bool:
    """Is this message one of the case's cards the outbox keeps up to date?"""
    with rt.db.read() as s:
        return any(c.chat_id == chat_id and c.message_id == message_id for c in cases.cards_of(s, case_id))


# --- deciding ---------------------------------------------------------------------


def dispatch_case(rt: Runtime, person: Person, *, case_id: int, unit_id: int) -> Decided:
    """派遣: send the case to one of its street's teams."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _load(s, case_id)
        move = _check(s, person, case, "dispatch")
        unit = orgs.unit(s, unit_id)
        if unit is None or not unit.active or unit.kind != UnitKind.TEAM or unit.street_id != case.street_id:
            raise UnknownTeam()
        from_state = _move(s, case, move, now, {"unit_id": unit.id, "dispatched_at": now})
        audit.record(
            s,
            action=ACTION_DISPATCHED,
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            actor_user_id=person.user_id,
            from_state=from_state,
            to_state=CaseState.DISPATCHED,
            data={"unit_id": unit.id, "unit_code": unit.code, "auto": False},
            at=now,
        )
        deadlines.start_clock(rt, s, case, now)  # the time limit runs from dispatch
        notified = notify.card_to_unit(s, case=case, unit_id=unit.id, purpose=notify.TEAM, now=now)
        _refresh_other_cards(s, case, now, also_unit=unit)
        reporter = _reporter_to_tell(s, case, person)
        if reporter is not None:
            # The sender escapes params and picks `team` from the pair in the reader's language.
            notify.text_to_user(
                s,
                telegram_id=reporter,
                key=N_("dispatch.reporter_dispatched"),
                now=now,
                case_id=case.id,
                code=case.code,
                team_zh=unit.name_zh,
                team_en=unit.name_en,
            )
        return Decided(case.id, case.code, case.state, team=Names(unit.name_zh, unit.name_en), team_notified=notified)  # type: ignore[arg-type]


def mark_duplicate(rt: Runtime, person: Person, *, case_id: int, original_id: int) -> Decided:
    """The case reports a problem another open case already has. Nothing of it is lost: its
    reporter and photos join the original as a supporting report."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _load(s, case_id)
        move = _check(s, person, case, "duplicate")
        if original_id == case_id:
            raise SameCase()
        original = cases.get_case(s, original_id)
        if original is None:
            raise UnknownCase(code=str(original_id))
        if original.state in CaseState.FINAL:
            raise OriginalNotOpen(code=original.code)
        from_state = _move(s, case, move, now, {"duplicate_of_id": original.id})
        deadlines.replan(rt, s, case, now)
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
        for media in cases.media_of(s, case_id, stage="report"):
            cases.add_media(s, _copy_media(media, case_id=original.id, support_id=support.id, now=now))  # type: ignore[arg-type]
        audit.record(
            s,
            action=ACTION_DUPLICATE,
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            actor_user_id=person.user_id,
            from_state=from_state,
            to_state=CaseState.DUPLICATE,
            data={"original_id": original.id, "original_code": original.code, "support_id": support.id},
            at=now,
        )
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
        _refresh_other_cards(s, case, now)
        # The original's cards now count one more report.
        notify.refresh_cards(s, case_id=original.id, now=now)  # type: ignore[arg-type]
        reporter = _reporter_to_tell(s, case, person)
        if reporter is not None:
            notify.text_to_user(
                s,
                telegram_id=reporter,
                key=N_("dispatch.reporter_duplicate"),
                now=now,
                case_id=case.id,
                code=case.code,
                original=original.code,
            )
        return Decided(case.id, case.code, case.state, original=original.code)  # type: ignore[arg-type]


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
        move = _check(s, person, case, "reject")
        # The note on the card is read by the command room: write it in their language.
        note = t(_command_room_language(rt, s, case), REASONS[reason]) if reason else text
        from_state = _move(s, case, move, now, {"decision_note": note})
        deadlines.replan(rt, s, case, now)
        audit.record(
            s,
            action=ACTION_REJECTED,
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            actor_user_id=person.user_id,
            from_state=from_state,
            to_state=CaseState.REJECTED,
            note=note,
            data={"reason": reason or "other"},
            at=now,
        )
        _refresh_other_cards(s, case, now)
        reporter = _reporter_to_tell(s, case, person)
        if reporter is not None:
            # A preset reason in the reporter's language; the dispatcher's own words as typed.
            reason_params = (
                {"reason_zh": t("zh_CN", REASONS[reason]), "reason_en": t("en", REASONS[reason])}
                if reason
                else {"reason": text}
            )
            notify.text_to_user(
                s,
                telegram_id=reporter,
                key=N_("dispatch.reporter_rejected"),
                now=now,
                case_id=case.id,
                code=case.code,
                **reason_params,
            )
        return Decided(case.id, case.code, case.state, note=note)  # type: ignore[arg-type]


# --- helpers ----------------------------------------------------------------------


def _load(s: Session, case_id: int) -> Case:
    case = cases.get_case(s, case_id)
    if case is None:
        raise UnknownCase(code=str(case_id))
    return case


def _actors(s: Session, person: Person, case: Case) -> set[str]:
    """The roles of the state machine this person holds for the command room's decisions:
    a dispatcher of the case's street, or an admin."""
    found: set[str] = set()
    street = orgs.street(s, case.street_id) if case.street_id is not None else None
    if street is not None and street.code in person.scopes(Role.DISPATCHER):
        found.add(workflow.DISPATCHER)
    if person.is_admin:
        found.add(workflow.ADMIN)
    return found


def _check(s: Session, person: Person, case: Case, action: str) -> workflow.Move:
    """The move, if this person may make it on the case now (rights first, then state)."""
    try:
        return workflow.check(action, state=case.state, actors=_actors(s, person, case), code=case.code)
    except workflow.ActorNotAllowed:
        raise NotDispatcher() from None
    except workflow.MoveNotAllowed:
        raise CaseMovedOn(outcome(s, case)) from None


def _case_for(s: Session, person: Person, case_id: int, action: str) -> Case:
    case = _load(s, case_id)
    _check(s, person, case, action)
    return case


def _move(s: Session, case: Case, move: workflow.Move, now: datetime, values: dict[str, object]) -> str:
    """Compare-and-set the case along `move`; the state it left. Of two racing, one wins."""
    from_state = case.state
    won = cases.change_state(
        s,
        case_id=case.id,
        from_state=from_state,
        version=case.version,  # type: ignore[arg-type]
        values={"state": move.target, "updated_at": now, **values},
    )
    s.refresh(case)  # the update bypassed the object: read back what the database holds
    if not won:
        raise CaseMovedOn(outcome(s, case))
    return from_state


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


def _refresh_other_cards(s: Session, case: Case, now: datetime, *, also_unit: Unit | None = None) -> None:
    """Queue the command room's card (re-rendered: no decision buttons now) and a refresh of
    every other card already posted, except the one `also_unit` was just sent."""
    notify.card_to_command_room(s, case=case, now=now)
    room = orgs.command_room_of(s, case.street_id) if case.street_id else None
    skip = set()
    for unit in (room, also_unit):
        chat = chats.chat_for_unit(s, unit.id) if unit is not None else None  # type: ignore[arg-type]
        if chat is not None and unit is not None:
            skip.add((chat.telegram_id, notify.COMMAND if unit is room else notify.TEAM))
    notify.refresh_cards(s, case_id=case.id, now=now, skip=frozenset(skip))  # type: ignore[arg-type]


def _reporter_to_tell(s: Session, case: Case, actor: Person) -> int | None:
    """The reporter's Telegram id, if there is a reporter to tell (not the one who decided,
    not someone who blocked the bot)."""
    user = people.get_user(s, case.reporter_user_id) if case.reporter_user_id else None
    if user is None or user.id == actor.user_id or not user.can_message:
        return None
    return user.telegram_id


def _command_room_language(rt: Runtime, s: Session, case: Case) -> str:
    room = orgs.command_room_of(s, case.street_id) if case.street_id else None
    chat = chats.chat_for_unit(s, room.id) if room is not None else None  # type: ignore[arg-type]
    return (chat.language if chat else None) or rt.settings.default_language


def _copy_media(media: CaseMedia, *, case_id: int, support_id: int, now: datetime) -> CaseMedia:
    return CaseMedia(
        case_id=case_id,
        support_id=support_id,
        stage="support",
        kind=media.kind,
        telegram_file_id=media.telegram_file_id,
        sha256=media.sha256,
        original_path=media.original_path,
        jpeg_path=media.jpeg_path,
        thumb_path=media.thumb_path,
        width=media.width,
        height=media.height,
        duration=media.duration,
        taken_at=media.taken_at,
        added_by_user_id=media.added_by_user_id,
        created_at=now,
    )
