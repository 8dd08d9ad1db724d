"""The map (/map): the scope's grid polygons from the organisation file, the period's cases
as points coloured by state (overdue apart) or by category, a legend and the grid codes. Drawn
offline with matplotlib (bot/desk/drawing.py), over base tiles only where the operator sets a
tile server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.desk import drawing, figures, scopes
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


@dataclass(frozen=True)
class Drawn:
    """What :func:`spec` found beside the picture's content: for the caption and tests."""

    spec: drawing.MapSpec
    cases: int
    grids: int


def spec(rt: Runtime, scope: Scope, period: Period, lang: str, title: str, colour: str = BY_STATE) -> Drawn:
    """What the map shows; `colour` is BY_STATE or BY_CATEGORY. The database work is here; the
    drawing (bot/desk/drawing.py) runs in a worker process."""
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
    polys = [ring for g in grids for ring in _rings(g.boundary)]
    codes = []
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
        codes.append((g.code, x, y))
    series = tuple((label, paint, tuple(xs), tuple(ys)) for label, paint, xs, ys in _series(rt, pts, lang, colour, now))
    all_x = [p[0] for ring in polys for p in ring] + [p[1] for p in pts]
    all_y = [p[1] for ring in polys for p in ring] + [p[0] for p in pts]
    box = None
    if all_x:
        pad_x = (max(all_x) - min(all_x)) * 0.05 or 0.001
        pad_y = (max(all_y) - min(all_y)) * 0.05 or 0.001
        box = (min(all_x) - pad_x, max(all_x) + pad_x, min(all_y) - pad_y, max(all_y) + pad_y)
    shown = drawing.MapSpec(
        title=title,
        polygons=tuple(tuple(ring) for ring in polys),
        codes=tuple(codes),
        series=series,
        box=box,
        tile_url=rt.settings.map_tile_url or None,
    )
    return Drawn(shown, len(pts), len(grids))


def draw(rt: Runtime, scope: Scope, period: Period, lang: str, title: str, colour: str = BY_STATE) -> MapImage:
    """The map drawn here, in this process (the bot draws it in a worker: handlers/desk.py)."""
    found = spec(rt, scope, period, lang, title, colour)
    return MapImage(drawing.draw_map(found.spec), found.spec.texts(), found.cases, found.grids)
