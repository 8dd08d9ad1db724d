"""The assessment figures (考核指标), defined once: docs/kpi.md is their prose.

Every figure is over the cases *received* (created) in the period within the scope, and
every duration is measured on the calendar the deadlines use (the street's working hours,
China's holidays and make-up days, the organisation's extra days).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.cases.cards import Names
from bot.cases.deadlines import StreetClock, measure_inputs, street_clock
from bot.desk.periods import Period
from bot.desk.scopes import Scope
from bot.org import index
from bot.org.index import Org
from bot.runtime import Runtime
from storage import desk as rows
from storage import desk_figures as kept
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
    handled: int = 0  # closed cases with a handling time
    handling_hours_total: float = 0.0
    p90_handling_hours: float | None = None  # of the handling times (set once they are all known)
    report_in_hours_total: float = 0.0

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
        return self.handling_hours_total / self.handled if self.handled else None

    @property
    def avg_report_in_hours(self) -> float | None:
        return self.report_in_hours_total / self.reported_in if self.reported_in else None


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it
    (storage/desk_figures.py `percentile_90` ranks the same way in SQL)."""
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


def _late_after(clock: StreetClock, start: datetime, urgent: bool) -> datetime:
    """The last moment a claim counted from `start` is within the claim limit: the limit in
    wall-clock time at least, and never later than the bound above."""
    limit = start + timedelta(minutes=clock.claim_minutes)
    if urgent:
        return limit
    return max(limit, min(_claim_deadline(clock, start, urgent), start + _SURELY_LATE))


def _in_time(clock: StreetClock, start: datetime, at: datetime, urgent: bool) -> bool:
    """Was `at` within the claim limit counted from `start`?"""
    if at - start <= timedelta(minutes=clock.claim_minutes):
        return True  # no calendar walk needed
    return at <= _late_after(clock, start, urgent)


@dataclass(frozen=True, slots=True)
class Department:
    """A case's whistles to one department."""

    unit_id: int
    whistles: int = 0
    reported_in: int = 0
    report_in_hours: float = 0.0


@dataclass(frozen=True, slots=True)
class Contribution:
    """One case's contribution to the figures: the rules of docs/kpi.md, applied once per case.

    Independent of when the figures are asked: the two figures that depend on it (a response
    not yet made, a case not yet finished) are kept as the moment from which they count
    (`response_due_after`, `overdue_after`). Stored per case (storage/desk_figures.py) and
    summed by SQL; `add` sums them in Python for the reference path."""

    received: int = 0
    dispatched: int = 0
    response_due: int = 0
    response_due_after: datetime | None = None
    claimed_in_time: int = 0
    closed: int = 0
    closed_on_time: int = 0
    overdue_at_closure: int = 0
    verified_first_time: int = 0
    reopened: int = 0
    overdue_now: int = 0
    overdue_after: datetime | None = None
    handling_hours: float | None = None
    ratable_closed: int = 0
    rated_closed: int = 0
    ratings: int = 0
    satisfied: int = 0
    whistles: int = 0
    reported_in: int = 0
    report_in_hours: float = 0.0
    departments: tuple[Department, ...] = ()


