"""Working a case (处置 → 反馈 → 核查结案): notes, returning, more time, whistles, resolving,
verifying and closing. Each action is one transaction with its audit event and outbox rows.

Actions that need words or photos from a person collect them first in a pending input
(private chat), then run here when the person presses Done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot import notify
from bot.cases import deadlines, lifecycle
from bot.cases.lifecycle import CaseNotFound
from bot.cases.timewords import more_time_words
from bot.errors import DomainError
from bot.i18n import N_
from bot.intake.submit import PhotoIn, add_media
from bot.org import index
from bot.people.roles import Person
from bot.rating import ratings as rating
from bot.runtime import Runtime
from storage import audit, cases, casework, chats, outbox, people
from storage.models import Case, CaseSource, ExtensionRequest, Role, UnitKind, Whistle, pk

NOTE, RETURN, EXTEND, ESCALATE, RESOLVE, NOT_FIXED = "note", "return", "extend", "escalate", "resolve", "not_fixed"
INPUT_ACTIONS = (NOTE, RETURN, EXTEND, ESCALATE, RESOLVE, NOT_FIXED)
# The state-machine move behind each input action (a note changes no state).
_MOVE = {RETURN: "return", ESCALATE: "escalate", RESOLVE: "resolve", NOT_FIXED: "not_fixed"}
MAX_TEXT = 2000
MAX_PHOTOS = 10


class ReasonRequired(DomainError):
    key = "work.reason_required"


class MoreTimeRequired(DomainError):
    key = "work.more_time_required"


class PhotoRequired(DomainError):
    key = "work.photo_required"


class DepartmentRequired(DomainError):
    key = "work.department_required"


class NothingPending(DomainError):
    key = "work.nothing_pending"


class AlreadyReportedIn(DomainError):
    key = "work.already_reported_in"


class AlreadyDecided(DomainError):
    key = "work.already_decided"


@dataclass(frozen=True)
class Pending:
    id: int
    action: str
    case_id: int
    code: str
    text: str
    photos: int
    departments: tuple[int, ...] = ()
    more: int | None = None  # more time asked for, in `unit` (see deadlines.MORE_TIME_CHOICES)
    unit: str = "h"


@dataclass(frozen=True)
class Done:
    action: str
    case_id: int
    code: str
    state: str
    extra: dict[str, Any] = field(default_factory=dict)


def _case(s: Session, case_id: int) -> Case:
    return lifecycle.load(s, case_id)


def _check(rt: Runtime, s: Session, person: Person, case: Case, action: str) -> frozenset[str]:
    """May the person start (or finish) this input action on the case now? (Rights first.)"""
    return lifecycle.check(rt, s, person, case, _MOVE.get(action, action))


def _view(row: Any, code: str) -> Pending:
    d = row.data or {}
    return Pending(
        row.id,
        row.action,
        row.case_id,
        code,
        d.get("text", ""),
        len(d.get("photos", [])),
        tuple(d.get("departments", [])),
        *_more_time(d),
    )


def _more_time(d: dict[str, Any]) -> tuple[int | None, str]:
    """The more time chosen and its unit. An exchange begun before units existed chose
    plain hours ("hours"), and keeps meaning them."""
    if "unit" in d:
        return d.get("more"), str(d["unit"])
    return d.get("hours"), "h"


def start_input(rt: Runtime, *, person: Person, case_id: int, action: str) -> Pending:
    """Check the person may do this now, and wait for their words and photos."""
    if action not in INPUT_ACTIONS:
        raise lifecycle.ActorNotAllowed()
    with rt.db.session() as s:
        case = _case(s, case_id)
        _check(rt, s, person, case, action)
        # more time is offered in the unit of the case's limit, fixed for this exchange
        data = {"unit": deadlines.more_time_unit(rt, case)} if action == EXTEND else {}
        row = casework.start_pending(
            s, user_id=person.user_id, action=action, case_id=case_id, data=data, now=rt.clock.now()
        )
        return _view(row, case.code)


def pending(rt: Runtime, user_id: int) -> Pending | None:
    with rt.db.read() as s:
        return pending_in(s, user_id)


def pending_in(s: Session, user_id: int, *, words: str | None = None, now: datetime | None = None) -> Pending | None:
    """The words and photos this user owes a case action, in the caller's unit of work;
    with `words` (a text message), those are added to them in it (see :func:`add_input`)."""
    row = casework.pending_of(s, user_id, for_update=words is not None)
    if row is None:
        return None
    if words is not None and words.strip():
        assert now is not None
        data = dict(row.data or {})
        _add(data, None, words)
        row = casework.save_pending(s, row, data=data, now=now)
    case = cases.get_case(s, row.case_id)
    return _view(row, case.code if case else "?")


def _update(rt: Runtime, user_id: int, change: Any) -> Pending:
    with rt.db.session() as s:
        row = casework.pending_of(s, user_id, for_update=True)  # read-modify-write: one at a time
        if row is None:
            raise NothingPending()
        data = dict(row.data or {})
        change(data)
        row = casework.save_pending(s, row, data=data, now=rt.clock.now())
        case = cases.get_case(s, row.case_id)
        return _view(row, case.code if case else "?")


def _add(d: dict[str, Any], photo: PhotoIn | None, text: str | None) -> None:
    if photo is not None:
        photos = list(d.get("photos", []))
        if len(photos) < MAX_PHOTOS:
            photos.append({**photo.__dict__, "taken_at": photo.taken_at.isoformat() if photo.taken_at else None})
        d["photos"] = photos
    if text is not None:
        joined = (d.get("text", "") + "\n" + text).strip() if d.get("text") else text.strip()
        d["text"] = joined[:MAX_TEXT]


def add_text(rt: Runtime, *, user_id: int, text: str) -> Pending:
    return add_input(rt, user_id=user_id, text=text)


def add_photo(rt: Runtime, *, user_id: int, photo: PhotoIn) -> Pending:
    return add_input(rt, user_id=user_id, photo=photo)


def add_input(rt: Runtime, *, user_id: int, photo: PhotoIn | None = None, text: str | None = None) -> Pending:
    """A photo, words, or a photo with its caption: added in one unit of work."""
    return _update(rt, user_id, lambda d: _add(d, photo, text))


def toggle_department(rt: Runtime, *, user_id: int, unit_id: int) -> Pending:
    unit = index.org(rt).unit(unit_id)
    if unit is None or unit.kind != UnitKind.DEPARTMENT or not unit.active:
        raise lifecycle.ActorNotAllowed()

    def change(d: dict[str, Any]) -> None:
        chosen = set(d.get("departments", []))
        chosen ^= {unit_id}
        d["departments"] = sorted(chosen)

    return _update(rt, user_id, change)


def set_more_time(rt: Runtime, *, user_id: int, amount: int, unit: str) -> Pending:
    """The more time asked for: one of the choices of the exchange's unit (a button of
    another unit, or an amount not offered, is stale)."""

    def change(d: dict[str, Any]) -> None:
        if _more_time(d)[1] != unit or amount not in deadlines.MORE_TIME_CHOICES.get(unit, ()):
            raise lifecycle.ActorNotAllowed()
        d.pop("hours", None)
        d.update(more=amount, unit=unit)

    return _update(rt, user_id, change)


def cancel_input(rt: Runtime, *, user_id: int) -> bool:
    with rt.db.session() as s:
        existed = casework.pending_of(s, user_id) is not None
        casework.drop_pending(s, user_id)
        return existed


def departments(rt: Runtime) -> list[tuple[int, str, str]]:
    """The departments a case can be whistled to (from the organisation in memory)."""
    units = sorted(index.org(rt).units.values(), key=lambda u: pk(u))
    return [(pk(u), u.name_zh, u.name_en) for u in units if u.active and u.kind == UnitKind.DEPARTMENT]


# --- finishing an input -------------------------------------------------------------


def finish(rt: Runtime, *, person: Person, pending_id: int) -> Done:
    """Run the action the person prepared: one transaction, or a typed reason why not."""
    now = rt.clock.now()
    with rt.db.session() as s:
        row = casework.pending_of(s, person.user_id)
        if row is None or row.id != pending_id:
            raise NothingPending()
        case = _case(s, row.case_id)
        _check(rt, s, person, case, row.action)  # the case may have moved on meanwhile
        data = dict(row.data or {})
        text = (data.get("text") or "").strip()
        photos = [
            PhotoIn(**{**p, "taken_at": datetime.fromisoformat(p["taken_at"]) if p.get("taken_at") else None})
            for p in data.get("photos", [])
        ]
        action = row.action
        if action == NOTE:
            if not text and not photos:
                raise ReasonRequired()
            done = _note(rt, s, person, case, text, photos, now)
        elif action == RETURN:
            if not text:
                raise ReasonRequired()
            done = _return(rt, s, person, case, text, now)
        elif action == EXTEND:
            amount, unit = _more_time(data)
            if not amount:
                raise MoreTimeRequired()
            if not text:
                raise ReasonRequired()
            done = _extend(s, rt, person, case, text, int(amount), unit, now)
        elif action == ESCALATE:
            if not data.get("departments"):
                raise DepartmentRequired()
            if not text:
                raise ReasonRequired()
            done = _escalate(rt, s, person, case, text, list(data["departments"]), now)
        elif action == RESOLVE:
            category = index.org(rt).category(case.category_id) if case.category_id else None
            if category is not None and category.after_photo_required and not photos:
                raise PhotoRequired()
            if not text and not photos:
                raise ReasonRequired()
            done = _resolve(rt, s, person, case, text, photos, now)
        elif action == NOT_FIXED:
            if not text:
                raise ReasonRequired()
            done = _not_fixed(rt, s, person, case, text, photos, now)
        else:  # pragma: no cover - INPUT_ACTIONS guards this
            raise NothingPending()
        casework.drop_pending(s, person.user_id)
        return done


def _note(rt: Runtime, s: Session, person: Person, case: Case, text: str, photos: list[PhotoIn], now: datetime) -> Done:
    add_media(s, case_id=_id(case), stage="progress", added_by=person.user_id, now=now, photos=photos)
    # A note changes nothing the cards show: no card edits for it.
    lifecycle.act(
        rt, s, case, "note", person, now=now, event="case.note",
        note=text or None, data={"photos": len(photos)}, refresh=False,
    )  # fmt: skip
    return Done(NOTE, _id(case), case.code, case.state)


def _return(rt: Runtime, s: Session, person: Person, case: Case, reason: str, now: datetime) -> Done:
    had_command_card = any(card.purpose == notify.COMMAND for card in cases.cards_of(s, _id(case)))
    lifecycle.transition(
        rt, s, case, "return", person, now=now, note=reason, data={"unit_id": case.unit_id},
        values={"owner_user_id": None, "claimed_at": None, "decision_note": reason},
    )  # fmt: skip
    if not had_command_card:
        notify.card_to_command_room(rt, s, case=case, now=now)
    return Done(RETURN, _id(case), case.code, case.state)


def _extend(
    s: Session, rt: Runtime, person: Person, case: Case, reason: str, amount: int, unit: str, now: datetime
) -> Done:
    new_due = deadlines.more_time_due(rt, s, case, amount, unit, now)
    request = casework.add_extension(
        s,
        ExtensionRequest(
            case_id=_id(case),
            requested_by=person.user_id,
            reason=reason,
            old_due_at=case.due_at,
            new_due_at=new_due,
            created_at=now,
        ),
    )
    audit.record(
        s,
        action="case.extension_requested",
        subject_type="case",
        subject_id=case.id,
        case_id=case.id,
        actor_user_id=person.user_id,
        note=reason,
        data={"request": request.id, "more": amount, "unit": unit, "due_at": new_due.isoformat()},
        at=now,
    )
    room = index.org(rt).command_room(case.street_id) if case.street_id else None
    chat_id = index.unit_group(rt, s, room.id if room else None)
    if chat_id is not None:
        outbox.enqueue(
            s,
            chat_id=chat_id,
            kind="extension_request",
            case_id=case.id,
            now=now,
            payload={
                "request": request.id,
                "code": case.code,
                # the amount in words in both languages: the group's is picked when sent
                "hours_zh": more_time_words("zh_CN", amount, unit),
                "hours_en": more_time_words("en", amount, unit),
                "reason": reason,
                "by": person.name,
                "due": local_time(rt, new_due),
            },
        )
    return Done(EXTEND, _id(case), case.code, case.state, {"request": request.id})


def local_time(rt: Runtime, at: datetime) -> str:
    """A time as people read it on a card: month-day hour:minute in the org's time zone."""
    return at.astimezone(rt.settings.tz).strftime("%m-%d %H:%M")


