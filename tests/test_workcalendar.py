"""Deadline arithmetic on China's working calendar (bot/workcalendar.py)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from bot.org import workcalendar
from bot.org.workcalendar import QuietHours, WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
UTC = UTC
CAL = WorkCalendar()


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SH)


def utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


# Dates checked against chinese_calendar 1.11 (see test_library_facts_used_below).
# 2026 Spring Festival: holiday Sun 15 Feb - Mon 23 Feb; make-up working days Sat 14 Feb
# and Sat 28 Feb.
SPRING_EVE = date(2026, 2, 14)  # Saturday, 调休: last working day before the holiday
SPRING_BACK = date(2026, 2, 24)  # Tuesday, first working day after it
MAKEUP_SAT_2026 = date(2026, 2, 28)


def test_library_facts_used_below() -> None:
    assert SPRING_EVE.weekday() == 5 and chinese_calendar.is_workday(SPRING_EVE)
    for n in range(15, 24):
        assert chinese_calendar.is_holiday(date(2026, 2, n)), n
    assert chinese_calendar.get_holiday_detail(date(2026, 2, 17)) == (True, "Spring Festival")
    assert SPRING_BACK.weekday() == 1 and chinese_calendar.is_workday(SPRING_BACK)
    assert MAKEUP_SAT_2026.weekday() == 5 and chinese_calendar.is_workday(MAKEUP_SAT_2026)
    # The library knows which weekend days are make-up working days.
    weekend_workdays = [
        d for d in chinese_calendar.get_workdays(date(2026, 1, 1), date(2026, 12, 31)) if d.weekday() >= 5
    ]
    assert MAKEUP_SAT_2026 in weekend_workdays and SPRING_EVE in weekend_workdays


# ------------------------------------------------------------------ basics


def test_defaults() -> None:
    assert CAL.tz == SH
    assert CAL.periods == ((time(8, 30), time(12)), (time(14), time(18)))
    assert CAL.working_seconds_per_day == 7.5 * 3600
    assert CAL.extra_off == frozenset() and CAL.extra_on == frozenset()


def test_results_are_utc() -> None:
    due = CAL.add_working_hours(sh(2026, 11, 23, 9), 1)
    assert due.tzinfo == UTC
    assert due == sh(2026, 11, 23, 10)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.add_working_hours(datetime(2026, 11, 23, 9), 1)


def test_utc_input_is_converted_to_the_calendar_zone() -> None:
    # 01:00 UTC = 09:00 Shanghai, Monday 23 Nov 2026.
    start = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    assert CAL.add_working_hours(start, 2) == sh(2026, 11, 23, 11)


# ------------------------------------------------------------------ adding working time


def test_within_a_period() -> None:
    assert CAL.add_working_hours(sh(2026, 11, 23, 9), 2) == sh(2026, 11, 23, 11)


def test_across_the_lunch_break() -> None:
    assert CAL.add_working_hours(sh(2026, 11, 23, 11), 2) == sh(2026, 11, 23, 15)


def test_start_during_lunch_begins_at_14() -> None:
    assert CAL.add_working_hours(sh(2026, 11, 23, 12, 30), 1) == sh(2026, 11, 23, 15)


def test_across_a_night() -> None:
    # Tue 17:00 + 2 working hours: 1 h until 18:00, then 1 h from Wed 08:30.
    assert CAL.add_working_hours(sh(2026, 11, 24, 17), 2) == sh(2026, 11, 25, 9, 30)


def test_start_at_night_begins_next_morning() -> None:
    assert CAL.add_working_hours(sh(2026, 11, 24, 23), 1) == sh(2026, 11, 25, 9, 30)
    assert CAL.add_working_hours(sh(2026, 11, 25, 6), 1) == sh(2026, 11, 25, 9, 30)


def test_across_a_weekend() -> None:
    # Fri 27 Nov 2026 16:00 + 4 h: 2 h Friday, 2 h Monday 30 Nov (08:30-10:30).
    assert date(2026, 11, 27).weekday() == 4
    assert CAL.add_working_hours(sh(2026, 11, 27, 16), 4) == sh(2026, 11, 30, 10, 30)


def test_running_out_at_the_end_of_a_period_stays_there() -> None:
    assert CAL.add_working_hours(sh(2026, 11, 27, 16), 2) == sh(2026, 11, 27, 18)
    assert CAL.add_working_hours(sh(2026, 11, 23, 10), 2) == sh(2026, 11, 23, 12)


def test_zero_time_is_the_next_working_moment() -> None:
    assert CAL.add_working_time(sh(2026, 11, 23, 9), 0) == sh(2026, 11, 23, 9)
    assert CAL.add_working_time(sh(2026, 11, 28, 9), 0) == sh(2026, 11, 30, 8, 30)


def test_negative_time_is_refused() -> None:
    with pytest.raises(ValueError):
        CAL.add_working_time(sh(2026, 11, 23, 9), -1)


def test_across_the_2026_spring_festival() -> None:
    # Arrives on the last working day before the holiday (a make-up Saturday) at 17:00.
    start = datetime.combine(SPRING_EVE, time(17), SH)
    assert CAL.add_working_hours(start, 2) == datetime.combine(SPRING_BACK, time(9, 30), SH)
    # One working day from Friday 13 Feb 10:00: Saturday 14 Feb 10:00 (调休).
    assert CAL.add_working_days(sh(2026, 2, 13, 10), 1) == sh(2026, 2, 14, 10)
    # Two: the holiday is skipped entirely.
    assert CAL.add_working_days(sh(2026, 2, 13, 10), 2) == sh(2026, 2, 24, 10)
    # Starting inside the holiday.
    assert CAL.add_working_hours(sh(2026, 2, 18, 10), 1) == sh(2026, 2, 24, 9, 30)


def test_make_up_saturday_is_a_working_day() -> None:
    assert MAKEUP_SAT_2026.weekday() == 5
    assert CAL.is_working_day(MAKEUP_SAT_2026)
    # Fri 27 Feb 2026 17:00 + 2 h -> Saturday 28 Feb 09:30, not Monday.
    assert CAL.add_working_hours(sh(2026, 2, 27, 17), 2) == sh(2026, 2, 28, 9, 30)
    # A make-up day in 2025 too (National Day: Sunday 28 Sep and Saturday 11 Oct).
    assert chinese_calendar.is_workday(date(2025, 10, 11)) and date(2025, 10, 11).weekday() == 5
    assert CAL.is_working_day(date(2025, 10, 11))
    assert CAL.add_working_hours(sh(2025, 10, 10, 17), 2) == sh(2025, 10, 11, 9, 30)


def test_ordinary_weekend_and_holiday_are_not_working_days() -> None:
    assert not CAL.is_working_day(date(2026, 11, 28))  # Saturday
    assert not CAL.is_working_day(date(2026, 11, 29))  # Sunday
    assert not CAL.is_working_day(date(2026, 10, 1))  # National Day
    assert CAL.is_working_day(date(2026, 11, 30))  # Monday


def test_five_working_days() -> None:
    # Mon 23 Nov 2026 10:00 + 5 working days = Mon 30 Nov 10:00.
    assert CAL.add_working_days(sh(2026, 11, 23, 10), 5) == sh(2026, 11, 30, 10)
    assert CAL.add_working_days(sh(2026, 11, 23, 10), 1) == sh(2026, 11, 24, 10)
    # From a Saturday: one working day is all of Monday.
    assert CAL.add_working_days(sh(2026, 11, 28, 10), 1) == sh(2026, 11, 30, 18)
    # Half a day = 3.75 working hours.
    assert CAL.add_working_days(sh(2026, 11, 23, 8, 30), 0.5) == sh(2026, 11, 23, 14, 15)


def test_twenty_working_days_skip_whole_days() -> None:
    # Mon 2 Nov 2026 08:30 + 20 working days (4 full weeks) = Fri 27 Nov 18:00.
    assert CAL.add_working_days(sh(2026, 11, 2, 8, 30), 20) == sh(2026, 11, 27, 18)


# ------------------------------------------------------------------ the organisation's overrides


def test_extra_off_overrides_the_library() -> None:
    cal = WorkCalendar.from_settings("Asia/Shanghai", None, extra_off=["2026-11-24"], extra_on=[])
    assert not cal.is_working_day(date(2026, 11, 24))
    # Mon 23 Nov 17:00 + 2 h skips Tuesday 24 Nov.
    assert cal.add_working_hours(sh(2026, 11, 23, 17), 2) == sh(2026, 11, 25, 9, 30)


def test_extra_on_overrides_the_library() -> None:
    cal = WorkCalendar.from_settings("Asia/Shanghai", None, extra_off=[], extra_on=[date(2026, 11, 28)])
    assert cal.is_working_day(date(2026, 11, 28))
    assert cal.add_working_hours(sh(2026, 11, 27, 17), 2) == sh(2026, 11, 28, 9, 30)
    # Even a public holiday can be made a working day.
    cal = WorkCalendar.from_settings("Asia/Shanghai", None, extra_off=[], extra_on=["2026-02-16"])
    assert cal.is_working_day(date(2026, 2, 16))


def test_extra_on_wins_over_extra_off() -> None:
    cal = WorkCalendar(extra_off=frozenset({date(2026, 11, 24)}), extra_on=frozenset({date(2026, 11, 24)}))
    assert cal.is_working_day(date(2026, 11, 24))


def test_overrides_do_not_leak_between_calendars() -> None:
    off = WorkCalendar(extra_off=frozenset({date(2026, 11, 24)}))
    assert not off.is_working_day(date(2026, 11, 24))
    assert CAL.is_working_day(date(2026, 11, 24))


def test_custom_periods() -> None:
    cal = WorkCalendar.from_settings("Asia/Shanghai", ["09:00-12:00", "13:30-17:30"], [], [])
    assert cal.periods == ((time(9), time(12)), (time(13, 30), time(17, 30)))
    assert cal.working_seconds_per_day == 7 * 3600
    assert cal.add_working_hours(sh(2026, 11, 23, 11), 2) == sh(2026, 11, 23, 14, 30)


def test_other_time_zone() -> None:
    cal = WorkCalendar.from_settings("Asia/Urumqi", None, [], [])
    uq = ZoneInfo("Asia/Urumqi")
    start = datetime(2026, 11, 23, 11, tzinfo=uq)
    assert cal.add_working_hours(start, 2) == datetime(2026, 11, 23, 15, tzinfo=uq)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "periods",
    [
        ["8.30-12"],
        ["08:30"],
        ["25:00-26:00"],
        ["08:30-12:60"],
        ["12:00-08:30"],  # backwards
        ["08:30-08:30"],  # empty
        ["08:30-12:00", "11:00-18:00"],  # overlapping
        ["14:00-18:00", "08:30-12:00"],  # out of order
        [],
        ["nonsense"],
    ],
)
def test_bad_periods_raise_value_error(periods: list[str]) -> None:
    with pytest.raises(ValueError):
        WorkCalendar.from_settings("Asia/Shanghai", periods, [], [])


def test_bad_period_message_is_clear() -> None:
    with pytest.raises(ValueError, match=r'"8\.30-12" is not a time span: write it like 08:30-12:00'):
        WorkCalendar.from_settings("Asia/Shanghai", ["8.30-12"], [], [])
    with pytest.raises(ValueError, match="start before it ends"):
        WorkCalendar.from_settings("Asia/Shanghai", ["18:00-14:00"], [], [])
    with pytest.raises(ValueError, match="overlap"):
        WorkCalendar.from_settings("Asia/Shanghai", ["08:30-12:00", "11:00-18:00"], [], [])


def test_touching_periods_are_allowed() -> None:
    cal = WorkCalendar.from_settings("Asia/Shanghai", ["08:00-12:00", "12:00-16:00"], [], [])
    assert cal.working_seconds_per_day == 8 * 3600


def test_bad_dates_and_zone_raise_value_error() -> None:
    with pytest.raises(ValueError, match="2026-13-01"):
        WorkCalendar.from_settings("Asia/Shanghai", None, ["2026-13-01"], [])
    with pytest.raises(ValueError, match="not a date"):
        WorkCalendar.from_settings("Asia/Shanghai", None, [], ["tomorrow"])
    with pytest.raises(ValueError, match="time zone"):
        WorkCalendar.from_settings("Mars/Olympus", None, [], [])


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError):
        WorkCalendar(periods=((time(12), time(8)),))
    with pytest.raises(ValueError):
        WorkCalendar(periods=())


# ------------------------------------------------------------------ unknown years


def test_unknown_year_falls_back_to_monday_to_friday(caplog: pytest.LogCaptureFixture) -> None:
    year = 2099
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(date(year, 1, 1))
    workcalendar._official_workday.cache_clear()
    workcalendar._warned_years.discard(year)
    with caplog.at_level(logging.WARNING, logger="bot.org.workcalendar"):
        # 1 Jan 2099 is a Thursday: a working day by the fallback, holiday or not.
        assert date(year, 1, 1).weekday() == 3
        assert CAL.is_working_day(date(year, 1, 1))
        assert CAL.is_working_day(date(year, 1, 2))  # Friday
        assert not CAL.is_working_day(date(year, 1, 3))  # Saturday
        assert not CAL.is_working_day(date(year, 1, 4))  # Sunday
        # Fri 2 Jan 2099 17:00 + 2 h -> Mon 5 Jan 09:30.
        assert CAL.add_working_hours(sh(year, 1, 2, 17), 2) == sh(year, 1, 5, 9, 30)
    warnings = [r for r in caplog.records if str(year) in r.getMessage()]
    assert len(warnings) == 1  # once per year, not once per date
    # The organisation file can still override an unknown year.
    cal = WorkCalendar(extra_off=frozenset({date(year, 1, 1)}))
    assert not cal.is_working_day(date(year, 1, 1))


# ------------------------------------------------------------------ measuring time


def test_working_seconds_between_examples() -> None:
    assert CAL.working_seconds_between(sh(2026, 11, 23, 11), sh(2026, 11, 23, 15)) == 2 * 3600
    assert CAL.working_seconds_between(sh(2026, 11, 27, 16), sh(2026, 11, 30, 10, 30)) == 4 * 3600
    assert CAL.working_seconds_between(sh(2026, 11, 28, 9), sh(2026, 11, 29, 17)) == 0  # weekend
    assert CAL.working_seconds_between(sh(2026, 11, 23, 15), sh(2026, 11, 23, 11)) == 0  # reversed
    assert CAL.working_seconds_between(sh(2026, 11, 23, 0), sh(2026, 11, 30, 0)) == 5 * 7.5 * 3600


def test_working_seconds_between_is_the_inverse_of_add_working_time() -> None:
    rng = random.Random(20260214)
    base = sh(2025, 1, 1)
    for _ in range(2000):
        start = base + timedelta(seconds=rng.randrange(2 * 365 * 86_400), microseconds=rng.randrange(10**6))
        seconds = rng.choice([rng.uniform(0, 8 * 3600), rng.uniform(0, 25 * 27_000), rng.randrange(0, 40) * 1800])
        due = CAL.add_working_time(start, seconds)
        assert due >= start
        assert CAL.working_seconds_between(start, due) == pytest.approx(seconds, abs=1e-5)
        # The result is working time or the end of a period.
        assert CAL.is_working_time(due) or CAL.is_working_time(due - timedelta(microseconds=1))


def test_next_working_moment() -> None:
    inside = sh(2026, 11, 23, 9, 15)
    assert CAL.next_working_moment(inside) == inside
    assert CAL.next_working_moment(inside).tzinfo == UTC
    assert CAL.next_working_moment(sh(2026, 11, 23, 12)) == sh(2026, 11, 23, 14)  # 12:00 is lunch
    assert CAL.next_working_moment(sh(2026, 11, 23, 18)) == sh(2026, 11, 24, 8, 30)
    assert CAL.next_working_moment(sh(2026, 11, 28, 10)) == sh(2026, 11, 30, 8, 30)
    assert CAL.next_working_moment(sh(2026, 2, 15, 10)) == datetime.combine(SPRING_BACK, time(8, 30), SH)


# ------------------------------------------------------------------ deadlines


def test_due_time_ordinary() -> None:
    assert CAL.due_time(sh(2026, 11, 27, 16), 4, "hours", urgent=False) == sh(2026, 11, 30, 10, 30)
    assert CAL.due_time(sh(2026, 11, 23, 10), 5, "days", urgent=False) == sh(2026, 11, 30, 10)


def test_due_time_urgent_is_wall_clock() -> None:
    # Friday 16:00 + 4 urgent hours = Friday 20:00, weekend or not.
    assert CAL.due_time(sh(2026, 11, 27, 16), 4, "hours", urgent=True) == sh(2026, 11, 27, 20)
    # Urgent days are days x 24 wall-clock hours, holiday or not.
    assert CAL.due_time(sh(2026, 2, 14, 17), 2, "days", urgent=True) == sh(2026, 2, 16, 17)
    assert CAL.due_time(sh(2026, 11, 27, 16), 1.5, "hours", urgent=True).tzinfo == UTC


def test_due_time_bad_input() -> None:
    with pytest.raises(ValueError):
        CAL.due_time(sh(2026, 11, 23, 10), 5, "weeks", urgent=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CAL.due_time(sh(2026, 11, 23, 10), -1, "hours", urgent=False)


def test_at_fraction_ordinary_in_working_time() -> None:
    # Mon 23 Nov 10:00 + 5 working days = Mon 30 Nov 10:00 (37.5 working hours).
    start = sh(2026, 11, 23, 10)
    due = CAL.due_time(start, 5, "days", urgent=False)
    # 50% = 18.75 working hours: Mon 6 h, Tue 7.5 h, Wed 5.25 h (3.5 h + lunch + 1.75 h) = 15:45.
    assert CAL.at_fraction(start, due, 0.5, urgent=False) == sh(2026, 11, 25, 15, 45)
    # 80% = 30 working hours: Mon 6, Tue 7.5, Wed 7.5, Thu 7.5 (= 28.5), Fri 08:30 + 1.5 h.
    assert CAL.at_fraction(start, due, 0.8, urgent=False) == sh(2026, 11, 27, 10)
    assert CAL.at_fraction(start, due, 1, urgent=False) == due


def test_at_fraction_across_a_weekend_stays_in_working_hours() -> None:
    start = sh(2026, 11, 27, 16)  # Friday
    due = CAL.due_time(start, 4, "hours", urgent=False)  # Monday 10:30
    # 50% = 2 working hours = Friday 18:00 (end of the period).
    assert CAL.at_fraction(start, due, 0.5, urgent=False) == sh(2026, 11, 27, 18)
    # 80% = 3.2 working hours = Monday 08:30 + 1.2 h = 09:42.
    assert CAL.at_fraction(start, due, 0.8, urgent=False) == sh(2026, 11, 30, 9, 42)


def test_at_fraction_urgent_is_wall_clock() -> None:
    start = sh(2026, 11, 27, 16)
    due = CAL.due_time(start, 4, "hours", urgent=True)
    assert CAL.at_fraction(start, due, 0.5, urgent=True) == sh(2026, 11, 27, 18)
    assert CAL.at_fraction(start, due, 0.8, urgent=True) == sh(2026, 11, 27, 19, 12)


def test_at_fraction_bad_fraction() -> None:
    with pytest.raises(ValueError):
        CAL.at_fraction(sh(2026, 11, 23, 10), sh(2026, 11, 23, 12), 1.5, urgent=False)


def test_fraction_elapsed() -> None:
    start = sh(2026, 11, 27, 16)
    due = sh(2026, 11, 30, 10, 30)  # 4 working hours later
    assert CAL.fraction_elapsed(start, due, sh(2026, 11, 27, 17), urgent=False) == 0.25
    assert CAL.fraction_elapsed(start, due, sh(2026, 11, 29, 12), urgent=False) == 0.5  # weekend
    assert CAL.fraction_elapsed(start, due, sh(2026, 11, 30, 12), urgent=False) > 1  # overdue


def test_pausing_with_remaining_working_time() -> None:
    # A case started Mon 09:00 with 4 working hours, paused at 11:00, resumed Tue 15:00.
    start = sh(2026, 11, 23, 9)
    limit = 4 * 3600
    used = CAL.working_seconds_between(start, sh(2026, 11, 23, 11))
    assert used == 2 * 3600
    assert CAL.add_working_time(sh(2026, 11, 24, 15), limit - used) == sh(2026, 11, 24, 17)


# ------------------------------------------------------------------ quiet hours


def test_quiet_hours_across_midnight() -> None:
    q = QuietHours()
    assert (q.start, q.end) == (time(22), time(7, 30))
    # Late evening: to 07:30 the next morning.
    assert q.defer(sh(2026, 11, 23, 22), SH) == sh(2026, 11, 24, 7, 30)
    assert q.defer(sh(2026, 11, 23, 23, 45), SH) == sh(2026, 11, 24, 7, 30)
    # Small hours: to 07:30 the same morning.
    assert q.defer(sh(2026, 11, 24, 3), SH) == sh(2026, 11, 24, 7, 30)
    assert q.defer(sh(2026, 11, 24, 0), SH) == sh(2026, 11, 24, 7, 30)
    # Works from UTC input too (14:30 UTC = 22:30 Shanghai).
    assert q.defer(datetime(2026, 11, 23, 14, 30, tzinfo=UTC), SH) == sh(2026, 11, 24, 7, 30)
    assert q.defer(sh(2026, 11, 24, 3), SH).tzinfo == UTC


def test_outside_quiet_hours_is_unchanged() -> None:
    q = QuietHours()
    for t in (sh(2026, 11, 23, 7, 30), sh(2026, 11, 23, 12), sh(2026, 11, 23, 21, 59)):
        assert not q.contains(t, SH)
        assert q.defer(t, SH) == t
    assert q.contains(sh(2026, 11, 23, 22), SH)
    assert q.contains(sh(2026, 11, 23, 7, 29), SH)


def test_quiet_hours_within_a_day_and_none() -> None:
    q = QuietHours(time(12), time(14))
    assert q.defer(sh(2026, 11, 23, 13), SH) == sh(2026, 11, 23, 14)
    assert q.defer(sh(2026, 11, 23, 15), SH) == sh(2026, 11, 23, 15)
    none = QuietHours.from_string("00:00-00:00")
    assert not none.enabled
    assert none.defer(sh(2026, 11, 23, 3), SH) == sh(2026, 11, 23, 3)
    assert QuietHours.from_string("22:30-06:00") == QuietHours(time(22, 30), time(6))
    with pytest.raises(ValueError):
        QuietHours.from_string("late")
