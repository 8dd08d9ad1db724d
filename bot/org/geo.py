"""Plain geography for grids: which grid a point is in, what is near, distances, map links.

No Telegram and no database here: callers load the grids and pass plain data in.

Conventions: GeoJSON boundaries are (lon, lat) as GeoJSON says; everything else in this
module's API is (lat, lon), the order people and Telegram use. Coordinates are WGS-84
(what phones and Telegram send) unless a function says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape as _geojson_shape
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6371008.8  # mean Earth radius (IUGG), metres
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0  # metres per degree of latitude


# --------------------------------------------------------------------------- distances


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two (lat, lon) points on a spherical Earth."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) of a box holding every point within radius_m.

    Meant as an indexed SQL prefilter before the exact haversine check. The longitude
    half-width is the exact tangent-point value asin(sin d / cos lat), which is a little
    wider than the naive d / cos lat, so the box never cuts off a point in the circle.
    When the circle reaches a pole or crosses the antimeridian the box spans every
    longitude (-180..180): still correct, just less selective.
    """
    radius_m = max(0.0, float(radius_m))
    d = radius_m / EARTH_RADIUS_M  # angular radius, radians
    dlat = math.degrees(d)
    min_lat = lat - dlat
    max_lat = lat + dlat
    if min_lat <= -90.0 or max_lat >= 90.0:
        return (max(min_lat, -90.0), min(max_lat, 90.0), -180.0, 180.0)
    cos_lat = math.cos(math.radians(lat))
    ratio = math.sin(d) / cos_lat if cos_lat > 1e-12 else 2.0
    if ratio >= 1.0:
        return (min_lat, max_lat, -180.0, 180.0)
    dlon = math.degrees(math.asin(ratio))
    min_lon = lon - dlon
    max_lon = lon + dlon
    if min_lon < -180.0 or max_lon > 180.0:
        return (min_lat, max_lat, -180.0, 180.0)
    return (min_lat, max_lat, min_lon, max_lon)


def valid_coordinates(lat: Any, lon: Any) -> bool:
    """Finite numbers in range, and not exactly (0, 0): "null island" is what broken GPS sends."""
    if isinstance(lat, bool) or isinstance(lon, bool):
        return False
    try:
        lat = float(lat)
        lon = float(lon)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return False
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return False
    return not (lat == 0.0 and lon == 0.0)


# --------------------------------------------------------------------------- map links


def map_link(lat: float, lon: float) -> str:
    """An OpenStreetMap link with a marker at the point, zoomed to street level."""
    la, lo = f"{lat:.6f}", f"{lon:.6f}"
    return f"https://www.openstreetmap.org/?mlat={la}&mlon={lo}#map=18/{la}/{lo}"


def amap_link(lat: float, lon: float) -> str:
    """A 高德 (AMap) marker link for a WGS-84 point (converted to GCJ-02, as AMap expects)."""
    glat, glon = wgs84_to_gcj02(lat, lon)
    return f"https://uri.amap.com/marker?position={glon:.6f},{glat:.6f}&coordinate=gaode"


# GCJ-02 ("Mars coordinates"), the obfuscated datum that maps in mainland China use. This
# is the well-known public approximation (Krasovsky ellipsoid constants); it agrees with
# the official transform to within a metre or so.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323


def out_of_china(lat: float, lon: float) -> bool:
    """The rough rectangle the public GCJ-02 formula is applied in."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _gcj_dlat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _gcj_dlon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) WGS-84 → (lat, lon) GCJ-02; points outside China are returned unchanged."""
    if out_of_china(lat, lon):
        return (lat, lon)
    x = lon - 105.0
    y = lat - 35.0
    dlat = _gcj_dlat(x, y)
    dlon = _gcj_dlon(x, y)
    rad_lat = math.radians(lat)
    magic = 1.0 - _GCJ_EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return (lat + dlat, lon + dlon)


# --------------------------------------------------------------------------- grid index


