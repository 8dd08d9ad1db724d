"""Deadlines that people feel: due times, reminders, the supervision ladder (督办), digests.

Nothing here schedules a job per case. Each case carries its due time and the time of its
next reminder (indexed); `sweep` picks what is due, claims each case with a
compare-and-set on its version, records which reminders went out, and queues outbox rows:
so a restart neither loses nor repeats a reminder, and two sweepers never double one.

A case's reminders, in order (all computed, never stored as jobs):
  unclaimed    claim1 at the claim deadline, claim2 at twice it          → the team group
  owned        owner_50, owner_80 at shares of the allowed time, owner_due → the owner
  any open     rung1 at the due time (督办: owner, team, command room),
               rung2 at 2× the allowed time (the street's supervisors),
               rung3 at 3× (the district's supervisors)
Non-urgent messages are held through quiet hours (their outbox rows wait for the morning).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, cast

from sqlmodel import Session

from bot import notify
from bot.interop import webhooks
from bot.org import index
from bot.org.workcalendar import LimitUnit, QuietHours, WorkCalendar
from bot.runtime import Runtime
from storage import audit as audit_log
from storage import cases as case_rows
from storage import deadlines, external, orgs, outbox, people
from storage.events import business_event
from storage.models import Case, CaseSource, CaseState, FollowUp, Role, pk

DEFAULTS: dict[str, Any] = {
    "working_hours": ["08:30-12:00", "14:00-18:00"],
    "quiet_hours": "22:00-07:30",
    "claim_minutes": 30,
    "reminders": [0.5, 0.8],
    "digest_time": "08:30",
    "follow_up_days": 3,
}
CLAIM_KINDS = ("claim1", "claim2")
RUNGS = ("rung1", "rung2", "rung3")
UNCLAIMED = (CaseState.DISPATCHED, CaseState.REOPENED)
WORKING = (CaseState.CLAIMED, CaseState.ESCALATED, CaseState.REOPENED)
# The ladder climbs while the case is someone's to finish; it waits while the reporter
# verifies (resolved), and stops when the case ends.
LADDER = (CaseState.DISPATCHED, CaseState.CLAIMED, CaseState.ESCALATED, CaseState.REOPENED, CaseState.RETURNED)
SWEEP_BATCH = 500


@dataclass(frozen=True)
class StreetClock:
    calendar: WorkCalendar
    quiet: QuietHours
    claim_minutes: int
    reminders: tuple[float, ...]
    digest_time: time
    follow_up_days: float


@dataclass(frozen=True)
class Event:
    kind: str
    at: datetime


@dataclass
class SweepResult:
    cases: int = 0
    reminders: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _parse_clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _quiet(span: str) -> QuietHours:
    start, end = span.split("-")
    return QuietHours(_parse_clock(start), _parse_clock(end))


def street_clock(rt: Runtime, s: Session, street_id: int | None) -> StreetClock:
    """The effective deadline settings of a street: defaults ← district ← street."""
    cache: dict[int | None, StreetClock] = rt.cache.setdefault(index.STREET_CLOCKS, {})
    if street_id in cache:
        return cache[street_id]
    zone, merged = _settings(rt, s, street_id)
    calendar = WorkCalendar.from_settings(
        zone, merged["working_hours"], merged.get("extra_days_off", []), merged.get("extra_workdays", [])
    )
    clock = StreetClock(
        calendar=calendar,
        quiet=_quiet(merged["quiet_hours"]),
        claim_minutes=int(merged["claim_minutes"]),
        reminders=tuple(sorted(float(f) for f in merged["reminders"])),
        digest_time=_parse_clock(merged["digest_time"]),
        follow_up_days=float(merged["follow_up_days"]),
    )
    cache[street_id] = clock
    return clock


def _settings(rt: Runtime, s: Session, street_id: int | None) -> tuple[str, dict[str, Any]]:
    district = orgs.district(s)
    street = orgs.street(s, street_id) if street_id else None
    merged = {
        **DEFAULTS,
        **((district.settings or {}) if district else {}),
        **((street.settings or {}) if street else {}),
    }
    return (district.timezone if district else rt.settings.timezone), merged


def measure_inputs(rt: Runtime, s: Session, street_id: int | None) -> str:
    """What a street's working-time measures depend on (its calendar and claim limit), as one
    comparable text: when it changes, the figures derived with it are stale."""
    zone, merged = _settings(rt, s, street_id)
    keys = ("working_hours", "extra_days_off", "extra_workdays", "claim_minutes")
    return json.dumps([zone, *(merged.get(k) for k in keys)], sort_keys=True, default=str)


def _after(clock: StreetClock, start: datetime, seconds: float, urgent: bool) -> datetime:
    return start + timedelta(seconds=seconds) if urgent else clock.calendar.add_working_time(start, seconds)


def _allowed(clock: StreetClock, case: Case) -> float:
    assert case.deadline_started_at is not None and case.due_at is not None
    if case.urgent:
        return (case.due_at - case.deadline_started_at).total_seconds()
    return clock.calendar.working_seconds_between(case.deadline_started_at, case.due_at)


def plan(clock: StreetClock, case: Case) -> list[Event]:
    """Every reminder this case should get in its present state, in time order."""
    events: list[Event] = []
    if case.state in UNCLAIMED and case.owner_user_id is None and case.claim_started_at is not None:
        minutes = clock.claim_minutes * 60
        events.append(Event("claim1", _after(clock, case.claim_started_at, minutes, case.urgent)))
        events.append(Event("claim2", _after(clock, case.claim_started_at, 2 * minutes, case.urgent)))
    if case.due_at is not None and case.deadline_started_at is not None:
        allowed = _allowed(clock, case)
        start = case.deadline_started_at
        if case.state in WORKING and case.owner_user_id is not None:
            for share in clock.reminders:
                events.append(Event(f"owner_{round(share * 100)}", _after(clock, start, share * allowed, case.urgent)))
            events.append(Event("owner_due", case.due_at))
        if case.state in LADDER:
            events.append(Event("rung1", case.due_at))
            events.append(Event("rung2", _after(clock, start, 2 * allowed, case.urgent)))
            events.append(Event("rung3", _after(clock, start, 3 * allowed, case.urgent)))
    return sorted(events, key=lambda e: e.at)


def next_at(clock: StreetClock, case: Case) -> datetime | None:
    done = set(case.reminders_done or [])
    pending = [e.at for e in plan(clock, case) if e.kind not in done]
    return min(pending) if pending else None


# --- hooks the services call when a case moves ----------------------------------------


def start_clock(rt: Runtime, s: Session, case: Case, now: datetime) -> None:
    """At dispatch: the due time from the category's limit on the street's calendar."""
    clock = street_clock(rt, s, case.street_id)
    category = index.org(rt).category(case.category_id) if case.category_id else None
    if category is not None:
        unit = cast(LimitUnit, category.limit_unit)  # the organisation file allows only these two
        due = clock.calendar.due_time(now, category.limit_value, unit, category.urgent)
        due = min(due, hotline_deadline(s, case) or due)  # the hotline's own deadline wins when earlier
        if due != case.due_at:
            audit_log.record(
                s,
                action="case.due_set",
                subject_type="case",
                subject_id=case.id,
                case_id=case.id,
                data={"due_at": due.isoformat(), "previous": case.due_at.isoformat() if case.due_at else None},
                at=now,
            )
        case.due_at = due
    case.deadline_started_at = now
    case.claim_started_at = now
    case.reminders_done = []
    case.rung = 0
    case.next_reminder_at = next_at(clock, case)
    s.add(case)


def hotline_deadline(s: Session, case: Case) -> datetime | None:
    """The deadline the 12345 hotline set on the ticket behind a case (issue 13), if any."""
    if case.source != CaseSource.HOTLINE or case.id is None:
        return None
    ticket = external.ticket_of_case(s, case.id)
    return ticket.deadline if ticket is not None else None


def replan(rt: Runtime, s: Session, case: Case, now: datetime) -> None:
    """After any move: the next reminder for the case as it now stands (None when closed)."""
    clock = street_clock(rt, s, case.street_id)
    case.next_reminder_at = next_at(clock, case)
    s.add(case)


def became_unclaimed(rt: Runtime, s: Session, case: Case, now: datetime) -> None:
    """Released or reopened without an owner: the claim clock starts again."""
    case.claim_started_at = now
    case.reminders_done = [k for k in (case.reminders_done or []) if k not in CLAIM_KINDS]
    replan(rt, s, case, now)


def resumed_after_verification(
    rt: Runtime, s: Session, case: Case, paused_since: datetime | None, now: datetime
) -> None:
    """Not fixed: the time spent waiting on the reporter is given back to the team."""
    if paused_since is not None and case.due_at is not None and case.deadline_started_at is not None:
        clock = street_clock(rt, s, case.street_id)
        if case.urgent:
            paused = (now - paused_since).total_seconds()
        else:
            paused = clock.calendar.working_seconds_between(paused_since, now)
        old = case.due_at
        case.due_at = _after(clock, case.due_at, paused, case.urgent)
        case.deadline_started_at = _after(clock, case.deadline_started_at, paused, case.urgent)
        audit_log.record(
            s,
            action="case.due_set",
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            note="verification pause",
            data={"due_at": case.due_at.isoformat(), "previous": old.isoformat()},
            at=now,
        )
    replan(rt, s, case, now)


def extended(rt: Runtime, s: Session, case: Case, new_due: datetime, now: datetime) -> None:
    """An approved extension moves the due time and starts the ladder again."""
    old = case.due_at
    case.due_at = new_due
    case.rung = 0
    case.reminders_done = [k for k in (case.reminders_done or []) if k in CLAIM_KINDS]
    audit_log.record(
        s,
        action="case.due_set",
        subject_type="case",
        subject_id=case.id,
        case_id=case.id,
        note="extension",
        data={"due_at": new_due.isoformat(), "previous": old.isoformat() if old else None},
        at=now,
    )
    replan(rt, s, case, now)


# --- more time (延期), in the unit of the case's limit ----------------------------------------

# A request for more time is counted in the unit of the category's limit (时限): working
# hours or working days on the street's calendar, or wall-clock hours or days for an urgent
# case (its limit runs on the wall clock). The choices each unit offers, defined once;
# "h" is also what requests made before units existed meant (plain hours).
MORE_TIME_CHOICES: dict[str, tuple[int, ...]] = {
    "wh": (4, 8, 24),
    "wd": (1, 2, 3),
    "h": (4, 8, 24),
    "d": (1, 2, 3),
}
# Each unit as the calendar's (limit unit, on the wall clock) arguments.
_MORE_TIME_LIMIT: dict[str, tuple[LimitUnit, bool]] = {
    "wh": ("hours", False),
    "wd": ("days", False),
    "h": ("hours", True),
    "d": ("days", True),
}


def more_time_unit(rt: Runtime, case: Case) -> str:
    """The unit more time is asked in for this case: its category's limit unit."""
    category = index.org(rt).category(case.category_id) if case.category_id else None
    in_days = category is not None and category.limit_unit == "days"
    if case.urgent:
        return "d" if in_days else "h"
    return "wd" if in_days else "wh"


