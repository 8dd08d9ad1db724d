"""Due times in words where they are near: "今天 17:30", "明天 10:28 · 剩 18 小时",
"today 17:30 · 3 hours left", "11-26 09:30 · 已超时 2 小时"."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.i18n import t

# Time left is said when the due time is this near (hours); beyond it the date says enough.
NEAR_HOURS = 48


def when_words(lang: str, at: datetime, now: datetime, tz: ZoneInfo) -> str:
    """A moment as a person says it: today / tomorrow / yesterday with the time, else the date."""
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    days = (local.date() - today).days
    clock = local.strftime("%H:%M")
    if days == 0:
        return t(lang, "time.today", time=clock)
    if days == 1:
        return t(lang, "time.tomorrow", time=clock)
    if days == -1:
        return t(lang, "time.yesterday", time=clock)
    return local.strftime("%m-%d %H:%M")


def left_words(lang: str, due: datetime, now: datetime) -> str:
    """'剩 18 小时' / '18 hours left' / 'overdue by 2 hours' ('' when far off)."""
    seconds = (due - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    if seconds >= 0 and seconds > NEAR_HOURS * 3600:
        return ""
    span = (
        t(lang, "time.minutes", count=max(1, minutes)) if minutes < 60 else t(lang, "time.hours", count=minutes // 60)
    )
    return t(lang, "time.left" if seconds >= 0 else "time.overdue", span=span)


def due_words(lang: str, due: datetime, now: datetime, tz: ZoneInfo) -> str:
    """The due time in words, with the time left (or the lateness) when near."""
    left = left_words(lang, due, now)
    words = when_words(lang, due, now, tz)
    return f"{words} · {left}" if left else words


def is_overdue(due: datetime | None, now: datetime) -> bool:
    return due is not None and due < now


def more_time_words(lang: str, amount: int, unit: str) -> str:
    """More time in its unit (bot.cases.deadlines.MORE_TIME_CHOICES): "2 个工作日",
    "4 working hours", "1 day"."""
    return t(lang, f"work.more_{unit}", count=amount)