def _escalate(
    rt: Runtime, s: Session, person: Person, case: Case, request: str, unit_ids: list[int], now: datetime
) -> Done:
    # The whistles first: the refreshed cards (and the new departments' cards) show them.
    round_no = casework.next_whistle_round(s, _id(case))
    for unit_id in unit_ids:
        casework.add_whistle(
            s,
            Whistle(
                case_id=_id(case),
                unit_id=unit_id,
                round=round_no,
                request=request,
                requested_by=person.user_id,
                created_at=now,
            ),
        )
    lifecycle.transition(rt, s, case, "escalate", person, now=now, note=request, data={"departments": unit_ids})
    for unit_id in unit_ids:
        notify.card_to_unit(rt, s, case=case, unit_id=unit_id, purpose=notify.DEPARTMENT, now=now)
    return Done(ESCALATE, _id(case), case.code, case.state, {"departments": unit_ids})


def _resolve(
    rt: Runtime, s: Session, person: Person, case: Case, note: str, photos: list[PhotoIn], now: datetime
) -> Done:
    add_media(s, case_id=_id(case), stage="after", added_by=person.user_id, now=now, photos=photos)
    lifecycle.transition(
        rt, s, case, "resolve", person, now=now, note=note or None, data={"photos": len(photos)},
        values={"resolved_at": now, "verify_escalated_at": None},
    )  # fmt: skip
    _ask_to_verify(rt, s, case, now)
    return Done(RESOLVE, _id(case), case.code, case.state)


