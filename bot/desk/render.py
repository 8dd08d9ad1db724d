"""The desk's figures as people read them: a text summary (one figure a line, its label
first: ``响应率 80%``) and a chart (PNG, readable on a phone, Chinese from the shipped font)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import cache

from bot.desk.figures import Figures, Report
from bot.fonts import CJK_FONT
from bot.i18n import N_, t_plain

FONT_PATH = CJK_FONT
NONE = "—"
_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


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


@cache
def font_family() -> str:
    """Register the shipped CJK font with matplotlib once; its family name."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(FONT_PATH))
    return font_manager.FontProperties(fname=str(FONT_PATH)).get_name()


@dataclass(frozen=True)
class Chart:
    png: bytes
    labels: tuple[str, ...]  # every text drawn (for tests: no missing glyphs)


def chart(lang: str, report: Report, title: str) -> Chart:
    """A 1080x1350 PNG: the five rates as bars, then the breakdown (received and closed per
    group, the ten largest) or, without one, the counts."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels: list[str] = [title]
    with _LOCK:
        family = font_family()
        fig = Figure(figsize=(7.2, 9.0), dpi=150)
        FigureCanvasAgg(fig)
        fig.suptitle(title, fontsize=15, fontfamily=[family, "DejaVu Sans"])
        top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.4], "hspace": 0.35})
        f = report.total
        rate_labels = [t_plain(lang, key) for key, _ in RATES]
        values = [getattr(f, attr) for _, attr in RATES]
        ys = list(range(len(rate_labels)))[::-1]
        top.barh(ys, [100 * (v or 0) for v in values], color="#2b7bba", height=0.6)
        top.set_yticks(ys, rate_labels, fontfamily=family, fontsize=12)
        top.set_xlim(0, 110)
        top.tick_params(axis="x", labelsize=10)
        for y, v in zip(ys, values, strict=True):
            top.text((100 * v if v else 0) + 1.5, y, percent(v), va="center", fontsize=11, fontfamily=family)
        top.spines[["top", "right"]].set_visible(False)
        labels += rate_labels
        if report.breakdown and report.groups:
            groups = report.groups[:10]
            names = [g.names.get(lang)[:14] for g in groups]
            ys = list(range(len(groups)))[::-1]
            received = [g.figures.received for g in groups]
            closed = [g.figures.closed for g in groups]
            recv_label, closed_label = t_plain(lang, "desk.f_received"), t_plain(lang, "desk.f_closed")
            bottom.barh([y + 0.2 for y in ys], received, height=0.4, color="#9ecae1", label=recv_label)
            bottom.barh([y - 0.2 for y in ys], closed, height=0.4, color="#08519c", label=closed_label)
            bottom.set_yticks(ys, names, fontfamily=family, fontsize=10)
            by = breakdown_label(lang, report.breakdown)
            bottom.set_title(by, fontfamily=family, fontsize=13)
            bottom.legend(prop={"family": family, "size": 10}, loc="lower right")
            labels += [*names, recv_label, closed_label, by]
        else:
            counts = [(label, value) for label, value in figure_lines(lang, f) if not value.endswith("%")][:7]
            count_labels = [label for label, _ in counts]
            nums = [float(v) if v != NONE else 0.0 for _, v in counts]
            ys = list(range(len(counts)))[::-1]
            bottom.barh(ys, nums, color="#6baed6", height=0.6)
            bottom.set_yticks(ys, count_labels, fontfamily=family, fontsize=11)
            for y, (_, v), n in zip(ys, counts, nums, strict=True):
                bottom.text(n, y, f" {v}", va="center", fontsize=10, fontfamily=family)
            labels += count_labels
        bottom.spines[["top", "right"]].set_visible(False)
        fig.subplots_adjust(left=0.28, right=0.95, top=0.92, bottom=0.05)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return Chart(buf.getvalue(), tuple(labels))


def missing_glyphs(text: str) -> set[str]:
    """Characters of `text` the shipped font has no glyph for (whitespace aside)."""

    cmap = _cmap()
    return {c for c in text if not c.isspace() and ord(c) not in cmap}


@cache
def _cmap() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(str(FONT_PATH), lazy=True)
    return frozenset(font.getBestCmap())
