"""The organisation file: parse and validate it into a typed spec. No database here.

The file (YAML, UTF-8) describes one district: its streets, communities and grids (with
boundaries), the platform kinds, the district departments and the responsibility list
(权责清单). See docs/org-file.md for the format. ``storage/org_import.py`` writes a spec
into the database.

Every error names the file, the line and column of the offending YAML node and a reason
in one sentence, so an administrator can fix the file without reading a traceback. To
get positions we compose the YAML into nodes ourselves and build plain data next to a
side table ``path -> (line, column)``; pydantic checks the shape and the formats, its
error ``loc`` is a path into that table; the checks that need the whole file (prefixes,
duplicates, references, boundaries, overlaps) run on the same plain data.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)
from shapely.geometry import shape as _geo_shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree
from shapely.validation import explain_validity

DEFAULT_ORG_FILE = Path(__file__).resolve().parent.parent / "data" / "sample_org.yaml"

MAX_ERRORS = 20
# Two grids may share an edge, and digitised edges rarely match to the last digit; an
# overlap above this share of the smaller grid is a mistake, below it a sliver.
OVERLAP_TOLERANCE = 0.01


class OrgFileError(Exception):
    """The organisation file is unreadable or invalid.

    ``errors`` holds one line per problem, ``file:line:column: reason``, sorted by line
    (at most ``MAX_ERRORS``); ``total`` counts all problems found.
    """

    def __init__(self, errors: list[str], total: int | None = None) -> None:
        self.errors = list(errors)
        self.total = total if total is not None else len(self.errors)
        super().__init__(self._text())

    def _text(self) -> str:
        text = "\n".join(self.errors)
        if self.total > len(self.errors):
            text += f"\n… and {self.total - len(self.errors)} more errors"
        return text

    def __str__(self) -> str:
        return self._text()


from storage.orgspec import (  # noqa: E402  (the spec lives with the storage that writes it)
    DEFAULT_PLATFORMS,
    OrgSpec,
    command_room_code,
    team_code,
)

# --- reading YAML with positions ---------------------------------------------------

_PathT = tuple[str | int, ...]
_Pos = tuple[int, int]  # 1-based line and column

# Scalars under these keys are text whatever they look like: `code: 330102` is not an
# int, `abbr: ON` is not a bool, `limit: 4` is "4" (and then an invalid limit).
_TEXT_KEYS = {"code", "abbr", "platform", "zh", "en", "limit", "timezone", "urgency", "type"}
_TEXT_LIST_KEYS = {"keywords", "platforms"}
_NULL_TAG = "tag:yaml.org,2002:null"
_MAX_NODES = 2_000_000  # alias bombs


class _Problem(Exception):
    def __init__(self, pos: _Pos, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


def _mark(node: yaml.Node) -> _Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Composed:
    """Plain data from the YAML, and where each value and each key starts."""

    def __init__(self, text: str) -> None:
        self.values: dict[_PathT, _Pos] = {}
        self.keys: dict[_PathT, _Pos] = {}
        self.problems: list[tuple[_Pos, str]] = []
        self._loader = yaml.SafeLoader(text)
        self._stack: set[int] = set()
        self._count = 0
        try:
            node = self._loader.get_single_node()
            self.empty = node is None
            self.data: Any = None if node is None else self._walk(node, (), False, False)
        finally:
            self._loader.dispose()

    def _walk(self, node: yaml.Node, path: _PathT, text: bool, text_items: bool) -> Any:
        self._count += 1
        if self._count > _MAX_NODES:
            raise _Problem(_mark(node), "the file expands to too many values (alias loop?)")
        self.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode):
            if id(node) in self._stack:
                raise _Problem(_mark(node), "an alias refers to the mapping that contains it")
            self._stack.add(id(node))
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append((_mark(key_node), "a key must be a plain word"))
                    continue
                key = str(key_node.value)
                key_path = path + (key,)
                if key in out:
                    first = self.keys[key_path][0]
                    self.problems.append((_mark(key_node), f'key "{key}" appears twice here (first at line {first})'))
                    continue
                self.keys[key_path] = _mark(key_node)
                out[key] = self._walk(value_node, key_path, key in _TEXT_KEYS, key in _TEXT_LIST_KEYS)
            self._stack.discard(id(node))
            return out
        if isinstance(node, yaml.SequenceNode):
            if id(node) in self._stack:
                raise _Problem(_mark(node), "an alias refers to the list that contains it")
            self._stack.add(id(node))
            items = [self._walk(item, path + (i,), text_items, False) for i, item in enumerate(node.value)]
            self._stack.discard(id(node))
            return items
        if text and node.tag != _NULL_TAG:
            return str(node.value)
        return self._loader.construct_object(node, deep=True)

    def pos(self, path: _PathT) -> _Pos:
        """Where the value at path starts, or its nearest enclosing value."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.values:
                return self.values[path[:end]]
        return (1, 1)

    def key_pos(self, path: _PathT) -> _Pos:
        return self.keys.get(path) or self.pos(path)