def _ask_to_verify(rt: Runtime, s: Session, case: Case, now: datetime) -> None:
    """A worker who reported it checks on site; a resident's case, or one with nobody to
    ask in chat, is verified by the command room."""
    chat_id = people.chat_of(s, case.reporter_user_id) if case.reporter_user_id else None
    if chat_id is not None and case.source == CaseSource.PATROL:
        outbox.enqueue(s, chat_id=chat_id, kind="verify_request", case_id=case.id, now=now)
        return
    room = notify.command_room(rt, case)
    notify.card_to_unit(rt, s, case=case, unit_id=room.id if room else None, purpose=notify.VERIFY, now=now)
    lifecycle.tell(s, case, case.reporter_user_id, N_("work.reporter_resolved"), now)


def _not_fixed(
    rt: Runtime, s: Session, person: Person, case: Case, reason: str, photos: list[PhotoIn], now: datetime
) -> Done:
    add_media(s, case_id=_id(case), stage="reverify", added_by=person.user_id, now=now, photos=photos)
    lifecycle.transition(
        rt, s, case, "not_fixed", person, now=now, note=reason, data={"photos": len(photos)},
        values={"resolved_at": None}, tell_params={"reason": reason},
    )  # fmt: skip
    unit_chat = index.unit_group(rt, s, case.unit_id)
    if unit_chat is not None:
        notify.text_to_user(
            s,
            telegram_id=unit_chat,
            key="work.team_not_fixed",
            now=now,
            case_id=case.id,
            code=case.code,
            reason=reason,
        )
    return Done(NOT_FIXED, _id(case), case.code, case.state)


