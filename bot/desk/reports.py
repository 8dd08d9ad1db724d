"""Weekly and monthly reports (周报、月报) to each command room and the supervisors.

The week's (or last month's) figures of the street (the district's for district
supervisors), the best and worst teams and grids (红黑榜) by on-time closure then
satisfaction, and the longest-overdue open cases. Each report goes out once: a DigestLog
row per street and report ("W2026-48", "M2026-11") is how a sender claims it. Sent through
the outbox, in each reader's language. When: the organisation file's district settings
`weekly_report` ("mon 08:30", the default) and `monthly_report_day` (1) at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time

from sqlmodel import Session

from bot.desk import figures, periods, render, scopes
from bot.desk.figures import Group
from bot.desk.scopes import Scope
from bot.i18n import N_, t_plain
from bot.runtime import Runtime
from storage import chats, desk_queue, orgs, outbox, people
from storage import deadlines as digest_log
from storage.models import Role, pk

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANKED = 3
OVERDUE_LISTED = 5


@dataclass
class ReportsResult:
    reports: int = 0
    messages: int = 0
    monthly: list[tuple[int, str, str, str]] = field(default_factory=list)  # (chat id, scope code, first, last)


def schedule_of(rt: Runtime, s: Session) -> tuple[int, time, int]:
    """(weekday 0=Monday, time of day, day of month) from the district's settings."""
    district = orgs.district(s)
    settings = (district.settings or {}) if district else {}
    day, _, clock = str(settings.get("weekly_report", "mon 08:30")).strip().lower().partition(" ")
    weekday = WEEKDAYS.index(day[:3]) if day[:3] in WEEKDAYS else 0
    hours, _, minutes = (clock or "08:30").partition(":")
    return weekday, time(int(hours), int(minutes or 0)), int(settings.get("monthly_report_day", 1))