def derive(facts: _CaseFacts, clock: StreetClock) -> Contribution:
    """One case's contribution to a set of figures (the rules of docs/kpi.md)."""
    c = facts.row
    departments: dict[int, Department] = {}
    whistles = reported_in = 0
    report_in_hours = 0.0
    for unit, at, reported in facts.whistles:
        d = departments.get(unit, Department(unit))
        hours = _hours(clock, at, reported) if reported is not None else 0.0
        departments[unit] = Department(
            unit, d.whistles + 1, d.reported_in + (reported is not None), d.report_in_hours + hours
        )
        whistles += 1
        reported_in += reported is not None
        report_in_hours += hours
    if c.state == CaseState.DUPLICATE:  # folded into another case: counted there
        return Contribution(departments=tuple(Department(u) for u in sorted(departments)))
    out: dict[str, Any] = {"received": 1}
    dispatched = facts.first_dispatch or c.dispatched_at
    if dispatched is not None:
        out["dispatched"] = 1
        if facts.first_claim is not None:
            out["response_due"] = 1
            out["claimed_in_time"] = int(_in_time(clock, dispatched, facts.first_claim, c.urgent))
        else:  # counts as not responded once the claim limit has passed
            out["response_due_after"] = _late_after(clock, dispatched, c.urgent)
    if c.state == CaseState.CLOSED:
        on_time = c.due_at is None or (c.resolved_at is not None and c.resolved_at <= c.due_at)
        out.update(closed=1, closed_on_time=int(on_time), overdue_at_closure=int(not on_time),
                   verified_first_time=int(not facts.not_fixed))  # fmt: skip
        if dispatched is not None and c.resolved_at is not None:
            out["handling_hours"] = _hours(clock, dispatched, c.resolved_at)
        if facts.requested:
            out.update(ratable_closed=1, rated_closed=int(bool(facts.levels)))
    elif c.state not in CaseState.FINAL and c.due_at is not None:
        if c.state == CaseState.RESOLVED:  # waiting on verification: its clock stopped
            out["overdue_now"] = int(c.resolved_at is not None and c.resolved_at > c.due_at)
        else:
            out["overdue_after"] = c.due_at
    return Contribution(
        **out,
        reopened=int(facts.not_fixed or facts.reopened),
        ratings=len(facts.levels),
        satisfied=sum(1 for lv in facts.levels if lv >= SATISFIED_MIN_LEVEL),
        whistles=whistles,
        reported_in=reported_in,
        report_in_hours=report_in_hours,
        departments=tuple(departments[u] for u in sorted(departments)),
    )


def add(fig: Figures, one: Contribution, now: datetime) -> None:
    """Add one case's figures as asked at `now` (storage/desk_figures.py `sums` does it in SQL)."""
    fig.received += one.received
    fig.dispatched += one.dispatched
    fig.response_due += one.response_due + (one.response_due_after is not None and one.response_due_after < now)
    fig.claimed_in_time += one.claimed_in_time
    fig.closed += one.closed
    fig.closed_on_time += one.closed_on_time
    fig.overdue_at_closure += one.overdue_at_closure
    fig.verified_first_time += one.verified_first_time
    fig.reopened += one.reopened
    fig.overdue_now += one.overdue_now + (one.overdue_after is not None and one.overdue_after < now)
    if one.handling_hours is not None:
        fig.handled += 1
        fig.handling_hours_total += one.handling_hours
    fig.ratable_closed += one.ratable_closed
    fig.rated_closed += one.rated_closed
    fig.ratings += one.ratings
    fig.satisfied += one.satisfied
    fig.whistles += one.whistles
    fig.reported_in += one.reported_in
    fig.report_in_hours_total += one.report_in_hours


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


def _names(known: Org, s: Session, breakdown: str, key: int | None) -> Names:
    if key is None:
        return Names("（无）", "(none)")
    row: object | None
    if breakdown == "street":
        row = known.street(key)
    elif breakdown in ("team", "department"):
        row = known.unit(key)
    elif breakdown == "grid":
        row = known.grid(key)
    elif breakdown == "category":
        row = known.category(key)
    else:
        user = people.get_user(s, key)
        return Names(user.display_name, user.display_name) if user else Names(str(key), str(key))
    if row is None:
        return Names(str(key), str(key))
    return Names(getattr(row, "name_zh", str(key)), getattr(row, "name_en", str(key)))


def compute(rt: Runtime, scope: Scope, period: Period, breakdown: str | None = None, *, fresh: bool = True) -> Report:
    """The figures of a scope over the cases received in a period, and by a breakdown: sums
    over the figures kept per case (`refresh`, brought up to date first), grouped by the database.
    Nothing changed since the last catch-up: one read. Else the catch-up's own units of work
    first (a write; the sums are not taken under its lock)."""
    if breakdown is not None and breakdown not in BREAKDOWNS:
        raise ValueError(breakdown)
    with rt.db.read() as s:
        # False: the caller caught up, and holds a write transaction it could not wait for.
        if not fresh or not kept.any_stale(s):
            return _sums(rt, s, scope, period, breakdown)
    _catch_up(rt)
    with rt.db.read() as s:
        return _sums(rt, s, scope, period, breakdown)


