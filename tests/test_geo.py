"""bot.org.geo: point-in-grid, nearby grids, distances, boxes, coordinates and map links."""

from __future__ import annotations

import math
import random

import pytest

from bot.org.geo import (
    GridIndex,
    GridShape,
    amap_link,
    bounding_box,
    haversine_m,
    map_link,
    valid_coordinates,
    wgs84_to_gcj02,
)


def square(lon0: float, lat0: float, side: float) -> dict:
    ring = [[lon0, lat0], [lon0 + side, lat0], [lon0 + side, lat0 + side], [lon0, lat0 + side], [lon0, lat0]]
    return {"type": "Polygon", "coordinates": [ring]}


# Two adjacent ≈960 × 1110 m squares in Hangzhou sharing the edge lon = 120.17, and a
# third one far away in Beijing.
WEST = GridShape(11, "330102001001", square(120.16, 30.24, 0.01), None)
EAST = GridShape(12, "330102001002", square(120.17, 30.24, 0.01), None)
FAR = GridShape(13, "110101001001", square(116.39, 39.90, 0.01), None)
SHAPES = [WEST, EAST, FAR]
M_PER_DEG = 6371008.8 * math.pi / 180


@pytest.fixture(scope="module")
def index() -> GridIndex:
    return GridIndex(SHAPES)


def destination(lat: float, lon: float, bearing_deg: float, dist_m: float) -> tuple[float, float]:
    """The point dist_m from (lat, lon) along a great circle (spherical direct problem)."""
    d = dist_m / 6371008.8
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


# --------------------------------------------------------------------------- locate


def test_point_inside_each_square(index: GridIndex) -> None:
    assert index.locate(30.245, 120.165) == WEST.grid_id
    assert index.locate(30.245, 120.175) == EAST.grid_id
    assert index.locate(39.905, 116.395) == FAR.grid_id
    assert len(index) == 3


def test_shared_edge_is_one_of_them_deterministically(index: GridIndex) -> None:
    on_edge = (30.245, 120.17)
    got = index.locate(*on_edge)
    assert got in (WEST.grid_id, EAST.grid_id)
    assert all(index.locate(*on_edge) == got for _ in range(5))
    # Neither the order the grids come in nor a fresh index changes the answer.
    assert GridIndex(list(reversed(SHAPES))).locate(*on_edge) == got
    assert index.locate_many([on_edge[0]], [on_edge[1]]) == [got]


def test_outer_edge_and_corner_count_as_inside(index: GridIndex) -> None:
    assert index.locate(30.245, 120.16) == WEST.grid_id  # west edge, touches only WEST
    assert index.locate(30.24, 120.16) == WEST.grid_id  # south-west corner
    assert index.locate(30.25, 120.18) == EAST.grid_id  # north-east corner


def test_outside_everything_is_none(index: GridIndex) -> None:
    assert index.locate(30.2505, 120.165) is None  # just north of WEST
    assert index.locate(30.0, 123.0) is None  # the East China Sea
    assert index.locate(float("nan"), 120.165) is None
    assert index.locate(30.245, float("inf")) is None


def test_smallest_of_overlapping_grids_wins() -> None:
    big = GridShape(1, "BIG", square(120.0, 30.0, 0.02), None)
    small = GridShape(2, "SMALL", square(120.005, 30.005, 0.002), None)
    for shapes in ([big, small], [small, big]):
        idx = GridIndex(shapes)
        assert idx.locate(30.006, 120.006) == small.grid_id
        assert idx.locate(30.015, 120.015) == big.grid_id


def test_multipolygon_parts_and_hole() -> None:
    # Two separate blocks of one grid, the second with a courtyard cut out of it.
    outer = [[120.20, 30.20], [120.21, 30.20], [120.21, 30.21], [120.20, 30.21], [120.20, 30.20]]
    hole = [[120.204, 30.204], [120.206, 30.204], [120.206, 30.206], [120.204, 30.206], [120.204, 30.204]]
    part1 = [[[120.18, 30.20], [120.19, 30.20], [120.19, 30.21], [120.18, 30.21], [120.18, 30.20]]]
    multi = GridShape(21, "MULTI", {"type": "MultiPolygon", "coordinates": [part1, [outer, hole]]}, None)
    idx = GridIndex([multi, WEST])
    assert idx.locate(30.205, 120.185) == 21
    assert idx.locate(30.202, 120.202) == 21
    assert idx.locate(30.205, 120.195) is None  # between the two blocks
    assert idx.locate(30.205, 120.205) is None  # in the courtyard
    centre = idx.centre_of(21)
    assert centre is not None
    lat, lon = centre
    assert idx.locate(lat, lon) == 21
    assert idx.nearest(30.205, 120.205, 0.5)[0][0] == 21


