"""The organisation file: parsing, validation errors with positions, and the import."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlmodel import SQLModel, func, select

from bot.org.org_file import (
    DEFAULT_ORG_FILE,
    MAX_ERRORS,
    OrgFileError,
    OrgSpec,
    load_org_file,
    parse_org_text,
)
from storage.db import Database
from storage.models import (
    AuditEvent,
    Case,
    CaseState,
    Category,
    Community,
    District,
    Grid,
    Platform,
    Street,
    Unit,
    UnitKind,
)
from storage.org_import import ImportReport, OrgImportRefused, import_org
from storage.orgspec import GridSpec

# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def empty_db(tmp_path: Path) -> Iterator[Database]:
    """A fresh SQLite database without the sample (conftest's `db` has it imported)."""
    database = Database(f"sqlite:///{tmp_path}/t.db")
    SQLModel.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def sample() -> OrgSpec:
    return load_org_file(DEFAULT_ORG_FILE)


def sample_data() -> dict:
    return yaml.safe_load(DEFAULT_ORG_FILE.read_text(encoding="utf-8"))


def spec_from(data: dict) -> OrgSpec:
    return parse_org_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "edited.yaml")


def do_import(db: Database, spec: OrgSpec, **kwargs) -> ImportReport:
    with db.session() as session:
        return import_org(session, spec, **kwargs)


MODELS: tuple[type[Any], ...] = (District, Street, Community, Grid, Platform, Unit, Category)


def shape_of(grid: GridSpec) -> BaseGeometry:
    """The grid's boundary as a shape (AssertionError for a grid without one)."""
    geom = grid.shape()
    assert geom is not None, f"grid {grid.code} has no boundary"
    return geom


def centre_of(grid: GridSpec) -> tuple[float, float]:
    """(lat, lon) inside the grid's boundary (AssertionError for a grid without one)."""
    centre = grid.centre()
    assert centre is not None, f"grid {grid.code} has no boundary"
    return centre


def snapshot(db: Database) -> dict[str, dict[str, tuple]]:
    """Every org row as code -> (id, active, names…), for before/after comparisons."""
    out = {}
    with db.session() as session:
        for model in MODELS:
            rows = session.exec(select(model)).all()
            out[model.__name__] = {r.code: (r.id, getattr(r, "active", True), r.name_zh, r.name_en) for r in rows}
    return out


def metres(dlon: float, dlat: float, lat: float = 30.24) -> tuple[float, float]:
    return (dlon * 111_320 * math.cos(math.radians(lat)), dlat * 110_900)


# --- the bundled sample ------------------------------------------------------------


def test_sample_parses_with_the_expected_shape(sample: OrgSpec) -> None:
    assert sample.source == str(DEFAULT_ORG_FILE)
    assert sample.district.code == "330102"
    assert sample.district.timezone == "Asia/Shanghai"
    assert [p.code for p in sample.platforms] == ["ZZ", "SC", "ZF", "BM"]
    assert len(sample.departments) >= 6
    assert [s.abbr for s in sample.streets] == ["QB", "HB"]
    assert [s.auto_dispatch for s in sample.streets] == [False, True]
    assert len(list(sample.iter_communities())) >= 4
    assert len(list(sample.iter_grids())) >= 10
    assert len(sample.categories) >= 28
    assert sum(c.urgent for c in sample.categories) >= 3
    assert {c.platform for c in sample.categories} == {"ZZ", "SC", "ZF", "BM"}
    for street in sample.streets:
        assert street.platforms == ["ZZ", "SC", "ZF", "BM"]


def test_sample_time_limits_follow_the_standards(sample: OrgSpec) -> None:
    by_code = {c.code: c for c in sample.categories}
    expect = {
        "CLEAN-EXPOSED-GARBAGE": (4, "hours", False),
        "CLEAN-STREET": (2, "hours", False),
        "CITY-ILLEGAL-BUILDING": (4, "hours", False),
        "CITY-GREEN-SPACE": (5, "days", False),
        "FIRE-HAZARD": (2, "hours", True),
        "DISPUTE-NEIGHBOUR": (3, "days", False),
    }
    for code, (value, unit, urgent) in expect.items():
        cat = by_code[code]
        assert (cat.limit_value, cat.limit_unit, cat.urgent) == (value, unit, urgent), code
    assert "停车" in by_code["TRAFFIC-PARKING"].keywords
    assert by_code["SERVICE-PAPERWORK"].after_photo_required is False
    assert by_code["TRAFFIC-PARKING"].after_photo_required is True