def _id(case: Case) -> int:
    return pk(case)


# --- actions without input ------------------------------------------------------------


def confirm(rt: Runtime, *, person: Person, case_id: int) -> Done:
    """Confirmed fixed on site: the case closes."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = _case(s, case_id)
        lifecycle.transition(rt, s, case, "confirm", person, now=now, values={"closed_at": now})
        rating.on_case_closed(rt, s, case, now)  # ask the residents concerned to rate it
        return Done("confirm", case_id, case.code, case.state)


def report_in(rt: Runtime, *, person: Person, whistle_id: int) -> Done:
    """A department answers the whistle (报到): the first of its members to press."""
    now = rt.clock.now()
    with rt.db.session() as s:
        whistle = casework.get_whistle(s, whistle_id)
        if whistle is None:
            raise CaseNotFound()
        case = _case(s, whistle.case_id)
        who = lifecycle.check(rt, s, person, case, "report_in")
        unit = index.org(rt).unit(whistle.unit_id)
        if unit is None or unit.code not in person.scopes(Role.DEPARTMENT):
            raise lifecycle.ActorNotAllowed(code=case.code)  # another department's whistle
        if not casework.report_in(s, whistle_id=whistle_id, user_id=person.user_id, now=now):
            raise AlreadyReportedIn(code=case.code)
        lifecycle.act(
            rt, s, case, "report_in", person, now=now, who=who, event="case.reported_in",
            data={"unit_id": unit.id, "whistle": whistle_id},
        )  # fmt: skip
        lifecycle.tell(
            s, case, case.owner_user_id, N_("work.owner_reported_in"), now,
            unless=person.user_id, department_zh=unit.name_zh, department_en=unit.name_en,
        )  # fmt: skip
        return Done("report_in", _id(case), case.code, case.state, {"unit": unit.code})


def department_reply(rt: Runtime, *, person: Person, case_id: int, unit_chat_id: int, text: str) -> Done | None:
    """A department's reply to the case card in its group reaches the owner."""
    now = rt.clock.now()
    with rt.db.session() as s:
        case = cases.get_case(s, case_id)
        if case is None:
            return None
        chat = chats.get_chat(s, unit_chat_id)
        unit = index.org(rt).unit(chat.unit_id) if chat and chat.unit_id else None
        if unit is None or unit.kind != UnitKind.DEPARTMENT:
            return None
        audit.record(
            s,
            action="case.department_reply",
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            actor_user_id=person.user_id,
            note=text[:MAX_TEXT],
            data={"unit_id": unit.id},
            at=now,
        )
        lifecycle.tell(
            s, case, case.owner_user_id, N_("work.owner_department_reply"), now,
            department_zh=unit.name_zh, department_en=unit.name_en, name=person.name, text=text[:1500],
        )  # fmt: skip
        return Done("reply", _id(case), case.code, case.state)


