"""Deadline arithmetic on a working calendar (时限).

A category's time limit is counted in working hours or working days for ordinary
matters and in wall-clock hours for urgent ones. This module knows which days are
working days (China's official calendar, including the make-up working days on
weekends, 调休, plus the organisation's own extra days off and extra working days),
which hours of a working day count (the working periods, by default 08:30-12:00 and
14:00-18:00), and does the arithmetic on them.

Conventions:

* Every datetime going in must be timezone-aware; every datetime coming out is in
  UTC. The arithmetic itself happens on the wall clock of the calendar's zone.
* A working period is half-open, ``[start, end)``: 12:00 is not inside 08:30-12:00,
  so the next working moment after 12:00 is 14:00. Adding working time that runs out
  exactly at the end of a period lands *at* that end (Friday 18:00, not Monday 08:30).
* **N working days = N x working_seconds_per_day of working time.** With the default
  periods a working day is 7.5 working hours, so 1 working day from Monday 10:00 is
  Tuesday 10:00, 5 working days from Monday 10:00 is next Monday 10:00 (when all of
  them are working days), and 1 working day from a Saturday is Monday 18:00 (the end
  of the first working day). Fractional days work the same way (0.5 day = 3.75 h).
* Working time is measured on the local wall clock; in zones with daylight saving
  time a period that straddles a clock change counts its nominal length. China has
  no DST, so this never matters for the default zone.

Nothing here talks to Telegram or the database.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PERIODS",
    "DEFAULT_QUIET_HOURS",
    "DEFAULT_TIMEZONE",
    "QuietHours",
    "WorkCalendar",
    "parse_date",
    "parse_period",
]

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_PERIODS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(14, 0), time(18, 0)),
)

_US_PER_SECOND = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_SECOND
# A guard against endless loops: no real calendar has this many days off in a row.
_MAX_DAYS_OFF_IN_A_ROW = 3_660
_MIDNIGHT = time(0, 0)

LimitUnit = Literal["hours", "days"]


# --------------------------------------------------------------------------- parsing

_PERIOD_RE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*[-–~]\s*(\d{1,2}):(\d{2})\s*")


def _clock(hour: str, minute: str, text: str) -> time:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise ValueError(f'"{text}" is not a valid time span: {hour}:{minute} is not a time of day')
    return time(h, m)


def _parse_span(text: str) -> tuple[time, time]:
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a time span: write it like 08:30-12:00")
    match = _PERIOD_RE.fullmatch(text)
    if not match:
        raise ValueError(f'"{text}" is not a time span: write it like 08:30-12:00')
    start = _clock(match.group(1), match.group(2), text)
    end = _clock(match.group(3), match.group(4), text)
    return start, end


def parse_period(text: str) -> tuple[time, time]:
    """``"08:30-12:00"`` -> ``(time(8, 30), time(12, 0))``; ValueError unless start < end."""
    start, end = _parse_span(text)
    if not start < end:
        raise ValueError(
            f'working period "{text.strip()}" is not valid: it must start before it ends '
            "(within one day), like 08:30-12:00"
        )
    return start, end


def parse_date(value: str | date) -> date:
    """An ISO date string (``"2026-10-09"``) or a date; ValueError otherwise."""
    if isinstance(value, datetime):
        raise ValueError(f"{value!r} is a datetime, not a date: write it like 2026-10-09")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f'"{value}" is not a date: write it like 2026-10-09')


def _zone(tz: tzinfo | str) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(str(tz).strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'time zone "{tz}" is not a known IANA time zone, like Asia/Shanghai') from None


def _require_aware(t: datetime, what: str = "time") -> None:
    if not isinstance(t, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(t).__name__}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {t!r}")


def _us_of_day(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_SECOND + t.microsecond


def _to_local_naive(t: datetime, tz: tzinfo) -> datetime:
    return t.astimezone(tz).replace(tzinfo=None)


def _from_local_naive(t: datetime, tz: tzinfo) -> datetime:
    return t.replace(tzinfo=tz).astimezone(UTC)


# ------------------------------------------------------------ China's official calendar

_warned_years: set[int] = set()
_warn_lock = threading.Lock()


@lru_cache(maxsize=65_536)
def _official_workday(d: date) -> bool:
    """chinese_calendar's answer, or Mon-Fri for a year the library does not know."""
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        with _warn_lock:
            first = d.year not in _warned_years
            _warned_years.add(d.year)
        if first:
            log.warning(
                "chinese_calendar has no holiday data for %d; treating Monday to Friday as "
                "working days that year (add extra_days_off / extra_workdays to the "
                "organisation file, or upgrade chinese-calendar)",
                d.year,
            )
        return d.weekday() < 5