def test_sample_derived_units_and_codes(sample: OrgSpec) -> None:
    teams = sample.teams()
    assert [t.code for t in teams[:4]] == ["QB-ZZ", "QB-SC", "QB-ZF", "QB-BM"]
    assert teams[2].name.zh == "清波街道综合执法平台"
    assert teams[2].name.en == "Qingbo Subdistrict comprehensive law enforcement team"
    assert (teams[2].street_code, teams[2].platform_code, teams[2].kind) == ("330102001", "ZF", "team")
    rooms = sample.command_rooms()
    assert [r.code for r in rooms] == ["QB-CMD", "HB-CMD"]
    assert rooms[0].name.zh == "清波街道综合信息指挥室"
    assert rooms[1].name.en == "Hubin Subdistrict command room"
    codes = sample.all_codes()
    assert codes["330102"] == "district"
    assert codes["330102001"] == "street"
    assert codes["330102001001"] == "community"
    assert codes["33010200100101"] == "grid"
    assert codes["QB-ZF"] == "team"
    assert codes["HB-CMD"] == "command_room"
    assert codes["HOUSING"] == "department"
    n_grids = len(list(sample.iter_grids()))
    n_comms = len(list(sample.iter_communities()))
    assert len(codes) == 1 + 2 + n_comms + n_grids + 8 + 2 + len(sample.departments)


def test_sample_grids_are_realistic_and_tile_without_overlap(sample: OrgSpec) -> None:
    grids = [g for _s, _c, g in sample.iter_grids()]
    shapes = [shape_of(g) for g in grids]
    for grid, geom in zip(grids, shapes, strict=False):
        assert geom is not None and geom.is_valid, grid.code
        assert grid.boundary is not None and len(grid.boundary["coordinates"][0]) - 1 in (4, 5), (
            grid.code
        )  # quads, pentagons
        minx, miny, maxx, maxy = geom.bounds
        assert minx >= 120.16 and maxx <= 120.20 and miny >= 30.22 and maxy <= 30.26
        width, height = metres(maxx - minx, maxy - miny)
        assert 150 <= width <= 400 and 150 <= height <= 400, (grid.code, width, height)
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            assert a.intersection(b).area < 1e-12
    # each community is one piece: its grids share edges
    for _street, community in sample.iter_communities():
        from shapely.ops import unary_union

        union = unary_union([g.shape() for g in community.grids])
        assert union.geom_type == "Polygon", community.code


def test_sample_centre_of_each_grid_is_inside_it_and_no_other(sample: OrgSpec) -> None:
    grids = [g for _s, _c, g in sample.iter_grids()]
    for grid in grids:
        lat, lon = centre_of(grid)
        hits = [g.code for g in grids if shape_of(g).contains(Point(lon, lat))]
        assert hits == [grid.code]
    # the middle of each polygon's bounding box too: the demo's "here I am" point
    for grid in grids:
        c = shape_of(grid).centroid
        hits = [g.code for g in grids if shape_of(g).contains(c)]
        assert hits == [grid.code]


# --- import ------------------------------------------------------------------------