def more_time_due(rt: Runtime, s: Session, case: Case, amount: int, unit: str, now: datetime) -> datetime:
    """The due time after `amount` more of `unit`, on the street's working calendar (days
    off and holidays skipped), from the present due time, or from now for a case already
    late: more time added to a past due time could leave it late on approval. (Which amounts
    may be asked is the exchange's to check: one begun before units chose 72 or 168 hours.)"""
    if unit not in _MORE_TIME_LIMIT:
        raise ValueError(f"no unit of more time {unit!r}")
    limit_unit, wall_clock = _MORE_TIME_LIMIT[unit]
    clock = street_clock(rt, s, case.street_id)
    base = max(case.due_at, now) if case.due_at is not None else now
    return clock.calendar.due_time(base, amount, limit_unit, wall_clock)


# --- follow-ups (回访) go through the same reminders and ladder -------------------------------


def followup_plan(clock: StreetClock, row: FollowUp) -> list[Event]:
    if row.outcome is not None:
        return []
    allowed = clock.calendar.working_seconds_between(row.created_at, row.due_at)
    events = [
        Event(f"fu_{round(share * 100)}", _after(clock, row.created_at, share * allowed, False))
        for share in clock.reminders
    ]
    events.append(Event("rung1", row.due_at))
    events.append(Event("rung2", _after(clock, row.created_at, 2 * allowed, False)))
    events.append(Event("rung3", _after(clock, row.created_at, 3 * allowed, False)))
    return sorted(events, key=lambda e: e.at)