def ranking(groups: tuple[Group, ...]) -> tuple[list[Group], list[Group]]:
    """Best and worst groups with closed cases: on-time closure rate, then satisfaction."""
    ranked = [g for g in groups if g.key is not None and g.figures.closed > 0]
    ranked.sort(key=lambda g: (g.figures.on_time_rate or 0, g.figures.satisfaction_rate or 0), reverse=True)
    if len(ranked) < 2:
        return ranked, []
    k = min(RANKED, len(ranked) // 2)  # never the same group on both lists
    return ranked[:k], list(reversed(ranked[-k:]))


def body(rt: Runtime, s: Session, scope: Scope, period: periods.Period, lang: str, now: datetime) -> str:
    total = figures.compute(rt, scope, period, "team", fresh=False)
    grids = figures.compute(rt, scope, period, "grid", fresh=False)
    lines = [f"{scope.names.get(lang)} · {period.label()}", *render.summary(lang, total.total)]
    for label_key, report in ((N_("desk.r_teams"), total), (N_("desk.r_grids"), grids)):
        best, worst = ranking(report.groups)
        lines.append("")
        lines.append(t_plain(lang, label_key))
        lines.append(t_plain(lang, "desk.r_red") + " " + _names(best, lang))
        lines.append(t_plain(lang, "desk.r_black") + " " + _names(worst, lang))
    overdue = _longest_overdue(rt, s, scope, now)
    lines.append("")
    lines.append(t_plain(lang, "desk.r_overdue"))
    if not overdue:
        lines.append("—")
    for code, due in overdue:
        days = max(0, (now - due).days)
        lines.append(f"{code} · {t_plain(lang, 'desk.over_days', count=days)}")
    return "\n".join(lines)


def _names(groups: list[Group], lang: str) -> str:
    if not groups:
        return "—"
    return "、".join(f"{g.names.get(lang)} {render.percent(g.figures.on_time_rate)}" for g in groups)


def _longest_overdue(rt: Runtime, s: Session, scope: Scope, now: datetime) -> list[tuple[str, datetime]]:
    street_ids = list(scope.street_ids) if scope.street_ids is not None else None
    unit_ids = [scope.unit_id] if scope.unit_id else []
    rows = desk_queue.longest_overdue(s, street_ids=street_ids, unit_ids=unit_ids, now=now, limit=OVERDUE_LISTED)
    return [(c.code, c.due_at) for c in rows if c.due_at is not None]


def _enqueue(s: Session, chat_id: int, kind_key: str, zh: str, en: str, now: datetime) -> None:
    outbox.enqueue(
        s, chat_id=chat_id, kind="user_text", now=now,
        payload={"key": kind_key, "params": {"body_zh": zh, "body_en": en}},
    )  # fmt: skip


# The monthly report's spreadsheet: an outbox row (retried like every send), the file made
# when it is sent (handlers/desk_jobs.py deliver_spreadsheet) in the reader's language.
KIND_SPREADSHEET = "desk_spreadsheet"


def _enqueue_spreadsheet(s: Session, chat_id: int, code: str, period: periods.Period, now: datetime) -> None:
    outbox.enqueue(
        s, chat_id=chat_id, kind=KIND_SPREADSHEET, now=now,
        payload={"code": code, "first": str(period.first), "last": str(period.last)},
    )  # fmt: skip


def send_due_reports(rt: Runtime) -> ReportsResult:
    """Queue the weekly and monthly reports whose time has come (once each)."""
    now = rt.clock.now()
    result = ReportsResult()
    figures.catch_up(rt)  # before the transaction below, which computes the figures inside it
    with rt.db.session() as s:
        district = orgs.district(s)
        if district is None:
            return result
        tz = scopes.ZoneInfo(district.timezone)
        local = now.astimezone(tz)
        weekday, at, month_day = schedule_of(rt, s)
        due: list[tuple[str, str, str]] = []  # (tag, period text, message key)
        if local.weekday() == weekday and local.time() >= at:
            week = periods.parse("last-week", now, tz)
            due.append((f"W{week.first:%y%m%d}", "last-week", N_("desk.weekly_report")))
        if local.day == month_day and local.time() >= at:
            month = periods.parse("last-month", now, tz)
            due.append((f"M{month.first:%Y-%m}", "last-month", N_("desk.monthly_report")))
        streets = orgs.active_streets(s)
        for tag, period_text, key in due:
            period = periods.parse(period_text, now, tz)
            for street in streets:
                if not digest_log.claim_digest(s, street_id=pk(street), day=tag, now=now):
                    continue
                result.reports += 1
                scope = scopes._scope(street, district.timezone)
                zh, en = body(rt, s, scope, period, "zh_CN", now), body(rt, s, scope, period, "en", now)
                room = orgs.command_room_of(s, pk(street))
                chat = chats.chat_for_unit(s, pk(room)) if room else None
                if chat is not None:
                    _enqueue(s, chat.telegram_id, key, zh, en, now)
                    result.messages += 1
                    if tag.startswith("M"):
                        result.monthly.append((chat.telegram_id, street.code, str(period.first), str(period.last)))
                        _enqueue_spreadsheet(s, chat.telegram_id, street.code, period, now)
                for user in people.members_with_role(s, role=Role.SUPERVISOR, scope_code=street.code):
                    if user.can_message:
                        _enqueue(s, user.telegram_id, key, zh, en, now)
                        result.messages += 1
            # the district's supervisors get the district's report (claimed on the first street)
            if streets and digest_log.claim_digest(s, street_id=pk(streets[0]), day="D" + tag, now=now):
                scope = scopes._scope(district, district.timezone)
                zh, en = body(rt, s, scope, period, "zh_CN", now), body(rt, s, scope, period, "en", now)
                for user in people.members_with_role(s, role=Role.SUPERVISOR, scope_code=district.code):
                    if user.can_message:
                        _enqueue(s, user.telegram_id, key, zh, en, now)
                        result.messages += 1
                        if tag.startswith("M"):
                            result.monthly.append(
                                (user.telegram_id, district.code, str(period.first), str(period.last))
                            )
                            _enqueue_spreadsheet(s, user.telegram_id, district.code, period, now)
    return result
