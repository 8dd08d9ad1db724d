"""The assessment figures (考核指标), defined once: docs/kpi.md is their prose.

Every figure is over the cases *received* (created) in the period within the scope, and
every duration is measured on the calendar the deadlines use (the street's working hours,
China's holidays and make-up days, the organisation's extra days).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.cases.cards import Names
from bot.cases.deadlines import StreetClock, street_clock
from bot.desk.periods import Period
from bot.desk.scopes import Scope
from bot.runtime import Runtime
from storage import desk as rows
from storage import orgs, people
from storage.models import CaseState

SATISFIED_MIN_LEVEL = 3  # the top three of five levels count as satisfied
BREAKDOWNS = ("street", "team", "department", "grid", "person", "category")


@dataclass
class Figures:
    received: int = 0
    dispatched: int = 0
    response_due: int = 0  # dispatched cases whose claim limit has passed or that were claimed
    claimed_in_time: int = 0
    closed: int = 0
    closed_on_time: int = 0
    verified_first_time: int = 0
    reopened: int = 0
    overdue_now: int = 0
    overdue_at_closure: int = 0
    ratings: int = 0
    satisfied: int = 0
    ratable_closed: int = 0  # closed cases somebody could rate
    rated_closed: int = 0
    whistles: int = 0
    reported_in: int = 0
    handling_hours: list[float] = field(default_factory=list)
    report_in_hours: list[float] = field(default_factory=list)

    # --- rates (None when the denominator is zero) ---
    @property
    def response_rate(self) -> float | None:
        return _ratio(self.claimed_in_time, self.response_due)

    @property
    def closure_rate(self) -> float | None:
        return _ratio(self.closed, self.received)

    @property
    def on_time_rate(self) -> float | None:
        return _ratio(self.closed_on_time, self.closed)

    @property
    def satisfaction_rate(self) -> float | None:
        return _ratio(self.satisfied, self.ratings)

    @property
    def participation_rate(self) -> float | None:
        return _ratio(self.rated_closed, self.ratable_closed)

    @property
    def avg_handling_hours(self) -> float | None:
        return sum(self.handling_hours) / len(self.handling_hours) if self.handling_hours else None

    @property
    def p90_handling_hours(self) -> float | None:
        return percentile(self.handling_hours, 0.9)

    @property
    def avg_report_in_hours(self) -> float | None:
        return sum(self.report_in_hours) / len(self.report_in_hours) if self.report_in_hours else None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class Group:
    key: int | None
    names: Names
    figures: Figures


@dataclass(frozen=True)
class Report:
    scope: Scope
    period: Period
    total: Figures
    breakdown: str | None
    groups: tuple[Group, ...]
    at: datetime


@dataclass(slots=True)
class _CaseFacts:
    row: rows.CaseRow
    first_dispatch: datetime | None = None
    first_claim: datetime | None = None
    not_fixed: bool = False
    reopened: bool = False
    levels: list[int] = field(default_factory=list)
    requested: bool = False
    whistles: list[tuple[int, datetime, datetime | None]] = field(default_factory=list)


def _hours(clock: StreetClock, a: datetime, b: datetime) -> float:
    return clock.calendar.working_seconds_between(a, b) / 3600


def _claim_deadline(clock: StreetClock, start: datetime, urgent: bool) -> datetime:
    seconds = clock.claim_minutes * 60
    return start + timedelta(seconds=seconds) if urgent else clock.calendar.add_working_time(start, seconds)


# Working time never runs faster than the wall clock, and 20 calendar days always hold more
# working time than any claim limit (the longest run of days off is 8 days): beyond these
# bounds the answer needs no calendar walk.
_SURELY_LATE = timedelta(days=20)


def _in_time(clock: StreetClock, start: datetime, at: datetime, urgent: bool) -> bool:
    """Was `at` within the claim limit counted from `start`?"""
    wall = at - start
    limit = timedelta(minutes=clock.claim_minutes)
    if wall <= limit:
        return True
    if urgent or wall > _SURELY_LATE:
        return False
    return at <= _claim_deadline(clock, start, urgent)


def add_case(fig: Figures, facts: _CaseFacts, clock: StreetClock, now: datetime) -> None:
    """One case's contribution to a set of figures (the rules of docs/kpi.md)."""
    c = facts.row
    if c.state == CaseState.DUPLICATE:
        return  # folded into another case: counted there
    fig.received += 1
    dispatched = facts.first_dispatch or c.dispatched_at
    if dispatched is not None:
        fig.dispatched += 1
        if facts.first_claim is not None:
            fig.response_due += 1
            fig.claimed_in_time += _in_time(clock, dispatched, facts.first_claim, c.urgent)
        elif not _in_time(clock, dispatched, now, c.urgent):
            fig.response_due += 1
    closed = c.state == CaseState.CLOSED
    if closed:
        fig.closed += 1
        on_time = c.due_at is None or (c.resolved_at is not None and c.resolved_at <= c.due_at)
        fig.closed_on_time += on_time
        fig.overdue_at_closure += not on_time
        fig.verified_first_time += not facts.not_fixed
        if dispatched is not None and c.resolved_at is not None:
            fig.handling_hours.append(_hours(clock, dispatched, c.resolved_at))
        if facts.requested:
            fig.ratable_closed += 1
            fig.rated_closed += bool(facts.levels)
    elif c.state not in CaseState.FINAL and c.due_at is not None:
        if c.state == CaseState.RESOLVED:
            fig.overdue_now += c.resolved_at is not None and c.resolved_at > c.due_at
        else:
            fig.overdue_now += now > c.due_at
    fig.reopened += facts.not_fixed or facts.reopened
    fig.ratings += len(facts.levels)
    fig.satisfied += sum(1 for lv in facts.levels if lv >= SATISFIED_MIN_LEVEL)
    for _unit, at, reported in facts.whistles:
        fig.whistles += 1
        if reported is not None:
            fig.reported_in += 1
            fig.report_in_hours.append(_hours(clock, at, reported))


