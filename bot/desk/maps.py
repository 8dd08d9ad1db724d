"""The map (/map): the scope's grid polygons from the organisation file, the period's cases
as points coloured by state (overdue apart) or by category, a legend and the grid codes. Rendered offline
with matplotlib (no tile server)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime

from bot.desk import figures, render, scopes, tiles
from bot.desk.periods import Period
from bot.desk.scopes import Scope
from bot.i18n import N_, t_plain
from bot.org import index
from bot.runtime import Runtime
from storage import desk as rows
from storage.models import CaseState

# (key, colour) per class of point, in legend order
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("waiting_dispatch", N_("desk.m_reported"), "#9e9e9e"),
    ("open", N_("desk.m_open"), "#1f77b4"),
    ("overdue", N_("desk.m_overdue"), "#d62728"),
    ("waiting", N_("desk.m_waiting"), "#ff7f0e"),
    ("closed", N_("desk.m_closed"), "#2ca02c"),
    ("other", N_("desk.m_other"), "#bcbd22"),
)


# Colouring: by state (the default) or by category (the 12 commonest; the rest as one "other").
BY_STATE, BY_CATEGORY = "state", "category"
COLOURINGS = (BY_STATE, BY_CATEGORY)
CATEGORY_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39",
)  # fmt: skip
OTHER_COLOUR = "#9e9e9e"


@dataclass(frozen=True)
class MapImage:
    png: bytes
    labels: tuple[str, ...]
    cases: int
    grids: int


def _class(state: str, overdue: bool) -> str:
    if state in (CaseState.REPORTED, CaseState.RETURNED):
        return "waiting_dispatch"
    if state == CaseState.RESOLVED:
        return "waiting"
    if state == CaseState.CLOSED:
        return "closed"
    if state in CaseState.FINAL:
        return "other"
    return "overdue" if overdue else "open"


def _rings(boundary: dict | None) -> list[list[tuple[float, float]]]:
    if not boundary:
        return []
    coords = boundary.get("coordinates") or []
    polys = coords if boundary.get("type") == "MultiPolygon" else [coords]
    return [[(float(x), float(y)) for x, y in poly[0]] for poly in polys if poly]


def _series(
    rt: Runtime, pts: list[tuple[float, float, str, datetime | None, int | None]], lang: str, colour: str, now: datetime
) -> list[tuple[str, str, list[float], list[float]]]:
    """(legend label, colour, xs, ys) per class of point, in legend order."""
    if colour == BY_CATEGORY:
        known = index.org(rt)
        groups: dict[int | None, tuple[list[float], list[float]]] = {}
        for lat, lon, _state, _due, cat in pts:
            xs, ys = groups.setdefault(cat, ([], []))
            xs.append(lon)
            ys.append(lat)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1][0]), kv[0] or 0))
        out = []
        for (cat, (xs, ys)), paint in zip(ordered, CATEGORY_COLOURS, strict=False):
            row = known.category(cat)
            name = (row.name_zh if lang == "zh_CN" else row.name_en) if row else t_plain(lang, "desk.m_other")
            out.append((f"{name} ({len(xs)})", paint, xs, ys))
        rest = ordered[len(CATEGORY_COLOURS) :]
        if rest:
            xs = [x for _, (rx, _) in rest for x in rx]
            ys = [y for _, (_, ry) in rest for y in ry]
            out.append((f"{t_plain(lang, 'desk.m_other')} ({len(xs)})", OTHER_COLOUR, xs, ys))
        return out
    by_class: dict[str, tuple[list[float], list[float]]] = {}
    for lat, lon, state, due, _cat in pts:
        key = _class(state, due is not None and due < now)
        xs, ys = by_class.setdefault(key, ([], []))
        xs.append(lon)
        ys.append(lat)
    return [
        (f"{t_plain(lang, label_key)} ({len(by_class[key][0])})", paint, *by_class[key])
        for key, label_key, paint in CLASSES
        if key in by_class
    ]


def draw(rt: Runtime, scope: Scope, period: Period, lang: str, title: str, colour: str = BY_STATE) -> MapImage:
    """The map; `colour` is BY_STATE or BY_CATEGORY."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    known = index.org(rt)
    now = rt.clock.now()
    with rt.db.read() as s:
        pts = rows.points(s, figures.case_filter(scope, period))
    grids = [g for g in known.grids.values() if g.active]
    if scope.kind == scopes.GRID:
        grids = [g for g in grids if g.id == scope.grid_id]
    elif scope.kind == scopes.STREET and scope.street_ids is not None:
        grids = [g for g in grids if g.street_id in scope.street_ids]
    elif scope.kind == scopes.TEAM:
        unit = known.unit(scope.unit_id)
        grids = [g for g in grids if unit is not None and g.street_id == unit.street_id]
    labels = [title]
    with render._LOCK:
        family = render.font_family()
        fig = Figure(figsize=(7.2, 7.2), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        polys = [ring for g in grids for ring in _rings(g.boundary)]
        tile_url = rt.settings.map_tile_url
        face = (0.95, 0.95, 0.95, 0.3) if tile_url else "#f2f2f2"  # the tiles show through
        if polys:
            ax.add_collection(PolyCollection(polys, facecolors=face, edgecolors="#555555", linewidths=0.8))
        for g in grids:
            rings = _rings(g.boundary)
            if g.centre_lon is not None and g.centre_lat is not None:
                x, y = g.centre_lon, g.centre_lat
            elif rings:
                x = sum(p[0] for p in rings[0]) / len(rings[0])
                y = sum(p[1] for p in rings[0]) / len(rings[0])
            else:
                continue
            if rings:  # above the centre, clear of the points drawn there
                top = max(p[1] for p in rings[0])
                y += (top - y) * 0.45
            ax.text(x, y, g.code, fontsize=6, ha="center", va="center", color="#333333", fontfamily=family)
            labels.append(g.code)
        series = _series(rt, pts, lang, colour, now)
        for label, paint, xs, ys in series:
            ax.scatter(xs, ys, s=10, c=paint, label=label, alpha=0.8, edgecolors="none")
            labels.append(label)
        all_x = [p[0] for ring in polys for p in ring] + [p[1] for p in pts]
        all_y = [p[1] for ring in polys for p in ring] + [p[0] for p in pts]
        if all_x:
            pad_x = (max(all_x) - min(all_x)) * 0.05 or 0.001
            pad_y = (max(all_y) - min(all_y)) * 0.05 or 0.001
            ax.set_xlim(min(all_x) - pad_x, max(all_x) + pad_x)
            ax.set_ylim(min(all_y) - pad_y, max(all_y) + pad_y)
            aspect = 1 / math.cos(math.radians((min(all_y) + max(all_y)) / 2))
            if tile_url:
                limits = ax.get_xlim(), ax.get_ylim()
                under = tiles.base(tile_url, *limits[0], *limits[1])
                if under is not None:
                    ax.imshow(under[0], extent=under[1], zorder=0, aspect="auto", interpolation="bilinear")
                    ax.set_xlim(*limits[0])
                    ax.set_ylim(*limits[1])
            ax.set_aspect(aspect)
        ax.set_title(title, fontfamily=family, fontsize=13)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        if series:
            ax.legend(prop={"family": family, "size": 9}, loc="upper right", framealpha=0.9)
        fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.06)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return MapImage(buf.getvalue(), tuple(labels), len(pts), len(grids))