def test_sample_imports(empty_db: Database, sample: OrgSpec) -> None:
    report = do_import(empty_db, sample, actor_user_id=None)
    n_grids = len(list(sample.iter_grids()))
    assert report.created["grid"] == n_grids
    assert report.created["team"] == 8
    assert report.created["command_room"] == 2
    assert report.created["department"] == len(sample.departments)
    assert report.created["category"] == len(sample.categories)
    assert "grid: 16 created" in report.summary()
    with empty_db.session() as s:
        assert s.exec(select(func.count()).select_from(District)).one() == 1
        assert s.exec(select(func.count()).select_from(Street)).one() == 2
        assert s.exec(select(func.count()).select_from(Grid)).one() == n_grids
        assert s.exec(select(func.count()).select_from(Platform)).one() == 4
        qb = s.exec(select(Street).where(Street.code == "330102001")).one()
        hb = s.exec(select(Street).where(Street.code == "330102002")).one()
        assert (qb.abbr, qb.auto_dispatch, hb.auto_dispatch) == ("QB", False, True)
        team = s.exec(select(Unit).where(Unit.code == "QB-ZF")).one()
        zf = s.exec(select(Platform).where(Platform.code == "ZF")).one()
        assert (team.kind, team.street_id, team.platform_id) == (UnitKind.TEAM, qb.id, zf.id)
        room = s.exec(select(Unit).where(Unit.code == "HB-CMD")).one()
        assert (room.kind, room.street_id, room.platform_id) == (UnitKind.COMMAND_ROOM, hb.id, None)
        dept = s.exec(select(Unit).where(Unit.code == "HOUSING")).one()
        assert (dept.kind, dept.street_id) == (UnitKind.DEPARTMENT, None)
        cat = s.exec(select(Category).where(Category.code == "TRAFFIC-PARKING")).one()
        assert (cat.limit_value, cat.limit_unit, cat.urgent, cat.sort_order) == (4, "hours", False, 0)
        assert cat.platform_id == zf.id and "停车" in cat.keywords
        fire = s.exec(select(Category).where(Category.code == "FIRE-HAZARD")).one()
        assert fire.urgent and fire.limit_unit == "hours"
        grids = s.exec(select(Grid)).all()
        for grid in grids:
            geom = shape(grid.boundary)
            point = Point(grid.centre_lon, grid.centre_lat)
            assert geom.contains(point), grid.code
            assert [g.code for g in grids if shape(g.boundary).contains(point)] == [grid.code]
            assert grid.street_id in (qb.id, hb.id)
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "org.imported")).all()
        assert len(events) == 1
        assert events[0].subject_type == "org"
        assert events[0].data["counts"]["grid"]["created"] == n_grids


def test_reimport_is_a_no_op(empty_db: Database, sample: OrgSpec) -> None:
    do_import(empty_db, sample)
    before = snapshot(empty_db)
    report = do_import(empty_db, load_org_file(DEFAULT_ORG_FILE))
    assert not report.changed
    assert report.summary() == "organisation unchanged"
    assert snapshot(empty_db) == before
    with empty_db.session() as s:
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == 1


def test_grid_without_boundary_has_no_centre(empty_db: Database) -> None:
    data = sample_data()
    del data["streets"][0]["communities"][0]["grids"][0]["boundary"]
    do_import(empty_db, spec_from(data))
    with empty_db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == "33010200100101")).one()
        assert (grid.boundary, grid.centre_lat, grid.centre_lon) == (None, None, None)


def test_modified_file_updates_adds_and_deactivates(empty_db: Database, sample: OrgSpec) -> None:
    do_import(empty_db, sample)
    before = snapshot(empty_db)
    data = sample_data()
    community = data["streets"][0]["communities"][0]
    community["name"]["zh"] = "劳动路社区（新）"
    community["grids"].append({"code": "33010200100105", "name": {"zh": "劳动路社区第5网格"}})
    data["categories"] = [c for c in data["categories"] if c["code"] != "OTHER"]
    data["categories"][0]["limit"] = "3h"
    data["streets"][1]["platforms"] = ["ZZ", "SC", "ZF"]  # Hubin drops its BM team
    report = do_import(empty_db, spec_from(data), actor_user_id=None)
    assert report.created["grid"] == 1
    assert report.updated["community"] == 1
    assert report.updated["category"] >= 1
    assert report.deactivated["category"] == 1
    assert report.deactivated["team"] == 1
    after = snapshot(empty_db)
    assert after["Community"]["330102001001"][2] == "劳动路社区（新）"
    assert after["Community"]["330102001001"][0] == before["Community"]["330102001001"][0]
    assert after["Category"]["OTHER"] == before["Category"]["OTHER"][:1] + (False,) + before["Category"]["OTHER"][2:]
    assert after["Unit"]["HB-BM"][1] is False
    assert len(after["Grid"]) == len(before["Grid"]) + 1
    assert {code: row[0] for code, row in before["Grid"].items()} == {
        code: after["Grid"][code][0] for code in before["Grid"]
    }
    with empty_db.session() as s:
        new = s.exec(select(Grid).where(Grid.code == "33010200100105")).one()
        assert new.name_en == "劳动路社区第5网格"  # en defaults to zh
        parking = s.exec(select(Category).where(Category.code == "TRAFFIC-PARKING")).one()
        assert parking.limit_value == 3
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == 2

    # put them back: same rows, active again
    report = do_import(empty_db, sample)
    assert report.updated["category"] >= 1 and report.updated["team"] == 1
    assert report.deactivated["grid"] == 1
    again = snapshot(empty_db)
    assert again["Category"]["OTHER"] == before["Category"]["OTHER"]
    assert again["Unit"]["HB-BM"] == before["Unit"]["HB-BM"]
    assert again["Grid"]["33010200100105"][1] is False


