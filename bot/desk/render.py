"""The desk's figures as people read them: a text summary (one figure a line, its label
first: ``响应率 80%``) and a chart (PNG, readable on a phone, Chinese from the shipped font)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from bot.desk import drawing
from bot.desk.drawing import Bars, ChartSpec, Panel
from bot.desk.figures import Figures, Report
from bot.fonts import CJK_FONT
from bot.i18n import N_, t_plain

FONT_PATH = CJK_FONT
NONE = "—"


def percent(value: float | None) -> str:
    return NONE if value is None else f"{round(value * 100)}%"


def hours(value: float | None) -> str:
    return NONE if value is None else f"{value:.1f}"


RATES: tuple[tuple[str, str], ...] = (
    (N_("desk.f_response_rate"), "response_rate"),
    (N_("desk.f_closure_rate"), "closure_rate"),
    (N_("desk.f_on_time_rate"), "on_time_rate"),
    (N_("desk.f_satisfaction_rate"), "satisfaction_rate"),
    (N_("desk.f_participation_rate"), "participation_rate"),
)


def figure_lines(lang: str, f: Figures) -> list[tuple[str, str]]:
    """(label, value) for every figure, in reading order."""
    return [
        (t_plain(lang, "desk.f_received"), str(f.received)),
        (t_plain(lang, "desk.f_dispatched"), str(f.dispatched)),
        *((t_plain(lang, key), percent(getattr(f, attr))) for key, attr in RATES),
        (t_plain(lang, "desk.f_closed"), str(f.closed)),
        (t_plain(lang, "desk.f_verified_first_time"), str(f.verified_first_time)),
        (t_plain(lang, "desk.f_reopened"), str(f.reopened)),
        (t_plain(lang, "desk.f_overdue_now"), str(f.overdue_now)),
        (t_plain(lang, "desk.f_overdue_at_closure"), str(f.overdue_at_closure)),
        (t_plain(lang, "desk.f_avg_hours"), hours(f.avg_handling_hours)),
        (t_plain(lang, "desk.f_p90_hours"), hours(f.p90_handling_hours)),
        (t_plain(lang, "desk.f_whistles"), str(f.whistles)),
        (t_plain(lang, "desk.f_report_in_hours"), hours(f.avg_report_in_hours)),
    ]


def summary(lang: str, f: Figures) -> list[str]:
    return [f"{label} {value}" for label, value in figure_lines(lang, f)]


def breakdown_label(lang: str, breakdown: str) -> str:
    return t_plain(lang, _BREAKDOWN_KEYS[breakdown])


_BREAKDOWN_KEYS = {
    "street": N_("desk.by_street"),
    "team": N_("desk.by_team"),
    "department": N_("desk.by_department"),
    "grid": N_("desk.by_grid"),
    "person": N_("desk.by_person"),
    "category": N_("desk.by_category"),
}


# --- the chart ---------------------------------------------------------------------------------

# Drawing lives in bot/desk/drawing.py (a worker process draws it); here, what it shows.


@dataclass(frozen=True)
class Chart:
    png: bytes
    labels: tuple[str, ...]  # every text drawn (for tests: no missing glyphs)


def chart_spec(lang: str, report: Report, title: str) -> ChartSpec:
    """The five rates as bars, then the breakdown (received and closed per group, the ten
    largest) or, without one, the counts."""
    f = report.total
    rates = [getattr(f, attr) for _, attr in RATES]
    top = Panel(
        labels=tuple(t_plain(lang, key) for key, _ in RATES),
        bars=(
            Bars(
                tuple(100 * (v or 0) for v in rates),
                "#2b7bba",
                texts=tuple(map(percent, rates)),
                text_gap=1.5,
                text_size=11,
            ),
        ),
        x_max=110,
        label_size=12,
    )
    if report.breakdown and report.groups:
        groups = report.groups[:10]
        bottom = Panel(
            labels=tuple(g.names.get(lang)[:14] for g in groups),
            bars=(
                Bars(tuple(g.figures.received for g in groups), "#9ecae1", legend=t_plain(lang, "desk.f_received")),
                Bars(tuple(g.figures.closed for g in groups), "#08519c", legend=t_plain(lang, "desk.f_closed")),
            ),
            title=breakdown_label(lang, report.breakdown),
            label_size=10,
        )
    else:
        counts = [(label, value) for label, value in figure_lines(lang, f) if not value.endswith("%")][:7]
        bottom = Panel(
            labels=tuple(label for label, _ in counts),
            bars=(
                Bars(
                    tuple(float(v) if v != NONE else 0.0 for _, v in counts),
                    "#6baed6",
                    texts=tuple(f" {v}" for _, v in counts),
                ),
            ),
        )
    return ChartSpec(title, top, bottom)


def chart(lang: str, report: Report, title: str) -> Chart:
    """The chart drawn here, in this process (the bot draws it in a worker: handlers/desk.py)."""
    spec = chart_spec(lang, report, title)
    return Chart(drawing.draw(spec), spec.texts())


def missing_glyphs(text: str) -> set[str]:
    """Characters of `text` the shipped font has no glyph for (whitespace aside)."""

    cmap = _cmap()
    return {c for c in text if not c.isspace() and ord(c) not in cmap}


@cache
def _cmap() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(str(FONT_PATH), lazy=True)
    return frozenset(font.getBestCmap())