def _yaml_error_pos(exc: yaml.YAMLError) -> tuple[_Pos, str]:
    if isinstance(exc, yaml.reader.ReaderError):
        if isinstance(exc.character, bytes):
            return (1, 1), "the file is not UTF-8 text"
        char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return (1, 1), f"the file contains a control character YAML does not allow (U+{char:04X})"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "malformed YAML"
        reason = f"YAML syntax error: {problem}"
        if exc.context and exc.problem and exc.context_mark:
            reason += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return pos, reason
    return (1, 1), f"YAML syntax error: {exc}"


def _reader_error_pos(text: str, exc: yaml.reader.ReaderError) -> _Pos:
    before = text[: exc.position]
    line = before.count("\n") + 1
    return (line, len(before) - (before.rfind("\n") + 1) + 1)


# --- turning pydantic errors into sentences ----------------------------------------

_SINGULAR = {
    "streets": "street",
    "communities": "community",
    "grids": "grid",
    "categories": "category",
    "departments": "department",
    "platforms": "platform",
}


def _get(data: Any, path: _PathT) -> Any:
    for key in path:
        if isinstance(key, int) and isinstance(data, list) and 0 <= key < len(data):
            data = data[key]
            continue
        if isinstance(key, str) and isinstance(data, dict) and key in data:
            data = data[key]
            continue
        return None
    return data


def _entity(data: Any, path: _PathT) -> str:
    """A human name for what path points into: 'street "330102001"', 'the name of …'."""
    label = "the file"
    i = 0
    while i < len(path):
        key = path[i]
        nxt = path[i + 1] if i + 1 < len(path) else None
        if isinstance(key, str) and key in _SINGULAR and isinstance(nxt, int):
            item = _get(data, path[: i + 2])
            code = item.get("code") if isinstance(item, dict) else None
            kind = _SINGULAR[key]
            label = f'{kind} "{code}"' if isinstance(code, str) and code else f"{kind} #{nxt + 1}"
            i += 2
            continue
        if key == "district":
            code = _get(data, ("district", "code"))
            label = f'district "{code}"' if isinstance(code, str) and code else "the district"
        elif key in ("name", "boundary"):
            label = f"the {key} of {label}"
        i += 1
    return label


def _label(data: Any, path: _PathT) -> str:
    if not path:
        return "the file"
    last = path[-1]
    if isinstance(last, int):
        return f'item {last + 1} of "{path[-2]}" in {_entity(data, path[:-2])}'
    return f'"{last}" of {_entity(data, path[:-1])}'