def decide_extension(rt: Runtime, *, person: Person, request_id: int, approve: bool) -> Done:
    """The command room approves or refuses more time. Approved: the due time moves, the
    ladder starts again, every card shows the new due time and the requester hears it."""
    now = rt.clock.now()
    with rt.db.session() as s:
        request = casework.get_extension(s, request_id)
        if request is None:
            raise CaseNotFound()
        case = _case(s, request.case_id)
        who = lifecycle.check(rt, s, person, case, "decide_extension")
        decision = "approved" if approve else "refused"
        if not casework.decide_extension(s, request_id=request_id, decision=decision, user_id=person.user_id, now=now):
            raise AlreadyDecided(code=case.code)
        if approve:
            deadlines.extended(rt, s, case, request.new_due_at, now)
        lifecycle.act(
            rt, s, case, "decide_extension", person, now=now, who=who, event=f"case.extension_{decision}",
            data={"request": request_id, "due_at": request.new_due_at.isoformat()}, refresh=approve,
        )  # fmt: skip
        due_at = case.due_at or now
        lifecycle.tell(
            s, case, request.requested_by, f"work.extension_{decision}", now,
            due=local_time(rt, due_at), due_at=due_at.isoformat(),  # said in words when near, as reminders are
        )  # fmt: skip
        return Done("extension", _id(case), case.code, case.state, {"decision": decision, "due_at": due_at})


def escalate_unverified(rt: Runtime, *, after: timedelta) -> list[str]:
    """Resolved cases nobody verified in time go to the command room to decide; never
    closed silently. Returns the codes put to the command room."""
    now = rt.clock.now()
    codes = []
    with rt.db.session() as s:
        for case in casework.unverified_since(s, now - after):
            case.verify_escalated_at = now
            s.add(case)
            room = index.org(rt).command_room(case.street_id) if case.street_id else None
            notify.card_to_unit(rt, s, case=case, unit_id=room.id if room else None, purpose=notify.VERIFY, now=now)
            audit.record(
                s, action="case.verify_overdue", subject_type="case", subject_id=case.id, case_id=case.id, at=now
            )
            codes.append(case.code)
    return codes


def case_of_card(rt: Runtime, *, chat_id: int, message_id: int) -> int | None:
    with rt.db.read() as s:
        return casework.case_for_card(s, chat_id=chat_id, message_id=message_id)