def _facts(s: Session, f: rows.CaseFilter) -> Iterator[_CaseFacts]:
    """Each case with what the figures need of it, streamed: the cases and their events are
    read in case order side by side (a merge), so memory does not grow with the period."""
    levels: dict[int, list[int]] = defaultdict(list)
    for case_id, level in rows.rating_levels(s, f):
        levels[case_id].append(level)
    requested = rows.cases_with_requests(s, f)
    whistled: dict[int, list[tuple[int, datetime, datetime | None]]] = defaultdict(list)
    for case_id, unit_id, at, reported in rows.whistles(s, f):
        whistled[case_id].append((unit_id, at, reported))
    events = rows.iter_events_by_case(s, f)
    pending = next(events, None)
    for row in rows.iter_cases(s, f):
        x = _CaseFacts(row, levels=levels.get(row.id, []), requested=row.id in requested,
                       whistles=whistled.get(row.id, []))  # fmt: skip
        while pending is not None and pending[0] < row.id:
            pending = next(events, None)
        while pending is not None and pending[0] == row.id:
            _, action, at = pending
            if action == "case.dispatched":
                if x.first_dispatch is None:
                    x.first_dispatch = at
            elif action in ("case.claimed", "case.reassigned"):
                if x.first_claim is None and x.first_dispatch is not None:
                    x.first_claim = at
            elif action == "case.not_fixed":
                x.not_fixed = True
            elif action == "case.reopened":
                x.reopened = True
            pending = next(events, None)
        yield x


def case_filter(scope: Scope, period: Period) -> rows.CaseFilter:
    return rows.CaseFilter(
        start=period.start,
        end=period.end,
        street_ids=scope.street_ids,
        unit_id=scope.unit_id,
        department_id=scope.department_id,
        grid_id=scope.grid_id,
    )


def _keys(breakdown: str) -> Callable[[_CaseFacts], Iterable[int | None]]:
    if breakdown == "street":
        return lambda x: (x.row.street_id,)
    if breakdown == "team":
        return lambda x: (x.row.unit_id,)
    if breakdown == "grid":
        return lambda x: (x.row.grid_id,)
    if breakdown == "person":
        return lambda x: (x.row.owner_user_id,)
    if breakdown == "category":
        return lambda x: (x.row.category_id,)
    if breakdown == "department":
        return lambda x: sorted({u for u, _, _ in x.whistles})
    raise ValueError(breakdown)


def _names(s: Session, breakdown: str, key: int | None) -> Names:
    if key is None:
        return Names("（无）", "(none)")
    row: object | None
    if breakdown == "street":
        row = orgs.street(s, key)
    elif breakdown in ("team", "department"):
        row = orgs.unit(s, key)
    elif breakdown == "grid":
        row = orgs.grid(s, key)
    elif breakdown == "category":
        row = orgs.category(s, key)
    else:
        user = people.get_user(s, key)
        return Names(user.display_name, user.display_name) if user else Names(str(key), str(key))
    if row is None:
        return Names(str(key), str(key))
    return Names(getattr(row, "name_zh", str(key)), getattr(row, "name_en", str(key)))


def compute(rt: Runtime, scope: Scope, period: Period, breakdown: str | None = None) -> Report:
    """The figures of a scope over the cases received in a period, and by a breakdown."""
    if breakdown is not None and breakdown not in BREAKDOWNS:
        raise ValueError(breakdown)
    now = rt.clock.now()
    total = Figures()
    groups: dict[int | None, Figures] = defaultdict(Figures)
    with rt.db.read() as s:
        keys = _keys(breakdown) if breakdown else None
        for x in _facts(s, case_filter(scope, period)):
            clock = street_clock(rt, s, x.row.street_id)
            add_case(total, x, clock, now)
            if keys is not None:
                for key in keys(x):
                    add_case(groups[key], x, clock, now)
        named = tuple(Group(k, _names(s, breakdown, k), g) for k, g in groups.items()) if breakdown else ()
    ordered = tuple(sorted(named, key=lambda g: (-g.figures.received, g.names.zh)))
    return Report(scope, period, total, breakdown, ordered, now)