def test_abbreviations_can_swap_between_streets(empty_db: Database, sample: OrgSpec) -> None:
    do_import(empty_db, sample)
    data = sample_data()
    data["streets"][0]["abbr"], data["streets"][1]["abbr"] = "HB", "QB"
    do_import(empty_db, spec_from(data))
    with empty_db.session() as s:
        assert s.exec(select(Street).where(Street.code == "330102001")).one().abbr == "HB"
        assert s.exec(select(Street).where(Street.code == "330102002")).one().abbr == "QB"


def test_reimport_into_the_shared_fixture_is_a_no_op(db: Database) -> None:
    before = snapshot(db)
    assert not do_import(db, load_org_file(DEFAULT_ORG_FILE)).changed
    assert snapshot(db) == before


def add_case(empty_db: Database, code: str, state: str, **refs) -> None:
    with empty_db.session() as s:
        grid_id = category_id = None
        if "grid" in refs:
            grid_id = s.exec(select(Grid).where(Grid.code == refs["grid"])).one().id
        if "category" in refs:
            category_id = s.exec(select(Category).where(Category.code == refs["category"])).one().id
        s.add(Case(code=code, state=state, description="test", grid_id=grid_id, category_id=category_id))


def test_refuses_to_deactivate_what_open_cases_use(empty_db: Database, sample: OrgSpec) -> None:
    do_import(empty_db, sample)
    add_case(empty_db, "QB-261122-0001", CaseState.CLAIMED, grid="33010200100104")
    add_case(empty_db, "QB-261122-0002", CaseState.REPORTED, grid="33010200100104")
    add_case(empty_db, "QB-261122-0003", CaseState.ESCALATED, category="DISPUTE-LABOUR")
    add_case(empty_db, "QB-261122-0004", CaseState.CLOSED, category="OTHER")  # closed: no obstacle
    before = snapshot(empty_db)

    data = sample_data()
    data["streets"][0]["communities"][0]["grids"].pop(3)  # 33010200100104
    data["categories"] = [c for c in data["categories"] if c["code"] not in ("DISPUTE-LABOUR", "OTHER")]
    data["district"]["name"]["en"] = "Renamed District"
    with pytest.raises(OrgImportRefused) as caught:
        do_import(empty_db, spec_from(data))
    message = str(caught.value)
    assert "grid 33010200100104 (2 open cases)" in message
    assert "category DISPUTE-LABOUR (1 open case)" in message
    assert "OTHER" not in message
    assert caught.value.blockers == {"grid 33010200100104": 2, "category DISPUTE-LABOUR": 1}
    assert snapshot(empty_db) == before
    with empty_db.session() as s:
        assert s.exec(select(func.count()).select_from(AuditEvent)).one() == 1

    # once the cases are closed the same file goes through
    with empty_db.session() as s:
        for case in s.exec(select(Case)):
            case.state = CaseState.CLOSED
    report = do_import(empty_db, spec_from(data))
    assert report.deactivated["grid"] == 1 and report.deactivated["category"] == 2
    assert report.updated["district"] == 1


def test_refuses_to_drop_a_team_with_open_cases(empty_db: Database, sample: OrgSpec) -> None:
    do_import(empty_db, sample)
    with empty_db.session() as s:
        unit = s.exec(select(Unit).where(Unit.code == "HB-BM")).one()
        s.add(Case(code="HB-261122-0001", state=CaseState.DISPATCHED, unit_id=unit.id))
    data = sample_data()
    data["streets"][1]["platforms"] = ["ZZ", "SC", "ZF"]
    with pytest.raises(OrgImportRefused, match=r"unit HB-BM \(1 open case\)"):
        do_import(empty_db, spec_from(data))