@dataclass(frozen=True)
class GridShape:
    """One grid as the index needs it. boundary is GeoJSON (lon/lat); centre is (lat, lon)."""

    grid_id: int
    code: str
    boundary: dict | None = None
    centre: tuple[float, float] | None = None


def boundary_geometry(boundary: dict | None) -> BaseGeometry | None:
    """A 2D shapely (Multi)Polygon from a GeoJSON boundary; None when absent or without area.

    Raises ValueError for something that is not a GeoJSON Polygon or MultiPolygon. A
    self-intersecting ring is repaired (make_valid) rather than rejected.
    """
    if boundary is None:
        return None
    kind = boundary.get("type") if isinstance(boundary, dict) else None
    if kind not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"a grid boundary must be a GeoJSON Polygon or MultiPolygon, not {kind!r}")
    try:
        geom = shapely.force_2d(_geojson_shape(boundary))
    except Exception as exc:  # malformed coordinates: shapely raises several kinds
        raise ValueError(f"malformed {kind} boundary: {exc}") from exc
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        if geom.geom_type == "GeometryCollection":
            polys = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
            geom = shapely.union_all(polys) if polys else shapely.Polygon()
    if geom.is_empty or geom.area <= 0.0:
        return None
    return geom


def _area_m2(geom: BaseGeometry) -> float:
    """Approximate area in m² (degrees² scaled at the centroid's latitude): only compared."""
    lat = geom.centroid.y
    return geom.area * _M_PER_DEG * _M_PER_DEG * math.cos(math.radians(lat))