def _sums(rt: Runtime, s: Session, scope: Scope, period: Period, breakdown: str | None) -> Report:
    now = rt.clock.now()
    f = case_filter(scope, period)
    sums = kept.sums(s, f, now, None)
    total = Figures(**sums[0][1]) if sums else Figures()
    total.p90_handling_hours = kept.percentile_90(s, f, None, {None: total.handled}).get(None)
    named: tuple[Group, ...] = ()
    if breakdown is not None:
        by = {key: Figures(**values) for key, values in kept.sums(s, f, now, breakdown)}
        p90 = kept.percentile_90(s, f, breakdown, {key: fig.handled for key, fig in by.items()})
        for key, fig in by.items():
            fig.p90_handling_hours = p90.get(key)
        known = index.org(rt)
        named = tuple(Group(key, _names(known, s, breakdown, key), fig) for key, fig in by.items())
    ordered = tuple(sorted(named, key=lambda g: (-g.figures.received, g.names.zh)))
    return Report(scope, period, total, breakdown, ordered, now)


def reference(rt: Runtime, scope: Scope, period: Period, breakdown: str | None = None) -> Report:
    """The same figures the slow way, walking every case and its timeline: what `compute`
    is checked against in the tests (tests/test_desk_figures_kept.py)."""
    if breakdown is not None and breakdown not in BREAKDOWNS:
        raise ValueError(breakdown)
    now = rt.clock.now()
    total = Figures()
    groups: dict[int | None, Figures] = defaultdict(Figures)
    hours: dict[int | None, list[float]] = defaultdict(list)
    all_hours: list[float] = []
    with rt.db.read() as s:
        keys = _keys(breakdown) if breakdown else None
        for x in _facts(s, case_filter(scope, period)):
            one = derive(x, street_clock(rt, s, x.row.street_id))
            add(total, one, now)
            if one.handling_hours is not None:
                all_hours.append(one.handling_hours)
            if keys is not None:
                for key in keys(x):
                    add(groups[key], one, now)
                    if one.handling_hours is not None:
                        hours[key].append(one.handling_hours)
        total.p90_handling_hours = percentile(all_hours, 0.9)
        for key, g in groups.items():
            g.p90_handling_hours = percentile(hours[key], 0.9)
        known = index.org(rt)
        named = tuple(Group(k, _names(known, s, breakdown, k), g) for k, g in groups.items()) if breakdown else ()
    ordered = tuple(sorted(named, key=lambda g: (-g.figures.received, g.names.zh)))
    return Report(scope, period, total, breakdown, ordered, now)


# --- the figures kept per case ------------------------------------------------------------------


def _rows(rt: Runtime, s: Session, f: rows.CaseFilter) -> tuple[list[int], list[dict[str, Any]], list[dict[str, Any]]]:
    """The cases of a filter with their rows for case_figures and case_department_figures."""
    ids: list[int] = []
    cases: list[dict[str, Any]] = []
    departments: list[dict[str, Any]] = []
    for x in _facts(s, f):
        c = x.row
        one = derive(x, street_clock(rt, s, c.street_id))
        ids.append(c.id)
        values = {k: getattr(one, k) for k in _STORED}
        cases.append({"case_id": c.id, "created_at": c.created_at, "street_id": c.street_id, "unit_id": c.unit_id,
                      "grid_id": c.grid_id, "category_id": c.category_id, "owner_user_id": c.owner_user_id,
                      **values})  # fmt: skip
        departments += [
            {"case_id": c.id, "unit_id": d.unit_id, "whistles": d.whistles, "reported_in": d.reported_in,
             "report_in_hours": d.report_in_hours}
            for d in one.departments
        ]  # fmt: skip
    return ids, cases, departments


_STORED = tuple(f.name for f in fields(Contribution) if f.name != "departments")