# --- validation errors -------------------------------------------------------------

MINIMAL = """\
version: 1
district:
  code: "330102"
  name: {zh: 上城区, en: Shangcheng District}
departments:
  - {code: HOUSING, name: {zh: 区住建局, en: Housing Bureau}}
streets:
  - code: "330102001"
    abbr: QB
    name: {zh: 清波街道, en: Qingbo Subdistrict}
    communities:
      - code: "330102001001"
        name: {zh: 劳动路社区, en: Laodong Road Community}
        grids:
          - code: "33010200100101"
            name: {zh: 第1网格, en: Grid 1}
            boundary: {type: Polygon, coordinates: [[[120.160, 30.240], [120.163, 30.240], [120.163, 30.243], [120.160, 30.243], [120.160, 30.240]]]}
          - code: "33010200100102"
            name: {zh: 第2网格, en: Grid 2}
            boundary: {type: Polygon, coordinates: [[[120.163, 30.240], [120.166, 30.240], [120.166, 30.243], [120.163, 30.243], [120.163, 30.240]]]}
categories:
  - code: TRAFFIC-PARKING
    name: {zh: 违章停车, en: Illegal parking}
    platform: ZF
    urgency: normal
    limit: 4h
    keywords: [停车, parking]
"""

BOUNDARY_LINE = 17


def with_line(number: int, new: str, text: str = MINIMAL) -> str:
    """MINIMAL with line `number` (1-based) replaced; new may hold several lines or none."""
    lines = text.splitlines()
    lines[number - 1 : number] = new.splitlines()
    return "\n".join(lines) + "\n"


def boundary(coords: str, kind: str = "Polygon") -> str:
    return f"            boundary: {{type: {kind}, coordinates: {coords}}}"


def errors_of(text: str) -> list[str]:
    with pytest.raises(OrgFileError) as caught:
        parse_org_text(text, "org.yaml")
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def assert_error(text: str, line: int, reason: str) -> None:
    errors = errors_of(text)
    matching = [e for e in errors if e.startswith(f"org.yaml:{line}:") and reason in e]
    assert matching, f"no error at line {line} containing {reason!r}; got:\n" + "\n".join(errors)


def test_minimal_file_is_valid() -> None:
    spec = parse_org_text(MINIMAL, "org.yaml")
    assert [t.code for t in spec.teams()] == ["QB-ZZ", "QB-SC", "QB-ZF", "QB-BM"]
    assert spec.streets[0].auto_dispatch is False
    assert spec.categories[0].after_photo_required is True


def test_unquoted_codes_stay_text() -> None:
    spec = parse_org_text(MINIMAL.replace('"', ""), "org.yaml")
    assert spec.district.code == "330102"
    assert spec.streets[0].communities[0].grids[0].code == "33010200100101"


def test_error_format_names_file_line_column_and_reason() -> None:
    text = with_line(18, '          - code: "33010200100101"')
    assert errors_of(text) == ['org.yaml:18:19: grid code "33010200100101" is used twice (first at line 15)']


def test_yaml_syntax_error() -> None:
    assert errors_of(with_line(9, "    abbr: QB: x")) == [
        "org.yaml:9:13: YAML syntax error: mapping values are not allowed here"
    ]
    assert_error(with_line(6, "  - {code: HOUSING, name: {zh: 区住建局"), 7, "YAML syntax error")


def test_duplicate_key_in_a_mapping() -> None:
    text = with_line(10, "    name: {zh: 清波街道, en: Qingbo}\n    abbr: HB")
    assert_error(text, 11, 'key "abbr" appears twice here (first at line 9)')


@pytest.mark.parametrize(
    ("line", "new", "at", "reason"),
    [
        (21, "catgories:", 21, 'unknown key "catgories" in the file (did you mean "categories"?)'),
        (
            19,
            "            nmae: {zh: 第2网格}",
            19,
            'unknown key "nmae" in grid "33010200100102" (did you mean "name"?)',
        ),
        (
            16,
            "            name: {zh: 第1网格, en: Grid 1, fr: Grille}",
            16,
            'unknown key "fr" in the name of grid "33010200100101"',
        ),
        (
            9,
            "    abbr: QB\n    colour: red",
            10,
            'unknown key "colour" in street "330102001" (allowed keys: code, abbr, name',
        ),
    ],
)
def test_unknown_keys(line: int, new: str, at: int, reason: str) -> None:
    assert_error(with_line(line, new), at, reason)