class GridIndex:
    """Point-in-grid and nearby-grid lookups over a fixed set of grids.

    Build once (e.g. at start-up or after an org import) and reuse: construction prepares
    every polygon and builds an STRtree, lookups are then a few microseconds each.
    """

    def __init__(self, shapes: Iterable[GridShape]) -> None:
        shapes = list(shapes)
        self._shapes: dict[int, GridShape] = {}
        self._centres: dict[int, tuple[float, float]] = {}
        poly_ids: list[int] = []
        polys: list[BaseGeometry] = []
        point_ids: list[int] = []
        points: list[BaseGeometry] = []
        for s in shapes:
            if s.grid_id in self._shapes:
                raise ValueError(f"grid id {s.grid_id} appears twice ({self._shapes[s.grid_id].code!r}, {s.code!r})")
            self._shapes[s.grid_id] = s
            try:
                geom = boundary_geometry(s.boundary)
            except ValueError as exc:
                raise ValueError(f"grid {s.code!r}: {exc}") from exc
            if s.centre is not None:
                self._centres[s.grid_id] = (float(s.centre[0]), float(s.centre[1]))
            elif geom is not None:
                rp = geom.representative_point()  # inside the polygon, unlike the centroid
                self._centres[s.grid_id] = (rp.y, rp.x)
            if geom is not None:
                poly_ids.append(s.grid_id)
                polys.append(geom)
            elif s.grid_id in self._centres:
                lat, lon = self._centres[s.grid_id]
                point_ids.append(s.grid_id)
                points.append(shapely.Point(lon, lat))

        self._poly_ids = poly_ids
        self._polys = _object_array(polys)
        shapely.prepare(self._polys)
        # Tie-break for overlapping grids: smaller area first (rounded to 1 m² so float
        # noise between equal squares cannot decide), then the smaller grid id.
        self._rank = [(round(_area_m2(g)), gid) for g, gid in zip(polys, poly_ids, strict=False)]
        self._tree = shapely.STRtree(self._polys)
        # locate() memoises, per cell of a coarse lon/lat lattice, the STRtree's candidates
        # in tie-break order: a lookup is then one dict hit plus one or two prepared
        # point-in-polygon tests, instead of building a Point and walking the tree.
        if polys:
            bounds = shapely.bounds(self._polys)
            spans = np.maximum(bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1])
            cell = float(np.clip(np.median(spans), 1e-4, 1.0))
        else:
            cell = 1.0
        self._cell = cell
        self._inv_cell = 1.0 / cell
        self._cells: dict[tuple[int, int], tuple[int, ...]] = {}
        self._point_ids = point_ids
        self._points = _object_array(points)
        self._point_tree = shapely.STRtree(self._points)

    def __len__(self) -> int:
        return len(self._shapes)

    def __contains__(self, grid_id: object) -> bool:
        return grid_id in self._shapes

    def shape(self, grid_id: int) -> GridShape | None:
        return self._shapes.get(grid_id)

    def centre_of(self, grid_id: int) -> tuple[float, float] | None:
        """(lat, lon) given for the grid, else a point inside its boundary, else None."""
        return self._centres.get(grid_id)

    def locate(self, lat: float, lon: float) -> int | None:
        """The grid whose boundary contains or touches the point (smallest if several)."""
        if not (math.isfinite(lat) and math.isfinite(lon)):
            return None
        key = (math.floor(lon * self._inv_cell), math.floor(lat * self._inv_cell))
        candidates = self._cells.get(key)
        if candidates is None:
            candidates = self._cell_candidates(key)
        polys = self._polys
        for i in candidates:
            if _intersects_xy(polys[i], lon, lat):
                return self._poly_ids[i]
        return None

    def _cell_candidates(self, key: tuple[int, int]) -> tuple[int, ...]:
        if not self._poly_ids:
            return ()
        x0, y0 = key[0] * self._cell, key[1] * self._cell
        # The cell box is closed and slightly padded, so a point on a cell's edge still
        # finds every polygon that touches it whichever cell floor() put it in.
        pad = self._cell * 1e-9
        found = self._tree.query(shapely.box(x0 - pad, y0 - pad, x0 + self._cell + pad, y0 + self._cell + pad))
        candidates = tuple(sorted(found.tolist(), key=self._rank.__getitem__))
        if len(self._cells) >= _MAX_CACHED_CELLS:
            self._cells.clear()
        self._cells[key] = candidates
        return candidates

    def locate_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[int | None]:
        """locate() for many points at once (vectorised; same answers as calling locate)."""
        lat_a = np.asarray(lats, dtype=float)
        lon_a = np.asarray(lons, dtype=float)
        if lat_a.shape != lon_a.shape or lat_a.ndim != 1:
            raise ValueError("lats and lons must be 1-D sequences of the same length")
        out: list[int | None] = [None] * len(lat_a)
        if not self._poly_ids or not len(lat_a):
            return out
        ok = np.isfinite(lat_a) & np.isfinite(lon_a)
        pts = shapely.points(np.where(ok, lon_a, 0.0), np.where(ok, lat_a, 0.0))
        pts[~ok] = None
        inp, tree_i = self._tree.query(pts)
        if len(inp):
            hit = shapely.intersects(self._polys[tree_i], pts[inp])
            best: dict[int, int] = {}
            for p, t in zip(inp[hit].tolist(), tree_i[hit].tolist(), strict=False):
                b = best.get(p)
                if b is None or self._rank[t] < self._rank[b]:
                    best[p] = t
            for p, t in best.items():
                out[p] = self._poly_ids[t]
        return out

    def nearest(self, lat: float, lon: float, max_km: float) -> list[tuple[int, float]]:
        """(grid_id, metres) of the grids within max_km of the point, nearest first.

        Distance is to the boundary (0 when the point is inside or on it); a grid with no
        boundary but a centre is measured to its centre. Ties go to the smaller grid id.
        """
        if not (math.isfinite(lat) and math.isfinite(lon)) or not math.isfinite(max_km) or max_km < 0:
            return []
        max_m = max_km * 1000.0
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, max_m)
        box = shapely.box(min_lon, min_lat, max_lon, max_lat)
        found: list[tuple[float, int]] = []

        if self._poly_ids:
            cands = self._tree.query(box)
            if len(cands):
                geoms = self._polys[cands]
                inside = shapely.intersects_xy(geoms, lon, lat)
                for i in cands[inside].tolist():
                    found.append((0.0, self._poly_ids[i]))
                outside = cands[~inside]
                if len(outside):
                    k_lat = _M_PER_DEG
                    k_lon = max(_M_PER_DEG * math.cos(math.radians(lat)), 1e-9)

                    def to_local(xy: np.ndarray) -> np.ndarray:  # flat metres, point at 0,0
                        return np.column_stack(((xy[:, 0] - lon) * k_lon, (xy[:, 1] - lat) * k_lat))

                    # The local flat projection only picks each polygon's nearest point; the
                    # distance to it is then the haversine, so figures agree with haversine_m.
                    local = shapely.transform(self._polys[outside], to_local)
                    ends = shapely.get_coordinates(shapely.shortest_line(local, _ORIGIN)).reshape(-1, 2, 2)
                    near_lon = lon + ends[:, 0, 0] / k_lon
                    near_lat = lat + ends[:, 0, 1] / k_lat
                    dists = _haversine_np(lat, lon, near_lat, near_lon)
                    for i, d in zip(outside.tolist(), dists.tolist(), strict=False):
                        if d <= max_m:
                            found.append((d, self._poly_ids[i]))

        if self._point_ids:
            for i in self._point_tree.query(box).tolist():
                gid = self._point_ids[i]
                clat, clon = self._centres[gid]
                d = haversine_m(lat, lon, clat, clon)
                if d <= max_m:
                    found.append((d, gid))

        found.sort()
        return [(gid, d) for d, gid in found]


