"""The morning digest (每日简报): each command room gets new, closed, overdue and due-today
cases per team with the overdue list; each team group gets its own overdue and due-today
list. A digest with nothing in it is not sent; each goes out once per street and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from bot.cases.deadlines import LADDER, street_clock
from bot.i18n import bilingual, t
from bot.runtime import Runtime
from storage import chats, deadlines, orgs, outbox
from storage.models import pk

MAX_LISTED = 20


@dataclass(frozen=True)
class DigestResult:
    streets: int
    messages: int


def send_due_digests(rt: Runtime) -> DigestResult:
    """For every street whose digest time has come on a working day: queue its digests."""
    now = rt.clock.now()
    streets = messages = 0
    with rt.db.session() as s:
        for street in orgs.active_streets(s):
            clock = street_clock(rt, s, street.id)
            local = now.astimezone(clock.calendar.tz)
            if not clock.calendar.is_working_day(local.date()) or local.time() < clock.digest_time:
                continue
            if not deadlines.claim_digest(s, street_id=street.id, day=local.date().isoformat(), now=now):  # type: ignore[arg-type]
                continue
            streets += 1
            day_start = datetime.combine(local.date(), datetime.min.time(), clock.calendar.tz)
            yesterday = day_start - timedelta(days=1)
            tomorrow = day_start + timedelta(days=1)
            messages += _command_digest(s, street, yesterday, day_start, tomorrow, now, clock.calendar.tz)
            for team in orgs.teams_of_street(s, street.id):  # type: ignore[arg-type]
                messages += _team_digest(s, street, team, tomorrow, now, clock.calendar.tz)
    return DigestResult(streets, messages)


def _line(case, tz) -> dict:
    return {"code": case.code, "due": case.due_at.astimezone(tz).strftime("%m-%d %H:%M") if case.due_at else "—"}


def _command_digest(s, street, since, until, tomorrow, now, tz) -> int:
    room = orgs.command_room_of(s, street.id)
    chat = chats.chat_for_unit(s, pk(room)) if room else None
    if chat is None:
        return 0
    created = deadlines.count_created(s, street.id, since, until)
    closed = deadlines.count_closed(s, street.id, since, until)
    overdue = deadlines.open_with_due(s, street.id, LADDER, now)
    due_today = [c for c in deadlines.open_with_due(s, street.id, LADDER, tomorrow) if c.due_at and c.due_at >= now]
    if not (created or closed or overdue or due_today):
        return 0
    rows = []
    for team in orgs.teams_of_street(s, street.id):
        row = {
            "team_zh": team.name_zh,
            "team_en": team.name_en,
            "new": created.get(team.id, 0),
            "closed": closed.get(team.id, 0),
            "overdue": sum(1 for c in overdue if c.unit_id == team.id),
            "today": sum(1 for c in due_today if c.unit_id == team.id),
        }
        if any(row[k] for k in ("new", "closed", "overdue", "today")):
            rows.append(row)
    outbox.enqueue(
        s,
        chat_id=chat.telegram_id,
        kind="digest",
        now=now,
        payload={
            "scope": "command",
            "street_zh": street.name_zh,
            "street_en": street.name_en,
            "new": sum(created.values()),
            "closed": sum(closed.values()),
            "rows": rows,
            "overdue": [_line(c, tz) for c in overdue[:MAX_LISTED]],
            "overdue_total": len(overdue),
            "today": [_line(c, tz) for c in due_today[:MAX_LISTED]],
        },
    )
    return 1


def _team_digest(s, street, team, tomorrow, now, tz) -> int:
    chat = chats.chat_for_unit(s, team.id)
    if chat is None:
        return 0
    overdue = deadlines.open_with_due(s, street.id, LADDER, now, unit_id=team.id)
    due_today = [
        c
        for c in deadlines.open_with_due(s, street.id, LADDER, tomorrow, unit_id=team.id)
        if c.due_at and c.due_at >= now
    ]
    if not (overdue or due_today):
        return 0
    outbox.enqueue(
        s,
        chat_id=chat.telegram_id,
        kind="digest",
        now=now,
        payload={
            "scope": "team",
            "team_zh": team.name_zh,
            "team_en": team.name_en,
            "overdue": [_line(c, tz) for c in overdue[:MAX_LISTED]],
            "overdue_total": len(overdue),
            "today": [_line(c, tz) for c in due_today[:MAX_LISTED]],
        },
    )
    return 1


def render(payload: dict, lang: str) -> str:
    """The digest's text in a reader's language (HTML, every name escaped here)."""

    def pick(prefix: str) -> str:
        return escape(str(payload.get(f"{prefix}_zh" if lang == "zh_CN" else f"{prefix}_en", "")))

    lines: list[str] = []
    if payload["scope"] == "command":
        lines.append(
            t(
                lang,
                "digest.command_title",
                street=pick("street"),
                new=payload["new"],
                closed=payload["closed"],
                overdue=payload["overdue_total"],
            )
        )
        for row in payload["rows"]:
            name = escape(bilingual(lang, row["team_zh"], row["team_en"]))
            lines.append(
                t(
                    lang,
                    "digest.team_row",
                    team=name,
                    new=row["new"],
                    closed=row["closed"],
                    overdue=row["overdue"],
                    today=row["today"],
                )
            )
    else:
        lines.append(
            t(
                lang,
                "digest.team_title",
                team=pick("team"),
                overdue=payload["overdue_total"],
                today=len(payload["today"]),
            )
        )
    if payload["overdue"]:
        lines.append(t(lang, "digest.overdue_list"))
        lines += [f"• <b>{escape(c['code'])}</b> {escape(c['due'])}" for c in payload["overdue"]]
    if payload["today"]:
        lines.append(t(lang, "digest.today_list"))
        lines += [f"• <b>{escape(c['code'])}</b> {escape(c['due'])}" for c in payload["today"]]
    return "\n".join(lines)