@pytest.mark.parametrize(
    ("line", "at", "reason"),
    [
        (26, 22, 'category "TRAFFIC-PARKING" is missing the required field "limit"'),
        (24, 22, 'category "TRAFFIC-PARKING" is missing the required field "platform"'),
        (9, 8, 'street "330102001" is missing the required field "abbr"'),
        (1, 1, 'the file is missing the required field "version"'),
    ],
)
def test_missing_required_fields(line: int, at: int, reason: str) -> None:
    assert_error(with_line(line, ""), at, reason)


def test_missing_grid_code() -> None:
    text = with_line(15, "          - name: {zh: 第1网格}")
    text = with_line(16, "", text)
    assert_error(text, 15, 'grid #1 is missing the required field "code"')


def test_missing_chinese_name() -> None:
    assert_error(
        with_line(16, "            name: {en: Grid 1}"),
        16,
        'the name of grid "33010200100101" is missing the required field "zh"',
    )


@pytest.mark.parametrize(
    ("line", "new", "reason"),
    [
        (3, '  code: "33010"', 'district code "33010" is not valid: it must be the 6-digit county code'),
        (8, '  - code: "33010200"', 'street code "33010200" is not valid: it must be 9 digits'),
        (12, '      - code: "3301020010011"', 'community code "3301020010011" is not valid: it must be 12 digits'),
        (15, '          - code: "3301020010010A"', 'grid code "3301020010010A" is not valid: it must be 14 digits'),
        (9, "    abbr: qb", 'street abbr "qb" is not valid: it must be 2 to 4 uppercase letters'),
        (9, "    abbr: QBXYZ", 'street abbr "QBXYZ" is not valid'),
        (6, "  - {code: housing, name: {zh: 住建局}}", 'department code "housing" is not valid'),
        (22, "  - code: traffic_parking", 'category code "traffic_parking" is not valid'),
    ],
)
def test_code_formats(line: int, new: str, reason: str) -> None:
    assert_error(with_line(line, new), line, reason)


def test_codes_must_nest() -> None:
    text = with_line(8, '  - code: "330103001"')
    assert_error(text, 8, 'street code "330103001" does not start with its district code "330102"')
    assert_error(text, 12, 'community code "330102001001" does not start with its street code "330103001"')
    text = with_line(15, '          - code: "33010200100201"')
    assert_error(text, 15, 'grid code "33010200100201" does not start with its community code "330102001001"')


def test_duplicate_codes_across_kinds() -> None:
    text = with_line(6, "  - {code: QB-ZF, name: {zh: 某局}}")
    assert errors_of(text) == [
        'org.yaml:9:11: team code "QB-ZF" (from street abbr "QB") is already used by a department at line 6'
    ]
    text = with_line(6, "  - {code: QB-CMD, name: {zh: 某局}}")
    assert_error(
        text, 9, 'command room code "QB-CMD" (from street abbr "QB") is already used by a department at line 6'
    )
    text = with_line(6, "  - {code: HOUSING, name: {zh: 住建局}}\n  - {code: HOUSING, name: {zh: 住建局}}")
    assert_error(text, 7, 'department code "HOUSING" is used twice (first at line 6)')
    text = MINIMAL + MINIMAL[MINIMAL.index("  - code: TRAFFIC") :]
    assert_error(text, 28, 'category code "TRAFFIC-PARKING" is used twice (first at line 22)')


def test_duplicate_street_abbr_and_codes_in_a_second_street() -> None:
    street = MINIMAL[MINIMAL.index('  - code: "330102001"') : MINIMAL.index("categories:")]
    text = MINIMAL.replace("categories:", street + "categories:")
    errors = errors_of(text)
    assert 'org.yaml:21:11: street code "330102001" is used twice (first at line 8)' in errors
    assert 'org.yaml:22:11: street abbr "QB" is used twice (first at line 9)' in errors
    assert not any("team code" in e for e in errors)  # the abbr error says it all
    assert 'org.yaml:25:15: community code "330102001001" is used twice (first at line 12)' in errors
    assert 'org.yaml:28:19: grid code "33010200100101" is used twice (first at line 15)' in errors
    assert any(e.startswith("org.yaml:30:23: the boundary of grid") and "overlaps" in e for e in errors)