_ORIGIN = shapely.Point(0.0, 0.0)
_MAX_CACHED_CELLS = 200_000
# shapely 2.2's scalar fast path (uses the prepared polygon, no Point object); the public
# ufunc gives the same answer a little slower.
_intersects_xy = getattr(shapely.lib, "intersects_xy_scalar", shapely.intersects_xy)


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)  # np.array() might try to unpack geometries
    out[:] = items
    return out


def _haversine_np(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    p1 = math.radians(lat)
    p2 = np.radians(lats)
    dl = np.radians(lons - lon)
    h = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


if __name__ == "__main__":  # python -m bot.org.geo: a quick timing of 1,000 grids × 100,000 lookups
    import random
    import time

    side = 0.004  # ≈ 400 m squares, a 40 × 25 block around Hangzhou
    shapes = []
    for n in range(1000):
        x0 = 120.0 + (n % 40) * side
        y0 = 30.0 + (n // 40) * side
        ring = [[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side], [x0, y0]]
        shapes.append(GridShape(n + 1, f"G{n + 1:04d}", {"type": "Polygon", "coordinates": [ring]}, None))
    t0 = time.perf_counter()
    index = GridIndex(shapes)
    t1 = time.perf_counter()
    rnd = random.Random(1)
    pts = [(30.0 + rnd.random() * 0.11, 119.99 + rnd.random() * 0.18) for _ in range(100_000)]
    t2 = time.perf_counter()
    hits = sum(index.locate(la, lo) is not None for la, lo in pts)
    t3 = time.perf_counter()
    many = index.locate_many([p[0] for p in pts], [p[1] for p in pts])
    t4 = time.perf_counter()
    for la, lo in pts[:1000]:
        index.nearest(la, lo, 1.0)
    t5 = time.perf_counter()
    assert many == [index.locate(la, lo) for la, lo in pts[: len(many)]]
    print(f"build {len(index)} grids: {(t1 - t0) * 1e3:.1f} ms")
    print(f"locate ×100k: {t3 - t2:.2f} s ({hits} inside)")
    print(f"locate_many ×100k: {t4 - t3:.2f} s")
    print(f"nearest(1 km) ×1k: {(t5 - t4) * 1e3:.1f} ms")