# ------------------------------------------------------------------------ the calendar


@dataclass(frozen=True)
class WorkCalendar:
    """Working days and working periods, and deadline arithmetic on them."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    extra_off: frozenset[date] = frozenset()
    extra_on: frozenset[date] = frozenset()
    # Derived: periods as microseconds since midnight, and their total.
    _spans: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)
    _day_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise ValueError(f"tz must be a time zone (ZoneInfo), not {self.tz!r}")
        periods = tuple(tuple(p) for p in self.periods)
        if not periods:
            raise ValueError("a working day needs at least one working period, like 08:30-12:00")
        spans: list[tuple[int, int]] = []
        for period in periods:
            if len(period) != 2 or not all(isinstance(x, time) for x in period):
                raise ValueError(f"working period {period!r} must be a (start, end) pair of times")
            start, end = period
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(f"working period {_fmt(period)} must use naive times (local wall clock)")
            if not start < end:
                raise ValueError(f"working period {_fmt(period)} must start before it ends")
            if spans and _us_of_day(start) < spans[-1][1]:
                raise ValueError(
                    f"working periods must be in order and must not overlap: {_fmt(period)} "
                    f"starts before the previous period ends"
                )
            spans.append((_us_of_day(start), _us_of_day(end)))
        object.__setattr__(self, "periods", periods)
        object.__setattr__(self, "extra_off", frozenset(parse_date(d) for d in self.extra_off))
        object.__setattr__(self, "extra_on", frozenset(parse_date(d) for d in self.extra_on))
        object.__setattr__(self, "_spans", tuple(spans))
        object.__setattr__(self, "_day_us", sum(e - s for s, e in spans))

    @classmethod
    def from_settings(
        cls,
        tz_name: str = DEFAULT_TIMEZONE,
        periods: list[str] | None = None,
        extra_off: Iterable[str | date] = (),
        extra_on: Iterable[str | date] = (),
    ) -> WorkCalendar:
        """Build from the organisation file's values: ``"08:30-12:00"`` spans, ISO dates.

        ``periods=None`` means the default 08:30-12:00, 14:00-18:00. Raises ValueError
        with a message fit for the person editing the file.
        """
        tz = _zone(tz_name)
        if periods is None:
            spans = DEFAULT_PERIODS
        else:
            if isinstance(periods, str):
                periods = [periods]
            spans = tuple(parse_period(p) for p in periods)
        return cls(
            tz=tz,  # type: ignore[arg-type]
            periods=spans,
            extra_off=frozenset(parse_date(d) for d in (extra_off or ())),
            extra_on=frozenset(parse_date(d) for d in (extra_on or ())),
        )

    # ------------------------------------------------------------------ days and moments

    @property
    def working_seconds_per_day(self) -> float:
        """Working time in one working day (27,000 s = 7.5 h by default)."""
        return self._day_us / _US_PER_SECOND

    def is_working_day(self, d: date) -> bool:
        """extra_on wins, then extra_off, then China's calendar (调休 days count as working)."""
        if isinstance(d, datetime):
            d = _to_local_naive(d, self.tz).date() if d.tzinfo else d.date()
        if d in self.extra_on:
            return True
        if d in self.extra_off:
            return False
        return _official_workday(d)

    def is_working_time(self, t: datetime) -> bool:
        """True if ``t`` falls inside a working period of a working day."""
        _require_aware(t)
        local = _to_local_naive(t, self.tz)
        if not self.is_working_day(local.date()):
            return False
        tod = _us_of_day(local.time())
        return any(s <= tod < e for s, e in self._spans)

    def next_working_moment(self, t: datetime) -> datetime:
        """``t`` itself (in UTC) if it is working time, otherwise the next period start."""
        _require_aware(t)
        local = _to_local_naive(t, self.tz)
        d = local.date()
        tod = _us_of_day(local.time())
        for _ in range(_MAX_DAYS_OFF_IN_A_ROW):
            if self.is_working_day(d):
                for s, e in self._spans:
                    if tod < e:
                        if tod >= s:
                            return t.astimezone(UTC)
                        return self._at(d, s)
            d += timedelta(days=1)
            tod = 0
        raise RuntimeError(f"no working day within {_MAX_DAYS_OFF_IN_A_ROW} days of {t}")

    # ------------------------------------------------------------------ adding time

    def add_working_time(self, start: datetime, seconds: float) -> datetime:
        """``start`` plus ``seconds`` of working time, in UTC.

        A start outside working time begins at the next working moment. The result lies
        inside a period, or at the end of one when the time runs out exactly there.
        Zero seconds gives the next working moment. O(days spanned).
        """
        _require_aware(start, "start")
        remaining = _to_us(seconds)
        local = _to_local_naive(start, self.tz)
        d = local.date()
        tod = _us_of_day(local.time())
        spans = self._spans
        day_us = self._day_us
        one_day = timedelta(days=1)
        is_working_day = self.is_working_day
        days_off = 0
        first = True
        while True:
            if is_working_day(d):
                days_off = 0
                # A whole working day still to go: skip it at once.
                if not first and remaining > day_us:
                    remaining -= day_us
                else:
                    for s, e in spans:
                        if tod >= e:
                            continue
                        begin = s if tod < s else tod
                        available = e - begin
                        if remaining <= available:
                            return self._at(d, begin + remaining)
                        remaining -= available
            else:
                days_off += 1
                if days_off > _MAX_DAYS_OFF_IN_A_ROW:
                    raise RuntimeError(f"no working day within {_MAX_DAYS_OFF_IN_A_ROW} days after {d}")
            first = False
            tod = 0
            d += one_day

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        return self.add_working_time(start, hours * 3600)

    def add_working_days(self, start: datetime, days: float) -> datetime:
        """N working days = N x working_seconds_per_day of working time (see module doc)."""
        return self.add_working_time(start, days * self.working_seconds_per_day)

    # ------------------------------------------------------------------ measuring time

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        """Working time elapsed from ``a`` to ``b`` in seconds (0 if ``b <= a``).

        The inverse of add_working_time: ``working_seconds_between(a,
        add_working_time(a, s)) == s``. O(days spanned).
        """
        _require_aware(a, "a")
        _require_aware(b, "b")
        if b <= a:
            return 0.0
        la = _to_local_naive(a, self.tz)
        lb = _to_local_naive(b, self.tz)
        d, last = la.date(), lb.date()
        lo = _us_of_day(la.time())
        hi_last = _us_of_day(lb.time())
        spans = self._spans
        day_us = self._day_us
        one_day = timedelta(days=1)
        total = 0
        while d <= last:
            if self.is_working_day(d):
                hi = hi_last if d == last else _US_PER_DAY
                if lo == 0 and hi == _US_PER_DAY:
                    total += day_us
                else:
                    for s, e in spans:
                        x = s if s > lo else lo
                        y = e if e < hi else hi
                        if y > x:
                            total += y - x
            lo = 0
            d += one_day
        return total / _US_PER_SECOND

    # ------------------------------------------------------------------ deadlines

    def due_time(self, start: datetime, limit_value: float, limit_unit: LimitUnit, urgent: bool) -> datetime:
        """When a case started at ``start`` with this time limit is due (UTC).

        Urgent: wall-clock hours (a limit in days is days x 24 wall-clock hours).
        Ordinary: working hours, or working days (see add_working_days).
        """
        _require_aware(start, "start")
        value = float(limit_value)
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"time limit must be a non-negative number, not {limit_value!r}")
        if limit_unit not in ("hours", "days"):
            raise ValueError(f'time limit unit must be "hours" or "days", not {limit_unit!r}')
        if urgent:
            hours = value * 24 if limit_unit == "days" else value
            return start.astimezone(UTC) + timedelta(hours=hours)
        if limit_unit == "days":
            return self.add_working_days(start, value)
        return self.add_working_hours(start, value)

    def at_fraction(self, start: datetime, due: datetime, fraction: float, urgent: bool) -> datetime:
        """The moment ``fraction`` (0..1) of the time from ``start`` to ``due`` has passed.

        Measured in working time for ordinary cases (so a reminder at 50% or 80% falls
        in working hours) and in wall-clock time for urgent ones. ``fraction`` 1 is
        ``due`` itself; a ``due`` not after ``start`` is returned as is.
        """
        _require_aware(start, "start")
        _require_aware(due, "due")
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be between 0 and 1, not {fraction!r}")
        if due <= start or fraction == 1:
            return due.astimezone(UTC)
        if urgent:
            return start.astimezone(UTC) + (due - start) * fraction
        total = self.working_seconds_between(start, due)
        return self.add_working_time(start, total * fraction)

    def fraction_elapsed(self, start: datetime, due: datetime, now: datetime, urgent: bool) -> float:
        """How much of the allowed time (start -> due) has been used at ``now``.

        0 before start, 1 at due, more than 1 when overdue. Working time for ordinary
        cases, wall-clock time for urgent ones.
        """
        _require_aware(start, "start")
        _require_aware(due, "due")
        _require_aware(now, "now")
        if urgent:
            allowed = (due - start).total_seconds()
            used = max((now - start).total_seconds(), 0.0)
        else:
            allowed = self.working_seconds_between(start, due)
            used = self.working_seconds_between(start, now)
        if allowed <= 0:
            return 1.0 if now >= due else 0.0
        return used / allowed

    # ------------------------------------------------------------------ helpers

    def _at(self, d: date, us_of_day: int) -> datetime:
        local = datetime(d.year, d.month, d.day) + timedelta(microseconds=us_of_day)
        return _from_local_naive(local, self.tz)


