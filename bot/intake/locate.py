"""Where a report is: a point resolved to grid, community and street."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import bilingual
from bot.org.geo import GridIndex, GridShape, valid_coordinates
from bot.runtime import Runtime
from storage import orgs


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
    index = rt.cache.get("grid_index")
    if index is None:
        with rt.db.read() as s:
            shapes = [
                GridShape(
                    grid_id=g.id,  # type: ignore[arg-type]
                    code=g.code,
                    boundary=g.boundary,
                    centre=(g.centre_lat, g.centre_lon)
                    if g.centre_lat is not None and g.centre_lon is not None
                    else None,
                )
                for g in orgs.active_grids(s)
            ]
        index = GridIndex(shapes)
        rt.cache["grid_index"] = index
    return index


def place_of_grid(rt: Runtime, grid_id: int) -> Place | None:
    with rt.db.read() as s:
        grid = orgs.grid(s, grid_id)
        if grid is None or not grid.active:
            return None
        street = orgs.street(s, grid.street_id)
        assert street is not None
        return Place(
            grid_id=grid_id,
            grid_code=grid.code,
            grid_name_zh=grid.name_zh,
            grid_name_en=grid.name_en,
            community_id=grid.community_id,
            street_id=street.id,  # type: ignore[arg-type]
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
    with rt.db.read() as s:
        grid = orgs.grid_by_code(s, code)
        grid_id = grid.id if grid else None
    return place_of_grid(rt, grid_id) if grid_id else None