def plan_followup(rt: Runtime, s: Session, row: FollowUp) -> None:
    clock = street_clock(rt, s, row.street_id)
    done = set(row.reminders_done or [])
    pending = [e.at for e in followup_plan(clock, row) if e.kind not in done]
    row.next_reminder_at = min(pending) if pending else None
    s.add(row)


def _sweep_followups(rt: Runtime, s: Session, now: datetime, limit: int, result: SweepResult) -> None:
    for row in deadlines.followups_due(s, now=now, limit=limit):
        clock = street_clock(rt, s, row.street_id)
        done = list(row.reminders_done or [])
        events = followup_plan(clock, row)
        due_events = [e for e in events if e.kind not in done and e.at <= now]
        before, old_rung = row.next_reminder_at, row.rung
        done += [e.kind for e in due_events]
        rung = max([old_rung] + [RUNGS.index(e.kind) + 1 for e in due_events if e.kind in RUNGS])
        pending = [e.at for e in events if e.kind not in done]
        won = deadlines.save_followup_plan(
            s,
            followup_id=pk(row),
            before=before,
            values={"reminders_done": done, "rung": rung, "next_reminder_at": min(pending) if pending else None},
        )
        if not won:
            continue
        case = case_rows.get_case(s, row.case_id)
        if case is None:
            continue
        at = clock.quiet.defer(now, clock.calendar.tz)
        params = {
            "code": case.code,
            "due": row.due_at.astimezone(clock.calendar.tz).strftime("%m-%d %H:%M"),
            "due_at": row.due_at.isoformat(),  # the sender says it in words when near
        }
        room = index.org(rt).command_room(row.street_id) if row.street_id else None
        for event in due_events:
            result.reminders += 1
            result.kinds[f"followup_{event.kind}"] = result.kinds.get(f"followup_{event.kind}", 0) + 1
            if event.kind.startswith("fu_"):
                _to_unit(
                    rt,
                    s,
                    room.id if room else None,
                    "deadline.followup_share",
                    at,
                    case,
                    share=int(event.kind[3:]),
                    **params,
                )
                continue
            level = RUNGS.index(event.kind) + 1
            audit_log.record(
                s,
                action="followup.supervised",
                subject_type="followup",
                subject_id=row.id,
                data={"case_id": case.id, "rung": level},
                at=now,
            )
            _to_unit(rt, s, room.id if room else None, "deadline.followup_overdue", now, case, rung=level, **params)
            if level >= 2:
                _to_supervisors(s, case, level, "deadline.followup_overdue", at, params)
        result.cases += 1


