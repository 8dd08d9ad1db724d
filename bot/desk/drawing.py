"""Drawing the desk's pictures from what they show (:class:`ChartSpec` for /stats, :class:`MapSpec`
for /map; every text already translated): matplotlib and the shipped font, nothing of the bot.
They are drawn in a worker process (handlers/desk.py), which loads this module and no more;
bot/desk/render.py and bot/desk/maps.py decide what to show. Equal specs draw the same picture,
so a spec is also the key of a picture already sent."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from bot.fonts import CJK_FONT

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MATPLOTLIB_LOCK = threading.Lock()  # matplotlib's font cache and text layout are not thread-safe


@dataclass(frozen=True)
class Bars:
    """One series of horizontal bars, the first drawn at the top."""

    values: tuple[float, ...]
    colour: str
    legend: str | None = None  # shown in a legend when set
    texts: tuple[str, ...] = ()  # written just past each bar's end when set
    text_gap: float = 0.0
    text_size: int = 10


@dataclass(frozen=True)
class Panel:
    labels: tuple[str, ...]  # one per bar position, top first
    bars: tuple[Bars, ...]  # one series fills its rows; two share them
    title: str | None = None
    x_max: float | None = None
    label_size: int = 11


@dataclass(frozen=True)
class ChartSpec:
    """A 1080x1350 chart: a title, a short panel above and a taller one below."""

    title: str
    top: Panel
    bottom: Panel

    def texts(self) -> tuple[str, ...]:
        """Every text drawn (tests check the font has a glyph for each)."""
        out = [self.title]
        for panel in (self.top, self.bottom):
            out += panel.labels
            out += [b.legend for b in panel.bars if b.legend]
            if panel.title:
                out.append(panel.title)
        return tuple(out)


@cache
def font_family() -> str:
    """Register the shipped CJK font with matplotlib once; its family name."""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(CJK_FONT))
    return font_manager.FontProperties(fname=str(CJK_FONT)).get_name()


@contextmanager
def _figure(inches: tuple[float, float]) -> Iterator[tuple[Figure, str]]:
    """A blank figure at 150 dpi and the shipped font's family, under matplotlib's lock."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with MATPLOTLIB_LOCK:
        fig = Figure(figsize=inches, dpi=150)
        FigureCanvasAgg(fig)
        yield fig, font_family()


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def draw(spec: ChartSpec) -> bytes:
    """The chart as a PNG."""
    with _figure((7.2, 9.0)) as (fig, family):
        fig.suptitle(spec.title, fontsize=15, fontfamily=[family, "DejaVu Sans"])
        top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.4], "hspace": 0.35})
        for axes, panel in ((top, spec.top), (bottom, spec.bottom)):
            _panel(axes, panel, family)
        top.tick_params(axis="x", labelsize=10)
        fig.subplots_adjust(left=0.28, right=0.95, top=0.92, bottom=0.05)
        return _png(fig)


def _panel(ax: Axes, panel: Panel, family: str) -> None:
    ys = list(range(len(panel.labels)))[::-1]
    pair = len(panel.bars) == 2
    for i, series in enumerate(panel.bars):
        offset = (0.2 if i == 0 else -0.2) if pair else 0.0
        at = [y + offset for y in ys]
        ax.barh(at, series.values, height=0.4 if pair else 0.6, color=series.colour, label=series.legend)
        for y, value, text in zip(at, series.values, series.texts, strict=False):
            ax.text(value + series.text_gap, y, text, va="center", fontsize=series.text_size, fontfamily=family)
    ax.set_yticks(ys, panel.labels, fontfamily=family, fontsize=panel.label_size)
    if panel.x_max is not None:
        ax.set_xlim(0, panel.x_max)
    if panel.title:
        ax.set_title(panel.title, fontfamily=family, fontsize=13)
    if any(series.legend for series in panel.bars):
        ax.legend(prop={"family": family, "size": 10}, loc="lower right")
    ax.spines[["top", "right"]].set_visible(False)


@dataclass(frozen=True)
class MapSpec:
    """A 1080x1080 map: grid polygons and codes, the cases as coloured points, a legend."""

    title: str
    polygons: tuple[tuple[tuple[float, float], ...], ...]  # (lon, lat) rings
    codes: tuple[tuple[str, float, float], ...]  # a grid's code and where it is written
    series: tuple[tuple[str, str, tuple[float, ...], tuple[float, ...]], ...]  # legend, colour, lons, lats
    box: tuple[float, float, float, float] | None  # lon_min, lon_max, lat_min, lat_max; None: nothing to show
    tile_url: str | None  # an XYZ template for base tiles (fetched by the drawing), or None

    def texts(self) -> tuple[str, ...]:
        return (self.title, *(code for code, _, _ in self.codes), *(label for label, _, _, _ in self.series))


def draw_map(spec: MapSpec) -> bytes:
    """The map as a PNG."""
    from matplotlib.collections import PolyCollection

    with _figure((7.2, 7.2)) as (fig, family):
        ax = fig.add_subplot(1, 1, 1)
        face = (0.95, 0.95, 0.95, 0.3) if spec.tile_url else "#f2f2f2"  # the tiles show through
        if spec.polygons:
            ax.add_collection(PolyCollection(spec.polygons, facecolors=face, edgecolors="#555555", linewidths=0.8))
        for code, x, y in spec.codes:
            ax.text(x, y, code, fontsize=6, ha="center", va="center", color="#333333", fontfamily=family)
        for label, paint, xs, ys in spec.series:
            ax.scatter(xs, ys, s=10, c=paint, label=label, alpha=0.8, edgecolors="none")
        if spec.box is not None:
            lon_min, lon_max, lat_min, lat_max = spec.box
            ax.set_xlim(lon_min, lon_max)
            ax.set_ylim(lat_min, lat_max)
            if spec.tile_url:
                from bot.desk import tiles

                under = tiles.base(spec.tile_url, lon_min, lon_max, lat_min, lat_max)
                if under is not None:
                    ax.imshow(under[0], extent=under[1], zorder=0, aspect="auto", interpolation="bilinear")
                    ax.set_xlim(lon_min, lon_max)
                    ax.set_ylim(lat_min, lat_max)
            ax.set_aspect(1 / math.cos(math.radians((lat_min + lat_max) / 2)))
        ax.set_title(spec.title, fontfamily=family, fontsize=13)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        if spec.series:
            ax.legend(prop={"family": family, "size": 9}, loc="upper right", framealpha=0.9)
        fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.06)
        return _png(fig)
