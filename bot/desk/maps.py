"""The map (/map): the scope's grid polygons from the organisation file, the period's cases
as points coloured by state (overdue apart), a legend and the grid codes. Rendered offline
with matplotlib (no tile server)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from bot.desk import figures, render, scopes
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


def draw(rt: Runtime, scope: Scope, period: Period, lang: str, title: str) -> MapImage:
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
        if polys:
            ax.add_collection(PolyCollection(polys, facecolors="#f2f2f2", edgecolors="#555555", linewidths=0.8))
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
        by_class: dict[str, tuple[list[float], list[float]]] = {}
        for lat, lon, state, due in pts:
            key = _class(state, due is not None and due < now)
            xs, ys = by_class.setdefault(key, ([], []))
            xs.append(lon)
            ys.append(lat)
        for key, label_key, colour in CLASSES:
            if key in by_class:
                xs, ys = by_class[key]
                label = f"{t_plain(lang, label_key)} ({len(xs)})"
                ax.scatter(xs, ys, s=10, c=colour, label=label, alpha=0.8, edgecolors="none")
                labels.append(label)
        all_x = [p[0] for ring in polys for p in ring] + [p[1] for p in pts]
        all_y = [p[1] for ring in polys for p in ring] + [p[0] for p in pts]
        if all_x:
            pad_x = (max(all_x) - min(all_x)) * 0.05 or 0.001
            pad_y = (max(all_y) - min(all_y)) * 0.05 or 0.001
            ax.set_xlim(min(all_x) - pad_x, max(all_x) + pad_x)
            ax.set_ylim(min(all_y) - pad_y, max(all_y) + pad_y)
            ax.set_aspect(1 / math.cos(math.radians((min(all_y) + max(all_y)) / 2)))
        ax.set_title(title, fontfamily=family, fontsize=13)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        if by_class:
            ax.legend(prop={"family": family, "size": 9}, loc="upper right", framealpha=0.9)
        fig.subplots_adjust(left=0.08, right=0.97, top=0.93, bottom=0.06)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return MapImage(buf.getvalue(), tuple(labels), len(pts), len(grids))