def _to_supervisors(s: Session, case: Case, rung: int, key: str, at: datetime, params: dict[str, Any]) -> None:
    """Rung 2 goes to the street's supervisors, rung 3 to the district's."""
    street = orgs.street(s, case.street_id) if case.street_id else None
    district = orgs.district(s)
    scope = street.code if rung == 2 and street is not None else (district.code if district else "")
    for user in people.members_with_role(s, role=Role.SUPERVISOR, scope_code=scope):
        if user.can_message:
            outbox.enqueue(
                s,
                chat_id=user.telegram_id,
                kind="user_text",
                case_id=case.id,
                now=at,
                payload={"key": key, "params": {**params, "rung": rung}},
            )


# --- the sweep ----------------------------------------------------------------------------


def _worth_sending(due: list[Event]) -> list[Event]:
    """Of the reminders due at once, those worth a message (the others are marked done too).

    After downtime only the latest reminder of a case goes out, not 50 %, 80 % and 100 % in
    one second; and a rung of the ladder (督办) says the case is late itself, so a reminder
    due with it (the 100 % one falls at the due time, with rung 1) is not sent apart: the
    owner gets one message. Each rung due goes out (each tells other people)."""
    rungs = [e for e in due if e.kind in RUNGS]
    reminders = [e for e in due if e.kind not in RUNGS]
    if rungs:
        return rungs
    return reminders[-1:]