def refresh(rt: Runtime, s: Session, case_ids: list[int]) -> None:
    """Rewrite the figures kept for these cases from what the transaction now holds."""
    if not case_ids:
        return
    kept.lock_cases(s, case_ids)
    for i in range(0, len(case_ids), REFRESH_BATCH):
        batch = case_ids[i : i + REFRESH_BATCH]
        _ids, cases, departments = _rows(rt, s, rows.CaseFilter(None, None, case_ids=tuple(batch)))
        kept.replace(s, batch, cases, departments)


REFRESH_BATCH = 500  # cases per IN list


CATCH_UP_BATCH = 2000  # marks per unit of work


def catch_up(rt: Runtime) -> int:
    """Derive again the figures of the cases marked stale since the last time (the database's
    triggers mark every change: storage/desk_figures.py), a batch per unit of work; how many
    cases. The desk calls it before it sums, and a job every minute, so a change costs the
    update that makes it nothing and the figures are never older than the question."""
    with rt.db.read() as s:
        if not kept.any_stale(s):
            return 0
    return _catch_up(rt)


def _catch_up(rt: Runtime) -> int:
    done = 0
    while True:
        with rt.db.session() as s:
            marks = kept.stale(s, CATCH_UP_BATCH)
            case_ids = sorted({case_id for _mark, case_id in marks})
            refresh(rt, s, case_ids)
            kept.unmark(s, [mark for mark, _case in marks])
        done += len(case_ids)
        if len(marks) < CATCH_UP_BATCH:
            return done


def rebuild(rt: Runtime, *, slice_size: int = 20_000, progress: Callable[[int], None] | None = None) -> int:
    """Derive every case's figures afresh (a database from before migration 0008, or after the
    organisation's calendar or claim limit changed). One transaction; returns the cases done."""
    done = 0
    with rt.db.session() as s:
        kept.clear(s)
        bounds = kept.case_id_bounds(s)
        if bounds is None:
            return 0
        for low in range(bounds[0], bounds[1] + 1, slice_size):
            f = rows.CaseFilter(None, None, id_range=(low, low + slice_size - 1))
            ids, cases, departments = _rows(rt, s, f)
            kept.insert_rows(s, cases, departments)
            done += len(ids)
            if progress is not None:
                progress(done)
    return done


def measures(rt: Runtime, s: Session) -> dict[int | None, str]:
    """What each street's figures were measured with (None: the district's own defaults, which
    cases without a street use); compare before and after an organisation import."""
    return {None: measure_inputs(rt, s, None)} | {
        st.id: measure_inputs(rt, s, st.id) for st in orgs.active_streets(s) if st.id is not None
    }


def after_import(rt: Runtime, before: dict[int | None, str], *, progress: Callable[[int], None] | None = None) -> int:
    """Derive again the figures of the streets whose calendar or claim limit an import changed
    (all of them when the district's changed); how many cases."""
    with rt.db.read() as s:
        if kept.never_filled(s):  # the first start's fill derives every case
            return 0
        now = measures(rt, s)
    changed = [sid for sid, inputs in before.items() if now.get(sid, inputs) != inputs]
    if not changed:
        return 0
    if None in changed:
        return rebuild(rt, progress=progress)
    return rederive_streets(rt, [sid for sid in changed if sid is not None], progress=progress)


def rederive_streets(
    rt: Runtime, street_ids: list[int], *, slice_size: int = 20_000, progress: Callable[[int], None] | None = None
) -> int:
    """Derive again the figures of these streets' cases, a slice of ids per unit of work."""
    with rt.db.read() as s:
        bounds = kept.case_id_bounds(s)
    if bounds is None or not street_ids:
        return 0
    done = 0
    for low in range(bounds[0], bounds[1] + 1, slice_size):
        with rt.db.session() as s:
            ids = kept.case_ids_of_streets(s, street_ids, (low, low + slice_size - 1))
            refresh(rt, s, ids)
        done += len(ids)
        if progress is not None and ids:
            progress(done)
    return done