def test_category_platform_must_be_defined() -> None:
    assert_error(
        with_line(24, "    platform: XX"),
        24,
        'category "TRAFFIC-PARKING" names platform "XX", which is not defined (the platforms are ZZ, SC, ZF, BM)',
    )
    # with an explicit platform list, only those count
    text = with_line(5, "platforms:\n  - {code: ZZ, name: {zh: 综治工作}}\ndepartments:")
    assert_error(text, 26, 'names platform "ZF", which is not defined (the platforms are ZZ)')


def test_street_platforms_must_be_defined() -> None:
    text = with_line(10, "    name: {zh: 清波街道}\n    platforms: [ZZ, PB]")
    assert_error(text, 11, 'platform "PB" is not defined (the platforms are ZZ, SC, ZF, BM)')
    spec = parse_org_text(with_line(10, "    name: {zh: 清波街道}\n    platforms: [ZZ, ZF]"), "org.yaml")
    assert [t.code for t in spec.teams()] == ["QB-ZZ", "QB-ZF"]


@pytest.mark.parametrize("limit", ["0h", "4", "-2h", "4 hours", "1.5x", "abc", "0.0d", '""'])
def test_invalid_limits(limit: str) -> None:
    assert_error(
        with_line(26, f"    limit: {limit}"),
        26,
        "is not valid: it must be a positive number of working hours or working days, like 4h, 1.5h or 5d",
    )


@pytest.mark.parametrize(
    ("limit", "value", "unit"), [("4h", 4, "hours"), ("1.5h", 1.5, "hours"), ("5d", 5, "days"), ("2H", 2, "hours")]
)
def test_valid_limits(limit: str, value: float, unit: str) -> None:
    category = parse_org_text(with_line(26, f"    limit: {limit}"), "org.yaml").categories[0]
    assert (category.limit_value, category.limit_unit) == (value, unit)


def test_urgency_must_be_normal_or_urgent() -> None:
    assert_error(
        with_line(25, "    urgency: high"),
        25,
        '"urgency" of category "TRAFFIC-PARKING" must be "normal" or "urgent", not "high"',
    )
    assert parse_org_text(with_line(25, "    urgency: urgent"), "x").categories[0].urgent


def test_wrong_types() -> None:
    assert_error(
        with_line(10, "    name: {zh: 清波街道}\n    auto_dispatch: maybe"),
        11,
        '"auto_dispatch" of street "330102001" must be true or false, not "maybe"',
    )
    assert_error(
        with_line(16, "            name: 第1网格"), 16, '"name" of grid "33010200100101" must be a mapping like {zh:'
    )
    assert_error(with_line(1, "version: 2"), 1, '"version" of the file must be 1, not the number 2')
    assert_error(
        with_line(27, "    keywords: 停车"), 27, '"keywords" of category "TRAFFIC-PARKING" must be a list, not "停车"'
    )


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (boundary("[1, 2]", "Point"), 'boundary type must be "Polygon" or "MultiPolygon", not "Point"'),
        (
            boundary("[[[120.160, 30.240], [120.163, 30.240], [120.160, 30.240]]]"),
            "a ring needs at least 4 points (the last repeating the first), this one has 3",
        ),
        (
            boundary("[[[120.160, 30.240], [120.163, 30.240], [120.163, 30.243], [120.160, 30.243]]]"),
            "the ring is not closed: its last point [120.16, 30.243] must repeat its first point [120.16, 30.24]",
        ),
        (
            boundary(
                "[[[120.160, 30.240], [120.163, 30.243], [120.163, 30.240], [120.160, 30.243], [120.160, 30.240]]]"
            ),
            "the boundary is not a valid polygon: Self-intersection[120.1615 30.2415]",
        ),
        (
            boundary("[[[120.160, 95.0], [120.163, 30.240], [120.163, 30.243], [120.160, 30.240]]]"),
            "point [120.16, 95] is outside longitude -180..180 / latitude -90..90",
        ),
        (
            boundary("[[[30.240, 120.160], [30.240, 120.163], [30.243, 120.163], [30.240, 120.160]]]"),
            "is outside longitude -180..180 / latitude -90..90 (GeoJSON puts longitude first: [lon, lat])",
        ),
        (
            boundary("[[[120.160, 30.240], [120.163, 30.240], [120.163, 30.243], [120.160, 30.240]]]", "LineString"),
            'not "LineString"',
        ),
        ("            boundary: {type: Polygon}", 'the boundary is missing the required field "coordinates"'),
        (boundary("[[120.160, 30.240]]"), "a point must be [lon, lat] with two numbers"),
    ],
)
def test_invalid_boundaries(new: str, reason: str) -> None:
    assert_error(with_line(BOUNDARY_LINE, new), BOUNDARY_LINE, reason)


