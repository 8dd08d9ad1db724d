"""Where a report is: a point resolved to grid, community and street."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import bilingual
from bot.org import index
from bot.org.geo import GridIndex, GridShape, valid_coordinates
from bot.runtime import Runtime
from storage import orgs
from storage.models import pk


@dataclass(frozen=True)
class Place:
    grid_id: int
    grid_code: str
    grid_name_zh: str
    grid_name_en: str
    community_id: int
    street_id: int
    street_name_zh: str
    street_name_en: str

    def grid_name(self, lang: str) -> str:
        return bilingual(lang, self.grid_name_zh, self.grid_name_en)

    def street_name(self, lang: str) -> str:
        return bilingual(lang, self.street_name_zh, self.street_name_en)


def grid_index(rt: Runtime) -> GridIndex:
    known = rt.cache.get(index.GRID_INDEX)
    if known is None:
        with rt.db.read() as s:
            shapes = [
                GridShape(
                    grid_id=pk(g),
                    code=g.code,
                    boundary=g.boundary,
                    centre=(g.centre_lat, g.centre_lon)
                    if g.centre_lat is not None and g.centre_lon is not None
                    else None,
                )
                for g in orgs.active_grids(s)
            ]
        known = rt.cache[index.GRID_INDEX] = GridIndex(shapes)
    return known


def place_of_grid(rt: Runtime, grid_id: int) -> Place | None:
    """The grid and its street, from the organisation in memory (no database round trip:
    every location a reporter sends asks this)."""
    known = index.org(rt)
    grid = known.grid(grid_id)
    street = known.street(grid.street_id) if grid is not None else None
    if grid is None or not grid.active or street is None:
        return None
    return Place(
        grid_id=grid_id,
        grid_code=grid.code,
        grid_name_zh=grid.name_zh,
        grid_name_en=grid.name_en,
        community_id=grid.community_id,
        street_id=pk(street),
        street_name_zh=street.name_zh,
        street_name_en=street.name_en,
    )


def locate(rt: Runtime, lat: float, lon: float) -> Place | None:
    """The grid containing the point, or None when it lies outside every grid."""
    if not valid_coordinates(lat, lon):
        return None
    grid_id = grid_index(rt).locate(lat, lon)
    return place_of_grid(rt, grid_id) if grid_id is not None else None


def grid_centre(rt: Runtime, grid_id: int) -> tuple[float, float] | None:
    return grid_index(rt).centre_of(grid_id)


def place_by_grid_code(rt: Runtime, code: str) -> Place | None:
    grid = next((g for g in index.org(rt).grids.values() if g.code == code and g.active), None)
    return place_of_grid(rt, pk(grid)) if grid is not None else None