def _to_us(seconds: float) -> int:
    value = float(seconds)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"working time must be a non-negative number of seconds, not {seconds!r}")
    return round(value * _US_PER_SECOND)


def _fmt(period: tuple[time, ...]) -> str:
    return "-".join(t.strftime("%H:%M") if isinstance(t, time) else repr(t) for t in period)


# ------------------------------------------------------------------------ quiet hours


@dataclass(frozen=True)
class QuietHours:
    """Hours when the bot does not ping people (default 22:00-07:30, across midnight).

    ``start == end`` means no quiet hours. ``start`` is inside, ``end`` is not.
    """

    start: time = time(22, 0)
    end: time = time(7, 30)

    def __post_init__(self) -> None:
        if not isinstance(self.start, time) or not isinstance(self.end, time):
            raise ValueError("quiet hours need a start and an end time")

    @classmethod
    def from_string(cls, text: str | None) -> QuietHours:
        """``"22:00-07:30"``; ``"00:00-00:00"`` for none; None for the default."""
        if text is None:
            return cls()
        start, end = _parse_span(text)
        return cls(start, end)

    @property
    def enabled(self) -> bool:
        return self.start != self.end

    def contains(self, t: datetime, tz: tzinfo | str) -> bool:
        _require_aware(t)
        if not self.enabled:
            return False
        tod = t.astimezone(_zone(tz)).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= tod < self.end
        return tod >= self.start or tod < self.end

    def defer(self, t: datetime, tz: tzinfo | str) -> datetime:
        """``t`` moved to the end of quiet hours if inside them (UTC); otherwise unchanged."""
        _require_aware(t)
        zone = _zone(tz)
        if not self.contains(t, zone):
            return t.astimezone(UTC)
        local = _to_local_naive(t, zone)
        d = local.date()
        if self.start > self.end and local.time() >= self.start:
            d += timedelta(days=1)  # late evening: quiet until tomorrow morning
        return _from_local_naive(datetime.combine(d, self.end), zone)