def test_grid_without_boundary_is_skipped_for_locate_but_near() -> None:
    pointlike = GridShape(31, "NOSHAPE", None, (30.245, 120.165))
    unknown = GridShape(32, "NOTHING", None, None)
    idx = GridIndex([pointlike, unknown, EAST])
    assert len(idx) == 3
    assert idx.locate(30.245, 120.165) is None
    assert idx.centre_of(31) == (30.245, 120.165)
    assert idx.centre_of(32) is None
    assert idx.centre_of(999) is None
    near = idx.nearest(30.245, 120.166, 1.0)
    assert [gid for gid, _ in near] == [31, 12]
    assert near[0][1] == pytest.approx(haversine_m(30.245, 120.166, 30.245, 120.165))


def test_centre_given_or_inside_the_boundary(index: GridIndex) -> None:
    centre = index.centre_of(WEST.grid_id)
    assert centre is not None
    lat, lon = centre
    assert index.locate(lat, lon) == WEST.grid_id
    with_centre = GridShape(41, "C", square(120.0, 30.0, 0.01), (30.001, 120.001))
    assert GridIndex([with_centre]).centre_of(41) == (30.001, 120.001)


def test_locate_many_agrees_with_locate(index: GridIndex) -> None:
    rnd = random.Random(7)
    lats = [30.235 + rnd.random() * 0.02 for _ in range(500)] + [30.24, 30.25, float("nan")]
    lons = [120.155 + rnd.random() * 0.03 for _ in range(500)] + [120.17, 120.17, 120.17]
    assert index.locate_many(lats, lons) == [index.locate(a, b) for a, b in zip(lats, lons, strict=False)]
    assert GridIndex([]).locate_many([30.0], [120.0]) == [None]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        GridIndex([WEST, GridShape(WEST.grid_id, "OTHER", None, None)])
    with pytest.raises(ValueError, match="Polygon or MultiPolygon"):
        GridIndex([GridShape(1, "PT", {"type": "Point", "coordinates": [120.0, 30.0]}, None)])


def test_empty_index() -> None:
    idx = GridIndex([])
    assert len(idx) == 0
    assert idx.locate(30.0, 120.0) is None
    assert idx.nearest(30.0, 120.0, 5) == []


# --------------------------------------------------------------------------- nearest


def test_nearest_within_one_km_sorted(index: GridIndex) -> None:
    # 500 m east of EAST's east edge: WEST is ≈1.46 km away.
    lat = 30.245
    lon = 120.18 + 500 / (M_PER_DEG * math.cos(math.radians(lat)))
    near = index.nearest(lat, lon, 1.0)
    assert [gid for gid, _ in near] == [EAST.grid_id]
    assert near[0][1] == pytest.approx(500, abs=1)
    both = index.nearest(lat, lon, 2.0)
    assert [gid for gid, _ in both] == [EAST.grid_id, WEST.grid_id]
    assert both[1][1] == pytest.approx(haversine_m(lat, lon, lat, 120.17), abs=1)
    assert both[0][1] < both[1][1]


def test_nearest_inside_is_zero_first(index: GridIndex) -> None:
    lat = 30.245
    lon = 120.17 - 200 / (M_PER_DEG * math.cos(math.radians(lat)))  # 200 m inside WEST
    near = index.nearest(lat, lon, 1.0)
    assert near[0] == (WEST.grid_id, 0.0)
    assert near[1][0] == EAST.grid_id and near[1][1] == pytest.approx(200, abs=1)
    assert FAR.grid_id not in [gid for gid, _ in near]
    assert index.nearest(lat, lon, 0) == [(WEST.grid_id, 0.0)]
    assert index.nearest(30.0, 123.0, 1.0) == []


def test_nearest_to_a_corner_measures_diagonally(index: GridIndex) -> None:
    # South-west of WEST's south-west corner, 300 m away along the diagonal.
    lat, lon = destination(30.24, 120.16, 225, 300)
    near = index.nearest(lat, lon, 1.0)
    assert [gid for gid, _ in near] == [WEST.grid_id]
    assert near[0][1] == pytest.approx(300, rel=0.005)


# --------------------------------------------------------------------------- distances and boxes


