"""Periods in the words users type: ``7d``, ``30d``, ``today``/``今天``, ``this-week``/``本周``,
``last-week``/``上周``, ``本月``/``this-month``, ``上月``/``last-month``, ``本季度``/``this-quarter``,
``2026-11``, ``2026-Q4``, ``2026``, ``2026-11-05`` and ``2026-11-01..2026-11-15`` (both ends
included). Days are the district's local days; a period is a half-open span [start, end) in UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from bot.errors import DomainError

DEFAULT = "30d"
# The periods the /stats buttons switch between.
PRESETS: tuple[str, ...] = ("7d", "30d", "this-month", "last-month")

_ALIASES = {
    "本月": "this-month",
    "上月": "last-month",
    "今天": "today",
    "今日": "today",
    "昨天": "yesterday",
    "本周": "this-week",
    "上周": "last-week",
    "本季度": "this-quarter",
    "上季度": "last-quarter",
    "本年": "this-year",
    "今年": "this-year",
}


class BadPeriod(DomainError):
    key = "desk.bad_period"


@dataclass(frozen=True)
class Period:
    text: str  # as given (normalized)
    first: date  # the first local day
    last: date  # the last local day (included)
    start: datetime  # UTC, included
    end: datetime  # UTC, excluded

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def label(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def _quarter(year: int, q: int) -> tuple[date, date]:
    first = date(year, 3 * (q - 1) + 1, 1)
    return first, _month_end(date(year, 3 * q, 1))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadPeriod(text=text) from None


def looks_like_period(text: str) -> bool:
    t = text.strip().lower()
    return t in _ALIASES or t in _ALIASES.values() or bool(re.fullmatch(r"\d+d|\d{4}(-.*)?", t))


def parse(text: str | None, now: datetime, tz: tzinfo) -> Period:
    """The period a user typed, relative to ``now`` in the district's zone ``tz``."""
    raw = (text or DEFAULT).strip()
    t = _ALIASES.get(raw, raw.lower())
    today = now.astimezone(tz).date()
    first: date
    last: date
    if m := re.fullmatch(r"(\d{1,3})d", t):
        n = int(m.group(1))
        if n < 1:
            raise BadPeriod(text=raw)
        first, last = today - timedelta(days=n - 1), today
    elif t == "today":
        first = last = today
    elif t == "yesterday":
        first = last = today - timedelta(days=1)
    elif t in ("this-week", "last-week", "week"):
        monday = today - timedelta(days=today.weekday())
        if t == "last-week":
            monday -= timedelta(days=7)
        first, last = monday, monday + timedelta(days=6)
    elif t in ("this-month", "month", "last-month"):
        first = today.replace(day=1)
        if t == "last-month":
            first = (first - timedelta(days=1)).replace(day=1)
        last = _month_end(first)
    elif t in ("this-quarter", "quarter", "last-quarter"):
        q = (today.month - 1) // 3 + 1
        year = today.year
        if t == "last-quarter":
            q -= 1
            if q == 0:
                q, year = 4, year - 1
        first, last = _quarter(year, q)
    elif t == "this-year":
        first, last = date(today.year, 1, 1), date(today.year, 12, 31)
    elif m := re.fullmatch(r"(\d{4})", t):
        first, last = date(int(t), 1, 1), date(int(t), 12, 31)
    elif m := re.fullmatch(r"(\d{4})-q([1-4])", t):
        first, last = _quarter(int(m.group(1)), int(m.group(2)))
    elif m := re.fullmatch(r"(\d{4})-(\d{1,2})", t):
        month = int(m.group(2))
        if not 1 <= month <= 12:
            raise BadPeriod(text=raw)
        first = date(int(m.group(1)), month, 1)
        last = _month_end(first)
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", t):
        first = last = _day(t)
    elif ".." in t:
        a, _, b = t.partition("..")
        first, last = _day(a.strip()), _day(b.strip())
        if last < first:
            raise BadPeriod(text=raw)
    else:
        raise BadPeriod(text=raw)
    if (last - first).days > 3 * 366:
        raise BadPeriod(text=raw)
    return Period(t, first, last, local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz))


def local_midnight(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)


def between(first: date, last: date, tz: tzinfo) -> Period:
    """A period from two dates (the CLI's --from and --to)."""
    if last < first:
        raise BadPeriod(text=f"{first}..{last}")
    return Period(
        f"{first}..{last}", first, last, local_midnight(first, tz), local_midnight(last + timedelta(days=1), tz)
    )
