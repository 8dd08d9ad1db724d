"""The assessment figures against a hand-computed month (tests/desk_example.py), periods
in the words users type, and scopes with who may see them."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.clock import ManualClock
from bot.desk import figures, periods, scopes
from bot.errors import NotAllowed
from bot.people.roles import MembershipView, Person
from bot.runtime import Runtime
from storage.models import Role
from tests import desk_example as ex

SH = ZoneInfo("Asia/Shanghai")


def person(*memberships: tuple[str, str, str], admin: bool = False) -> Person:
    views = tuple(MembershipView(role, kind, code, code, code) for role, kind, code in memberships)
    return Person(user_id=1, telegram_id=1, name="x", language="zh_CN", is_admin=admin, memberships=views)


DISPATCHER_QB = person((Role.DISPATCHER, "street", "330102001"))


@pytest.fixture
def example(rt: Runtime, clock: ManualClock) -> dict[str, int]:
    ids = ex.build(rt.db)
    clock.set(ex.NOW)
    return ids


def qb_month(rt: Runtime, breakdown: str | None = None) -> figures.Report:
    scope = scopes.resolve(rt, DISPATCHER_QB, None)
    period = periods.parse("2026-09", rt.clock.now(), SH)
    return figures.compute(rt, scope, period, breakdown)


def test_figures_match_the_hand_computed_month(rt: Runtime, example: dict[str, int]) -> None:
    f = qb_month(rt).total
    assert f.received == 5  # A B C D F (E is a duplicate, G is October's)
    assert f.dispatched == 4
    assert (f.claimed_in_time, f.response_due) == (2, 4)  # A and C; B late, F never
    assert f.response_rate == 0.5
    assert f.closed == 2 and f.closure_rate == pytest.approx(0.4)
    assert f.closed_on_time == 1 and f.on_time_rate == 0.5
    assert f.overdue_at_closure == 1
    assert f.verified_first_time == 1
    assert f.reopened == 1
    assert f.overdue_now == 2  # C and F
    assert (f.ratings, f.satisfied, f.satisfaction_rate) == (2, 1, 0.5)
    assert (f.rated_closed, f.ratable_closed, f.participation_rate) == (2, 2, 1.0)
    assert (f.handled, f.handling_hours_total) == (2, pytest.approx(9.0))
    assert f.avg_handling_hours == pytest.approx(4.5)
    assert f.p90_handling_hours == pytest.approx(5.5)
    assert (f.whistles, f.reported_in) == (1, 1)
    assert f.avg_report_in_hours == pytest.approx(4.5)


def test_breakdowns(rt: Runtime, example: dict[str, int]) -> None:
    by_team = {g.names.zh: g.figures for g in qb_month(rt, "team").groups}
    zf = next(v for k, v in by_team.items() if "执法" in k)
    assert zf.received == 3 and zf.closed == 2  # A B F
    assert sum(g.received for g in by_team.values()) == 5
    by_grid = qb_month(rt, "grid").groups
    assert sorted(g.figures.received for g in by_grid) == [1, 4]
    by_person = {g.names.zh: g.figures.received for g in qb_month(rt, "person").groups}
    assert by_person["王五"] == 3
    by_dept = qb_month(rt, "department").groups
    assert [(g.figures.whistles, g.figures.received) for g in by_dept] == [(1, 1)]
    by_cat = {g.figures.received for g in qb_month(rt, "category").groups}
    assert by_cat == {4, 1}


def test_scope_of_a_department_and_a_team(rt: Runtime, example: dict[str, int]) -> None:
    admin = person(admin=True)
    period = periods.parse("2026-09", rt.clock.now(), SH)
    housing = scopes.resolve(rt, admin, "HOUSING")
    team = scopes.resolve(rt, admin, "QB-ZF")
    district = scopes.resolve(rt, admin, None)
    assert figures.compute(rt, housing, period).total.received == 1
    assert figures.compute(rt, team, period).total.received == 3
    assert district.kind == "district"
    assert figures.compute(rt, district, period).total.received == 5


def test_scope_rights(rt: Runtime) -> None:
    staff = person((Role.STAFF, "unit", "QB-ZF"))
    assert scopes.resolve(rt, staff, None).code == "QB-ZF"
    with pytest.raises(scopes.ScopeNotVisible):
        scopes.resolve(rt, staff, "330102002")  # another street
    with pytest.raises(scopes.ScopeNotVisible):
        scopes.resolve(rt, staff, "QB-ZZ")  # another team
    with pytest.raises(scopes.ScopeNotVisible):
        scopes.resolve(rt, DISPATCHER_QB, "HB-ZF")
    with pytest.raises(scopes.ScopeNotVisible):
        scopes.resolve(rt, DISPATCHER_QB, "HOUSING")  # departments: district level
    assert scopes.resolve(rt, DISPATCHER_QB, "33010200100101").kind == "grid"
    assert scopes.resolve(rt, DISPATCHER_QB, "QB-CMD").street_ids is not None
    with pytest.raises(scopes.UnknownDeskScope):
        scopes.resolve(rt, DISPATCHER_QB, "NOPE")
    with pytest.raises(NotAllowed):
        scopes.resolve(rt, person(), None)  # a resident
    with pytest.raises(NotAllowed):
        scopes.resolve(rt, person((Role.WORKER, "grid", "33010200100101")), None)


NOW = datetime(2026, 11, 18, 9, 0, tzinfo=SH)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("7d", date(2026, 11, 12), date(2026, 11, 18)),
        ("30d", date(2026, 10, 20), date(2026, 11, 18)),
        ("本月", date(2026, 11, 1), date(2026, 11, 30)),
        ("this-month", date(2026, 11, 1), date(2026, 11, 30)),
        ("上月", date(2026, 10, 1), date(2026, 10, 31)),
        ("last-month", date(2026, 10, 1), date(2026, 10, 31)),
        ("2026-11", date(2026, 11, 1), date(2026, 11, 30)),
        ("2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2026-11-01..2026-11-15", date(2026, 11, 1), date(2026, 11, 15)),
        ("2026-11-05", date(2026, 11, 5), date(2026, 11, 5)),
        ("today", date(2026, 11, 18), date(2026, 11, 18)),
        ("本周", date(2026, 11, 16), date(2026, 11, 22)),
        ("上周", date(2026, 11, 9), date(2026, 11, 15)),
        ("本季度", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_periods(text: str, first: date, last: date) -> None:
    p = periods.parse(text, NOW, SH)
    assert (p.first, p.last) == (first, last)
    assert p.start == datetime(first.year, first.month, first.day, tzinfo=SH)
    assert (p.end - p.start).days == (last - first).days + 1


@pytest.mark.parametrize("text", ["2026-11-15..2026-11-01", "2026-13", "yesterdays", "2026-02-30", "0d", "abc..def"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(periods.BadPeriod):
        periods.parse(text, NOW, SH)


def test_percentile() -> None:
    assert figures.percentile([], 0.9) is None
    assert figures.percentile([1.0], 0.9) == 1.0
    assert figures.percentile([float(x) for x in range(1, 11)], 0.9) == 9.0


def test_figures_with_nothing_changed_are_one_read_and_ask_nothing_of_the_organisation(
    rt: Runtime, example: dict[str, int]
) -> None:
    import re

    from tests.flows import statements_of

    period = periods.parse("2026-09", rt.clock.now(), SH)
    first = figures.compute(rt, scopes.resolve(rt, DISPATCHER_QB, None), period, "team")  # catches up
    with statements_of(rt.db) as seen:
        scope = scopes.resolve(rt, DISPATCHER_QB, None)
        again = figures.compute(rt, scope, period, "team")
    ours = [sql for sql in seen if not sql.startswith("BEGIN")]
    assert len(ours) == 5  # anything stale? then the sums: the total, its p90, by team, theirs
    assert not [sql for sql in ours if re.search(r"\bFROM (district|street|unit|grid|category)\b", sql)]
    assert again == first and again.groups
    assert all(g.names.zh != str(g.key) for g in again.groups)  # the teams' names, from memory