def test_multipolygon_boundary_is_accepted() -> None:
    new = boundary(
        "[[[[120.160, 30.240], [120.161, 30.240], [120.161, 30.241], [120.160, 30.240]]],"
        " [[[120.162, 30.242], [120.163, 30.242], [120.163, 30.243], [120.162, 30.242]]]]",
        "MultiPolygon",
    )
    grid = parse_org_text(with_line(BOUNDARY_LINE, new), "x").streets[0].communities[0].grids[0]
    lat, lon = centre_of(grid)
    assert shape_of(grid).contains(Point(lon, lat))


def test_overlapping_grids() -> None:
    # grid 2 shifted 0.0006° west: it covers a fifth of grid 1
    shifted = boundary(
        "[[[120.1624, 30.240], [120.1654, 30.240], [120.1654, 30.243], [120.1624, 30.243], [120.1624, 30.240]]]"
    )
    assert_error(
        with_line(20, shifted),
        20,
        'the boundary of grid "33010200100102" overlaps grid "33010200100101" (line 17) by 20% of the smaller one',
    )
    # a digitising sliver (0.3% of a grid) is fine
    sliver = boundary(
        "[[[120.16299, 30.240], [120.166, 30.240], [120.166, 30.243], [120.16299, 30.243], [120.16299, 30.240]]]"
    )
    parse_org_text(with_line(20, sliver), "org.yaml")


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert errors_of(text) == [
        "org.yaml:1:1: the file is empty: it must define version, district, streets and categories"
    ]


def test_empty_lists() -> None:
    assert_error(
        with_line(11, "    communities: []", MINIMAL.split('      - code: "330102001001"')[0]),
        11,
        'street "330102001" has no communities',
    )
    text = with_line(
        14, "        grids: []", MINIMAL.split('          - code: "33010200100101"')[0] + "categories: []\n"
    )
    assert_error(text, 14, 'community "330102001001" has no grids')
    assert_error(text, 15, "the responsibility list (categories) is empty")
    assert_error(MINIMAL.split("streets:")[0] + "streets: []\ncategories: []\n", 7, "the file defines no streets")


def test_errors_are_sorted_and_capped() -> None:
    text = MINIMAL + "".join(
        f"  - code: C{i}\n    name: {{zh: 类{i}}}\n    platform: ZF\n    limit: {i}x\n" for i in range(30)
    )
    with pytest.raises(OrgFileError) as caught:
        parse_org_text(text, "org.yaml")
    error = caught.value
    assert len(error.errors) == MAX_ERRORS
    assert error.total == 30
    lines = [int(e.split(":")[1]) for e in error.errors]
    assert lines == sorted(lines)
    assert str(error).endswith("… and 10 more errors")


def test_load_org_file_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(OrgFileError, match="cannot be read"):
        load_org_file(tmp_path / "missing.yaml")
    bad = tmp_path / "gbk.yaml"
    bad.write_bytes("version: 1\nname: 上城区\n".encode("gbk"))
    with pytest.raises(OrgFileError) as caught:
        load_org_file(bad)
    assert caught.value.errors[0].startswith(f"{bad}:2:7: the file is not UTF-8 text")
    good = tmp_path / "bom.yaml"
    good.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode("utf-8"))
    assert load_org_file(good).source == str(good)