DEFAULT_QUIET_HOURS = QuietHours()


# ------------------------------------------------------------------------ benchmark

if __name__ == "__main__":  # pragma: no cover - a manual timing, not a test
    import random
    import time as _time

    cal = WorkCalendar()
    rng = random.Random(1)
    base = datetime(2025, 1, 1, tzinfo=UTC)
    limits: list[tuple[int, LimitUnit]] = [
        (2, "hours"),
        (4, "hours"),
        (24, "hours"),
        (1, "days"),
        (5, "days"),
        (7, "days"),
        (20, "days"),
    ]
    starts = [base + timedelta(seconds=rng.randrange(2 * 365 * 86_400)) for _ in range(100_000)]
    picks = [(rng.choice(limits), rng.random() < 0.1) for _ in starts]
    t0 = _time.perf_counter()
    dues = [cal.due_time(s, v, u, urgent) for s, ((v, u), urgent) in zip(starts, picks, strict=True)]
    t1 = _time.perf_counter()
    for s, d in zip(starts[:20_000], dues[:20_000], strict=True):
        cal.at_fraction(s, d, 0.8, False)
    t2 = _time.perf_counter()
    print(f"100,000 due times: {t1 - t0:.3f} s ({(t1 - t0) * 10:.2f} us each)")
    print(f"20,000 at_fraction(0.8): {t2 - t1:.3f} s")