def sweep(rt: Runtime, *, limit: int = SWEEP_BATCH) -> SweepResult:
    """Send every reminder that is due, once. Safe to run from several processes."""
    now = rt.clock.now()
    result = SweepResult()
    with rt.db.session() as s:
        for case in deadlines.due_for_reminders(s, now=now, limit=limit):
            clock = street_clock(rt, s, case.street_id)
            done = list(case.reminders_done or [])
            events = plan(clock, case)
            due_events = [e for e in events if e.kind not in done and e.at <= now]
            for event in _worth_sending(due_events):
                _fire(rt, s, clock, case, event, now)
                result.reminders += 1
                result.kinds[event.kind] = result.kinds.get(event.kind, 0) + 1
            done += [e.kind for e in due_events]
            old_rung = case.rung  # read first: the compare-and-set below syncs the loaded row
            rung = max([old_rung] + [RUNGS.index(e.kind) + 1 for e in due_events if e.kind in RUNGS])
            pending = [e.at for e in events if e.kind not in done]
            won = deadlines.save_plan(
                s,
                case_id=pk(case),
                version=case.version,
                values={"reminders_done": done, "rung": rung, "next_reminder_at": min(pending) if pending else None},
            )
            if not won:  # someone moved the case meanwhile; their move re-planned it
                continue
            result.cases += 1
            if rung != old_rung:
                notify.refresh_cards(s, case_id=case.id, now=now)  # type: ignore[arg-type]  # shows the rung
            if old_rung < 1 <= rung:  # it just became overdue: the outside hears of it (issue 13)
                webhooks.case_event(rt, s, case, webhooks.OVERDUE, now)
        _sweep_followups(rt, s, now, limit, result)
    return result


def _send_at(clock: StreetClock, case: Case, now: datetime) -> datetime:
    """Urgent matters ignore quiet hours; the rest wait for the morning."""
    return now if case.urgent else clock.quiet.defer(now, clock.calendar.tz)


def _fire(rt: Runtime, s: Session, clock: StreetClock, case: Case, event: Event, now: datetime) -> None:
    at = _send_at(clock, case, now)
    due = case.due_at.astimezone(clock.calendar.tz).strftime("%m-%d %H:%M") if case.due_at else "—"
    params = {"code": case.code, "due": due}
    if case.due_at is not None:
        params["due_at"] = case.due_at.isoformat()  # the sender says it in words when near
    if event.kind not in RUNGS:  # a rung is audited (case.supervised), which logs it
        business_event(s, "case.reminded", case=case.code, case_id=case.id, kind=event.kind)
    if event.kind in CLAIM_KINDS:
        _to_unit(
            rt,
            s,
            case.unit_id,
            "deadline.claim_nudge",
            at,
            case,
            minutes=clock.claim_minutes * (1 if event.kind == "claim1" else 2),
            **params,
        )
        return
    if event.kind.startswith("owner_"):
        owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None
        if owner is not None and owner.can_message:
            last = event.kind == "owner_due"
            share = 100 if last else int(event.kind.split("_")[1])
            outbox.enqueue(
                s,
                chat_id=owner.telegram_id,
                kind="user_text",
                case_id=case.id,
                now=at,
                payload={
                    "key": "deadline.owner_due" if last else "deadline.owner_share",
                    "params": {**params, "share": share},
                },
            )
        return
    rung = RUNGS.index(event.kind) + 1
    audit_log.record(
        s,
        action="case.supervised",
        subject_type="case",
        subject_id=case.id,
        case_id=case.id,
        data={"rung": rung, "due_at": case.due_at.isoformat() if case.due_at else None},
        at=now,
    )
    if rung == 1:
        owner = people.get_user(s, case.owner_user_id) if case.owner_user_id else None
        if owner is not None and owner.can_message:
            outbox.enqueue(
                s,
                chat_id=owner.telegram_id,
                kind="user_text",
                case_id=case.id,
                now=at,
                payload={"key": "deadline.overdue_owner", "params": params},
            )
        _to_unit(rt, s, case.unit_id, "deadline.overdue_team", at, case, **params)
        # The command room hears of it at once, quiet hours or not: it answers for the numbers.
        room = index.org(rt).command_room(case.street_id) if case.street_id else None
        _to_unit(rt, s, room.id if room else None, "deadline.overdue_command", now, case, **params)
        return
    _to_supervisors(s, case, rung, "deadline.ladder", at, params)
    room = index.org(rt).command_room(case.street_id) if case.street_id else None
    _to_unit(rt, s, room.id if room else None, "deadline.ladder", at, case, rung=rung, **params)


def _to_unit(rt: Runtime, s: Session, unit_id: int | None, key: str, at: datetime, case: Case, **params: Any) -> None:
    chat_id = index.unit_group(rt, s, unit_id)
    if chat_id is not None:
        outbox.enqueue(
            s, chat_id=chat_id, kind="user_text", case_id=case.id, now=at, payload={"key": key, "params": params}
        )