def _show(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _model_at(path: _PathT) -> type[BaseModel] | None:
    tp: Any = OrgSpec
    for key in path:
        tp = _unwrap(tp)
        if isinstance(key, int):
            if get_origin(tp) is list:
                tp = get_args(tp)[0]
                continue
            return None
        if isinstance(tp, type) and issubclass(tp, BaseModel) and key in tp.model_fields:
            tp = tp.model_fields[key].annotation
            continue
        return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


# Lists whose emptiness the whole-file checks report in their own words.
_NONEMPTY_LISTS = {"streets", "communities", "grids", "categories"}


def _pydantic_problems(exc: ValidationError, comp: _Composed) -> list[tuple[_Pos, str]]:
    data = comp.data
    out = []
    for err in exc.errors():
        loc: _PathT = tuple(err["loc"])
        kind = err["type"]
        value = err.get("input")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(loc[:-1])
            allowed = list(model.model_fields) if model else []
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close:
                hint = f' (did you mean "{close[0]}"?)'
            elif allowed:
                hint = f" (allowed keys: {', '.join(allowed)})"
            else:
                hint = ""
            out.append((comp.key_pos(loc), f'unknown key "{key}" in {_entity(data, loc[:-1])}{hint}'))
            continue
        if kind == "missing":
            where = _entity(data, loc[:-1])
            out.append((comp.pos(loc[:-1]), f'{where} is missing the required field "{loc[-1]}"'))
            continue
        if kind == "list_type" and value is None and loc and loc[-1] in _NONEMPTY_LISTS:
            continue  # reported as "has no …" by the whole-file checks
        label = _label(data, loc)
        if kind == "string_type" and value is None:
            reason = f"{label} must not be empty"
        elif kind == "string_type":
            reason = f"{label} must be text, not {_show(value)}"
        elif kind == "bool_type":
            reason = f"{label} must be true or false, not {_show(value)}"
        elif kind == "list_type":
            reason = f"{label} must be a list, not {_show(value)}"
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            if loc and loc[-1] == "name":
                reason = f"{label} must be a mapping like {{zh: 清波街道, en: Qingbo Subdistrict}}, not {_show(value)}"
            elif not loc:
                reason = f"the file must be a mapping of keys (version, district, streets, …), not {_show(value)}"
            else:
                reason = f"{label} must be a mapping of keys and values, not {_show(value)}"
        elif kind == "literal_error":
            expected = str(err.get("ctx", {}).get("expected", "")).replace("'", '"')
            reason = f"{label} must be {expected}, not {_show(value)}"
        elif kind == "string_too_short":
            reason = f"{label} must not be empty"
        elif kind == "string_too_long":
            limit = err.get("ctx", {}).get("max_length")
            reason = f"{label} is too long (at most {limit} characters)"
        elif kind == "value_error":
            reason = str(err["msg"]).removeprefix("Value error, ")
        else:
            reason = f"{label}: {err['msg']}"
        out.append((comp.pos(loc), reason))
    return out


# --- the checks that need the whole file -------------------------------------------

_FORMAT = {
    "district": re.compile(r"[1-9]\d{5}"),
    "street": re.compile(r"\d{9}"),
    "community": re.compile(r"\d{12}"),
    "grid": re.compile(r"\d{14}"),
    "department": re.compile(r"[A-Z][A-Z0-9_]*(?:-[A-Z0-9_]+)*"),
    "abbr": re.compile(r"[A-Z]{2,4}"),
    "platform": re.compile(r"[A-Z][A-Z0-9]{1,7}"),
    "category": re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*"),
}


def _code(kind: str, value: Any) -> str | None:
    """The value if it is a well-formed code of this kind, else None (its error is reported
    by the schema check)."""
    if isinstance(value, str) and len(value) <= 32 and _FORMAT[kind].fullmatch(value):
        return value
    return None


def _dicts(value: Any) -> list[tuple[int, dict]]:
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    def __init__(self, comp: _Composed) -> None:
        self.comp = comp
        self.data: dict = comp.data
        self.problems: list[tuple[_Pos, str]] = []
        # code -> namespaces: (pos, kind, note) of every claim, in document order later
        self.codes: list[tuple[_Pos, str, str, str]] = []  # pos, code, kind, note
        self.grid_shapes: list[tuple[BaseGeometry, str, _PathT]] = []

    def err(self, path: _PathT, reason: str) -> None:
        self.problems.append((self.comp.pos(path), reason))

    def claim(self, path: _PathT, code: str, kind: str, note: str = "") -> None:
        self.codes.append((self.comp.pos(path), code, kind, note))

    def run(self) -> list[tuple[_Pos, str]]:
        data = self.data
        district = data.get("district")
        district_code = _code("district", district.get("code") if isinstance(district, dict) else None)
        if district_code:
            self.claim(("district", "code"), district_code, "district")

        platform_codes = self._platforms()
        for i, dept in _dicts(data.get("departments")):
            if _code("department", dept.get("code")):
                self.claim(("departments", i, "code"), dept["code"], "department")
        self._streets(district_code, platform_codes)
        self._categories(platform_codes)
        self._duplicates()
        self._overlaps()
        return self.problems

    def _platforms(self) -> list[str] | None:
        """The platform codes defined, or None when the list itself is broken."""
        if "platforms" not in self.data:
            return [code for code, _zh, _en in DEFAULT_PLATFORMS]
        raw = self.data.get("platforms")
        if not isinstance(raw, list):
            return None
        seen: dict[str, int] = {}
        for i, item in _dicts(raw):
            code = _code("platform", item.get("code"))
            if code is None:
                continue
            if code in seen:
                line = self.comp.pos(("platforms", seen[code], "code"))[0]
                self.err(("platforms", i, "code"), f'platform code "{code}" is used twice (first at line {line})')
            else:
                seen[code] = i
        if not raw:
            self.err(("platforms",), "the platforms list is empty; leave it out for the four standard platforms")
        return list(seen)

    def _streets(self, district_code: str | None, platform_codes: list[str] | None) -> None:
        streets = self.data.get("streets")
        if "streets" in self.data and not streets:
            self.err(
                ("streets",), "the file defines no streets; add at least one street with its communities and grids"
            )
        abbrs: dict[str, int] = {}
        for s, street in _dicts(streets):
            path: _PathT = ("streets", s)
            code = _code("street", street.get("code"))
            if code and district_code and not code.startswith(district_code):
                self.err(
                    path + ("code",), f'street code "{code}" does not start with its district code "{district_code}"'
                )
            if code:
                self.claim(path + ("code",), code, "street")

            abbr = _code("abbr", street.get("abbr"))
            if abbr:
                if abbr in abbrs:
                    line = self.comp.pos(("streets", abbrs[abbr], "abbr"))[0]
                    self.err(path + ("abbr",), f'street abbr "{abbr}" is used twice (first at line {line})')
                    abbr = None  # its team codes would only repeat this error
                else:
                    abbrs[abbr] = s

            teams = self._street_platforms(street, path, platform_codes)
            if abbr:
                note = f' (from street abbr "{abbr}")'
                for platform in teams:
                    self.claim(path + ("abbr",), team_code(abbr, platform), "team", note)
                self.claim(path + ("abbr",), command_room_code(abbr), "command room", note)

            communities = street.get("communities")
            if "communities" in street and not communities:
                self.err(
                    path + ("communities",),
                    f"{_entity(self.data, path)} has no communities; add at least one community with its grids",
                )
            for c, community in _dicts(communities):
                self._community(community, path + ("communities", c), code)

    def _street_platforms(self, street: dict, path: _PathT, defined: list[str] | None) -> list[str]:
        raw = street.get("platforms")
        if raw is None:
            return list(defined or [])
        if not isinstance(raw, list):
            return []
        out: list[str] = []
        for i, code in enumerate(raw):
            if not isinstance(code, str):
                continue
            item_path = path + ("platforms", i)
            if code in out:
                self.err(item_path, f'platform "{code}" is listed twice for {_entity(self.data, path)}')
            elif defined is not None and code not in defined:
                self.err(item_path, f'platform "{code}" is not defined (the platforms are {", ".join(defined)})')
            else:
                out.append(code)
        return out

    def _community(self, community: dict, path: _PathT, street_code: str | None) -> None:
        code = _code("community", community.get("code"))
        if code and street_code and not code.startswith(street_code):
            self.err(path + ("code",), f'community code "{code}" does not start with its street code "{street_code}"')
        if code:
            self.claim(path + ("code",), code, "community")
        grids = community.get("grids")
        if "grids" in community and not grids:
            self.err(path + ("grids",), f"{_entity(self.data, path)} has no grids; add at least one grid")
        for g, grid in _dicts(grids):
            gpath = path + ("grids", g)
            gcode = _code("grid", grid.get("code"))
            if gcode and code and not gcode.startswith(code):
                self.err(gpath + ("code",), f'grid code "{gcode}" does not start with its community code "{code}"')
            if gcode:
                self.claim(gpath + ("code",), gcode, "grid")
            if grid.get("boundary") is not None:
                geom = self._boundary(grid["boundary"], gpath + ("boundary",))
                if geom is not None:
                    self.grid_shapes.append((geom, gcode or f"#{g + 1}", gpath + ("boundary",)))

    def _boundary(self, value: Any, path: _PathT) -> BaseGeometry | None:
        if not isinstance(value, dict):
            return None  # pydantic says it must be a mapping
        before = len(self.problems)
        for key in value:
            if key not in ("type", "coordinates", "bbox"):
                self.problems.append(
                    (
                        self.comp.key_pos(path + (key,)),
                        f'unknown key "{key}" in the boundary (a GeoJSON geometry has "type" and "coordinates")',
                    )
                )
        kind = value.get("type")
        if kind not in ("Polygon", "MultiPolygon"):
            if kind is None:
                self.err(path, 'the boundary is missing the required field "type" (Polygon or MultiPolygon)')
            else:
                self.err(path + ("type",), f'boundary type must be "Polygon" or "MultiPolygon", not {_show(kind)}')
            return None
        if "coordinates" not in value:
            self.err(path, 'the boundary is missing the required field "coordinates"')
            return None
        cpath = path + ("coordinates",)
        coords = value["coordinates"]
        polygons: list[tuple[Any, _PathT]]
        if kind == "Polygon":
            polygons = [(coords, cpath)]
        elif isinstance(coords, list) and coords:
            polygons = [(p, cpath + (i,)) for i, p in enumerate(coords)]
        else:
            self.err(cpath, "MultiPolygon coordinates must be a non-empty list of polygons")
            return None
        clean: list = []
        for rings, ppath in polygons:
            clean.append(self._polygon(rings, ppath))
        if len(self.problems) > before:
            return None
        geom = _geo_shape(
            {"type": "Polygon", "coordinates": clean[0]} if kind == "Polygon" else {"type": kind, "coordinates": clean}
        )
        if not geom.is_valid:
            self.err(
                path,
                f"the boundary is not a valid polygon: {explain_validity(geom)} (rings must not cross themselves or each other)",
            )
            return None
        if geom.area <= 0:
            self.err(path, "the boundary has no area")
            return None
        return geom

    def _polygon(self, rings: Any, path: _PathT) -> list:
        if not isinstance(rings, list) or not rings:
            self.err(
                path,
                "polygon coordinates must be a list of rings, each a list of [lon, lat] points, like [[[120.16, 30.24], …]]",
            )
            return []
        out = []
        for r, ring in enumerate(rings):
            rpath = path + (r,)
            if not isinstance(ring, list):
                self.err(rpath, "a ring must be a list of [lon, lat] points")
                continue
            points = []
            for p, point in enumerate(ring):
                ppath = rpath + (p,)
                if not isinstance(point, list) or len(point) not in (2, 3) or not all(_is_number(v) for v in point):
                    self.err(ppath, f"a point must be [lon, lat] with two numbers, not {_show(point)}")
                    continue
                lon, lat = float(point[0]), float(point[1])
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    hint = (
                        " (GeoJSON puts longitude first: [lon, lat])" if -90 <= lon <= 90 and -180 <= lat <= 180 else ""
                    )
                    self.err(
                        ppath,
                        f"point [{_num(lon)}, {_num(lat)}] is outside longitude -180..180 / latitude -90..90{hint}",
                    )
                    continue
                points.append((lon, lat))
            if len(points) != len(ring):
                continue
            if len(points) < 4:
                self.err(
                    rpath, f"a ring needs at least 4 points (the last repeating the first), this one has {len(points)}"
                )
                continue
            if points[0] != points[-1]:
                self.err(
                    rpath,
                    f"the ring is not closed: its last point [{_num(points[-1][0])}, {_num(points[-1][1])}] "
                    f"must repeat its first point [{_num(points[0][0])}, {_num(points[0][1])}]",
                )
                continue
            out.append(points)
        return out

    def _duplicates(self) -> None:
        first: dict[str, tuple[_Pos, str]] = {}
        for pos, code, kind, note in sorted(self.codes, key=lambda c: c[0]):
            if code not in first:
                first[code] = (pos, kind)
                continue
            (line, _col), first_kind = first[code]
            if first_kind == kind:
                reason = f'{kind} code "{code}"{note} is used twice (first at line {line})'
            else:
                reason = f'{kind} code "{code}"{note} is already used by a {first_kind} at line {line}'
            self.problems.append((pos, reason))

    def _categories(self, platform_codes: list[str] | None) -> None:
        categories = self.data.get("categories")
        if "categories" in self.data and not categories:
            self.err(("categories",), "the responsibility list (categories) is empty; add at least one category")
        seen: dict[str, int] = {}
        for i, category in _dicts(categories):
            path: _PathT = ("categories", i)
            code = _code("category", category.get("code"))
            if code:
                if code in seen:
                    line = self.comp.pos(("categories", seen[code], "code"))[0]
                    self.err(path + ("code",), f'category code "{code}" is used twice (first at line {line})')
                else:
                    seen[code] = i
            platform = category.get("platform")
            if isinstance(platform, str) and platform_codes is not None and platform not in platform_codes:
                self.err(
                    path + ("platform",),
                    f'{_entity(self.data, path)} names platform "{platform}", which is not defined '
                    f"(the platforms are {', '.join(platform_codes)})",
                )

    def _overlaps(self) -> None:
        if len(self.grid_shapes) < 2:
            return
        geoms = [g for g, _code, _path in self.grid_shapes]
        tree = STRtree(geoms)
        for j, (geom, code, path) in enumerate(self.grid_shapes):
            for i in sorted(int(k) for k in tree.query(geom)):
                if i >= j:
                    continue
                other, other_code, other_path = self.grid_shapes[i]
                shared = geom.intersection(other).area
                smaller = min(geom.area, other.area)
                if smaller > 0 and shared > OVERLAP_TOLERANCE * smaller:
                    line = self.comp.pos(other_path)[0]
                    self.err(
                        path,
                        f'the boundary of grid "{code}" overlaps grid "{other_code}" (line {line}) by '
                        f"{100 * shared / smaller:.0f}% of the smaller one; neighbouring grids may share "
                        "edges but not area",
                    )


def _num(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1000 else f"{value:.6g}"


# --- public API --------------------------------------------------------------------


def _fail(source: str, problems: list[tuple[_Pos, str]]) -> OrgFileError:
    unique = sorted(dict.fromkeys(problems), key=lambda p: p[0])  # stable: file order within a node
    lines = [f"{source}:{line}:{col}: {reason}" for (line, col), reason in unique]
    return OrgFileError(lines[:MAX_ERRORS], total=len(lines))


def parse_org_text(text: str, source: str = "<string>") -> OrgSpec:
    """Parse and validate an organisation file's text; raise OrgFileError with every problem."""
    text = text.removeprefix("\ufeff")
    try:
        comp = _Composed(text)
    except _Problem as exc:
        raise _fail(source, [(exc.pos, exc.reason)]) from None
    except yaml.reader.ReaderError as exc:
        _pos, reason = _yaml_error_pos(exc)
        raise _fail(source, [(_reader_error_pos(text, exc), reason)]) from None
    except yaml.YAMLError as exc:
        raise _fail(source, [_yaml_error_pos(exc)]) from None

    if comp.empty or comp.data is None:
        raise _fail(source, [((1, 1), "the file is empty: it must define version, district, streets and categories")])
    if not isinstance(comp.data, dict):
        raise _fail(
            source,
            [
                (
                    comp.pos(()),
                    f"the file must be a mapping of keys (version, district, streets, …), not {_show(comp.data)}",
                )
            ],
        )

    problems = list(comp.problems)
    spec: OrgSpec | None = None
    try:
        spec = OrgSpec.model_validate(comp.data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, comp)
    problems += _Checker(comp).run()
    if problems or spec is None:
        raise _fail(source, problems)
    spec._source = source
    return spec


def load_org_file(path: str | Path) -> OrgSpec:
    """Read and validate an organisation file; raise OrgFileError with every problem."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise OrgFileError([f"{source}: the file cannot be read ({exc.strerror or exc})"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise OrgFileError(
            [f"{source}:{line}:{col}: the file is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8"]
        ) from None
    return parse_org_text(text, source)