def test_haversine_tiananmen_to_peoples_square() -> None:
    d = haversine_m(39.9087, 116.3975, 31.2304, 121.4737)
    assert d == pytest.approx(1_067_000, rel=0.01)
    assert haversine_m(30.0, 120.0, 30.0, 120.0) == 0.0
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * 6371008.8)
    # One degree of latitude along a meridian.
    assert haversine_m(30.0, 120.0, 31.0, 120.0) == pytest.approx(M_PER_DEG)


def test_bounding_box_holds_every_point_within_the_radius() -> None:
    rnd = random.Random(20261123)
    eps = 1e-9
    for _ in range(300):
        lat = rnd.uniform(-80, 80)
        lon = rnd.uniform(-170, 170)
        radius = rnd.choice([10.0, 500.0, 5_000.0, 50_000.0, 300_000.0])
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, radius)
        assert min_lat <= lat <= max_lat and min_lon <= lon <= max_lon
        for _ in range(10):
            # Half the samples sit right on the circle, where a naive box fails first.
            dist = radius if rnd.random() < 0.5 else rnd.uniform(0, radius)
            plat, plon = destination(lat, lon, rnd.uniform(0, 360), dist)
            assert min_lat - eps <= plat <= max_lat + eps
            assert min_lon - eps <= plon <= max_lon + eps


def test_bounding_box_is_tight_and_safe_at_the_edges() -> None:
    min_lat, max_lat, min_lon, max_lon = bounding_box(30.0, 120.0, 1000)
    assert (max_lat - min_lat) * M_PER_DEG == pytest.approx(2000)
    assert (max_lon - min_lon) * M_PER_DEG * math.cos(math.radians(30)) == pytest.approx(2000, rel=1e-3)
    assert bounding_box(30.0, 120.0, 0) == (30.0, 30.0, 120.0, 120.0)
    # A pole or the antimeridian within reach: every longitude, no division by zero.
    assert bounding_box(90.0, 0.0, 1000)[2:] == (-180.0, 180.0)
    assert bounding_box(89.999, 10.0, 1000)[2:] == (-180.0, 180.0)
    assert bounding_box(10.0, 179.999, 1000)[2:] == (-180.0, 180.0)


def test_valid_coordinates() -> None:
    assert valid_coordinates(30.245, 120.165)
    assert valid_coordinates(-90, 180)
    assert valid_coordinates(0.0, 120.0)  # on the equator is fine, only (0, 0) is suspect
    assert not valid_coordinates(0, 0)
    assert not valid_coordinates(0.0, -0.0)
    assert not valid_coordinates(91, 120)
    assert not valid_coordinates(30, 180.5)
    assert not valid_coordinates(float("nan"), 120)
    assert not valid_coordinates(30, float("inf"))
    assert not valid_coordinates(None, 120)
    assert not valid_coordinates("north", 120)
    assert not valid_coordinates(True, 120)


# --------------------------------------------------------------------------- map links


def test_osm_link() -> None:
    assert map_link(30.245, 120.165) == (
        "https://www.openstreetmap.org/?mlat=30.245000&mlon=120.165000#map=18/30.245000/120.165000"
    )
    assert map_link(-33.8688197, 151.2092957).startswith(
        "https://www.openstreetmap.org/?mlat=-33.868820&mlon=151.209296"
    )


def test_gcj02_offset_in_hangzhou_is_a_few_hundred_metres() -> None:
    lat, lon = 30.2590, 120.1485  # West Lake
    glat, glon = wgs84_to_gcj02(lat, lon)
    assert 100 < haversine_m(lat, lon, glat, glon) < 1000


def test_gcj02_matches_the_reference_formula() -> None:
    # The value the common open-source implementations (e.g. coordtransform) give.
    glat, glon = wgs84_to_gcj02(39.915, 116.404)
    assert glat == pytest.approx(39.91640428150164, abs=1e-9)
    assert glon == pytest.approx(116.41024449916938, abs=1e-9)


def test_gcj02_is_identity_outside_china() -> None:
    for lat, lon in [(35.6812, 139.7671), (51.5007, -0.1246), (-33.8688, 151.2093), (48.8584, 2.2945)]:
        assert wgs84_to_gcj02(lat, lon) == (lat, lon)


def test_amap_link_uses_gcj02_lon_first() -> None:
    lat, lon = 30.2590, 120.1485
    glat, glon = wgs84_to_gcj02(lat, lon)
    assert amap_link(lat, lon) == f"https://uri.amap.com/marker?position={glon:.6f},{glat:.6f}&coordinate=gaode"
    assert amap_link(51.5007, -0.1246) == "https://uri.amap.com/marker?position=-0.124600,51.500700&coordinate=gaode"
