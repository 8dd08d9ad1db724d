"""The assessment spreadsheet (考核表): cases, timeline, figures; XLSX (write-only workbook)
or CSV (the cases, row by row). Headers in the reader's language, times in the district's
zone. Nothing is built in memory: rows stream from the database to the file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bot.desk import figures, periods, render, scopes
from bot.desk.periods import Period
from bot.desk.scopes import Scope
from bot.i18n import N_, bilingual, t_plain
from bot.org import index
from bot.runtime import Runtime
from storage import desk_export

CASE_COLUMNS = (
    N_("desk.x_code"), N_("desk.x_source"), N_("desk.x_category"), N_("desk.x_platform"), N_("desk.x_street"),
    N_("desk.x_community"), N_("desk.x_grid"), N_("desk.x_place"), N_("desk.x_reporter_kind"), N_("desk.x_state"),
    N_("desk.x_urgent"), N_("desk.x_team"), N_("desk.x_received"), N_("desk.x_dispatched"), N_("desk.x_claimed"),
    N_("desk.x_resolved"), N_("desk.x_closed"), N_("desk.x_due"), N_("desk.x_on_time"), N_("desk.x_reopened"),
    N_("desk.x_rating"), N_("desk.x_followup"),
)  # fmt: skip
TIMELINE_COLUMNS = (
    N_("desk.x_code"), N_("desk.x_at"), N_("desk.x_action"), N_("desk.x_from"), N_("desk.x_to"),
    N_("desk.x_actor"), N_("desk.x_note"),
)  # fmt: skip
SOURCE_KEYS = {"patrol": N_("desk.src_patrol"), "resident": N_("desk.src_resident"), "hotline": N_("desk.src_hotline")}
REPORTER_KEYS = {"patrol": N_("desk.rk_worker"), "resident": N_("desk.rk_resident"), "hotline": N_("desk.rk_staff")}
FOLLOWUP_KEYS = {
    "resolved": N_("desk.fu_resolved"),
    "unreachable": N_("desk.fu_unreachable"),
    "reopened": N_("desk.fu_reopened"),
    "open": N_("desk.fu_open"),
    "overdue": N_("desk.fu_overdue"),
}


def _local(value: datetime | None, tz: ZoneInfo) -> datetime | None:
    return value.astimezone(tz).replace(tzinfo=None, microsecond=0) if value is not None else None


def _name(row: Any, lang: str) -> str:
    return bilingual(lang, row.name_zh, row.name_en) if row is not None else ""


def case_rows(rt: Runtime, scope: Scope, period: Period, lang: str) -> Iterator[list[Any]]:
    """Sheet one, a row a case (its header first)."""
    tz = ZoneInfo(scope.tz)
    known = index.org(rt)
    f = figures.case_filter(scope, period)
    yes, no = t_plain(lang, "desk.yes"), t_plain(lang, "desk.no")
    yield [t_plain(lang, key) for key in CASE_COLUMNS]
    with rt.db.read() as s:
        reopened = desk_export.reopened_ids(s, f)
        ratings = desk_export.first_ratings(s, f)
        followups = desk_export.followup_outcomes(s, f, rt.clock.now())
        for r in desk_export.iter_cases(s, f):
            category = known.category(r.category_id)
            platform = known.platform(category.platform_id) if category else None
            on_time = ""
            if r.state == "closed":
                on_time = yes if r.due_at is None or (r.resolved_at and r.resolved_at <= r.due_at) else no
            source = t_plain(lang, SOURCE_KEYS[r.source]) if r.source in SOURCE_KEYS else r.source
            reporter = t_plain(lang, REPORTER_KEYS[r.source]) if r.source in REPORTER_KEYS else ""
            outcome = followups.get(r.id)
            yield [
                r.code, source, _name(category, lang), _name(platform, lang), _name(known.street(r.street_id), lang),
                _name(known.community(r.community_id), lang), _name(known.grid(r.grid_id), lang), r.address or "",
                reporter, t_plain(lang, f"state.{r.state}"), yes if r.urgent else no, _name(known.unit(r.unit_id), lang),
                _local(r.created_at, tz), _local(r.dispatched_at, tz), _local(r.claimed_at, tz),
                _local(r.resolved_at, tz), _local(r.closed_at, tz), _local(r.due_at, tz), on_time,
                yes if r.id in reopened else no, ratings.get(r.id, ""),
                t_plain(lang, FOLLOWUP_KEYS[outcome]) if outcome in FOLLOWUP_KEYS else (outcome or ""),
            ]  # fmt: skip


def timeline_rows(rt: Runtime, scope: Scope, period: Period, lang: str) -> Iterator[list[Any]]:
    tz = ZoneInfo(scope.tz)
    yield [t_plain(lang, key) for key in TIMELINE_COLUMNS]
    with rt.db.read() as s:
        for code, at, action, from_state, to_state, first, last, note in desk_export.iter_timeline(
            s, figures.case_filter(scope, period)
        ):
            actor = " ".join(x for x in (first, last) if x)
            yield [code, _local(at, tz), action, from_state or "", to_state or "", actor, note or ""]


def figure_rows(rt: Runtime, scope: Scope, period: Period, lang: str) -> Iterator[list[Any]]:
    report = figures.compute(rt, scope, period)
    yield [t_plain(lang, "desk.x_scope"), scope.names.get(lang)]
    yield [t_plain(lang, "desk.x_period"), period.label()]
    for label, value in render.figure_lines(lang, report.total):
        yield [label, value]


def write_xlsx(rt: Runtime, scope: Scope, period: Period, lang: str, out: IO[bytes] | str) -> int:
    """The three sheets; returns the number of cases written."""
    from openpyxl import Workbook

    # The figures first: their working set is freed before the cases stream (a lower peak).
    figure_sheet = list(figure_rows(rt, scope, period, lang))
    book = Workbook(write_only=True)
    count = -1
    sheet = book.create_sheet(t_plain(lang, "desk.sheet_cases"))
    for row in case_rows(rt, scope, period, lang):
        sheet.append(row)
        count += 1
    sheet = book.create_sheet(t_plain(lang, "desk.sheet_timeline"))
    for row in timeline_rows(rt, scope, period, lang):
        sheet.append(row)
    sheet = book.create_sheet(t_plain(lang, "desk.sheet_figures"))
    for row in figure_sheet:
        sheet.append(row)
    book.save(out)
    return count


def write_csv(rt: Runtime, scope: Scope, period: Period, lang: str, out: IO[bytes]) -> int:
    """The cases sheet as CSV (UTF-8 with a BOM, so spreadsheet programs read the Chinese)."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    count = -1
    for row in case_rows(rt, scope, period, lang):
        writer.writerow(
            ["" if v is None else (v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else v) for v in row]
        )
        count += 1
    text.flush()
    text.detach()
    return count


def export_to(rt: Runtime, scope_code: str, first: str, last: str, lang: str, out: IO[bytes]) -> int:
    """The XLSX of a scope by code for the given days into a stream (the monthly report)."""
    scope = scopes.by_code(rt, scope_code)
    period = periods.between(date.fromisoformat(first), date.fromisoformat(last), ZoneInfo(scope.tz))
    return write_xlsx(rt, scope, period, lang, out)


def export_file(rt: Runtime, scope_code: str, first: str, last: str, fmt: str, out: str | Path, lang: str) -> int:
    """`griddesk export`: a scope by code (the operator sees everything), days as typed."""
    scope = scopes.by_code(rt, scope_code)
    try:
        period = periods.between(date.fromisoformat(first), date.fromisoformat(last), ZoneInfo(scope.tz))
    except ValueError:
        raise periods.BadPeriod(text=f"{first}..{last}") from None
    with open(out, "wb") as fh:
        if fmt == "csv":
            return write_csv(rt, scope, period, lang, fh)
        return write_xlsx(rt, scope, period, lang, fh)
