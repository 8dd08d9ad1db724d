"""The organisation in memory: district, streets, communities, grids, platforms, units and
categories, read once per process and kept until the organisation is imported again
(`griddesk run` imports at start; `rt.cache` is new then).

Every update asks who a person is to a case and every card shows names of places and
teams: reading those rows from the database each time was most of an update's statements.
The rows are detached copies: read them, never change them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from bot.runtime import Runtime
from storage import chats
from storage.models import Category, Community, District, Grid, Platform, Street, Unit, UnitKind


@dataclass(frozen=True)
class Org:
    district: District | None
    streets: dict[int, Street] = field(default_factory=dict)
    communities: dict[int, Community] = field(default_factory=dict)
    grids: dict[int, Grid] = field(default_factory=dict)
    platforms: dict[int, Platform] = field(default_factory=dict)
    units: dict[int, Unit] = field(default_factory=dict)
    categories: dict[int, Category] = field(default_factory=dict)
    command_rooms: dict[int, Unit] = field(default_factory=dict)  # street id → its active command room

    def unit(self, unit_id: int | None) -> Unit | None:
        return self.units.get(unit_id) if unit_id is not None else None

    def street(self, street_id: int | None) -> Street | None:
        return self.streets.get(street_id) if street_id is not None else None

    def grid(self, grid_id: int | None) -> Grid | None:
        return self.grids.get(grid_id) if grid_id is not None else None

    def community(self, community_id: int | None) -> Community | None:
        return self.communities.get(community_id) if community_id is not None else None

    def category(self, category_id: int | None) -> Category | None:
        return self.categories.get(category_id) if category_id is not None else None

    def platform(self, platform_id: int | None) -> Platform | None:
        return self.platforms.get(platform_id) if platform_id is not None else None

    def command_room(self, street_id: int | None) -> Unit | None:
        return self.command_rooms.get(street_id) if street_id is not None else None

    def active_unit(self, code: str) -> Unit | None:
        """The active unit of this code (a role's scope names its unit by code)."""
        return next((u for u in self.units.values() if u.code == code and u.active), None)

    def active_street(self, code: str) -> Street | None:
        return next((st for st in self.streets.values() if st.code == code and st.active), None)

    def active_grid(self, code: str) -> Grid | None:
        return next((g for g in self.grids.values() if g.code == code and g.active), None)

    def find_scope(self, code: str) -> tuple[str, Grid | Unit | Street | District] | None:
        """What a typed code names, as ("grid" | "unit" | "street" | "district", row): the
        first that has it, in that order (a unit's code is upper case), or None."""
        code = code.strip()
        if (grid := self.active_grid(code)) is not None:
            return "grid", grid
        if (unit := self.active_unit(code.upper())) is not None:
            return "unit", unit
        if (street := self.active_street(code)) is not None:
            return "street", street
        if self.district is not None and self.district.code == code:
            return "district", self.district
        return None

    def teams(self, street_id: int) -> list[Unit]:
        """The street's active teams, in id order (routing takes the first that fits)."""
        return [
            u
            for _id, u in sorted(self.units.items())
            if u.street_id == street_id and u.kind == UnitKind.TEAM and u.active
        ]


# What this process read from the organisation and keeps (keys of rt.cache): the organisation
# itself, the category catalogue (bot/org/categories.py), the grid shapes (bot/intake/locate.py),
# each street's deadline settings (bot/cases/deadlines.py), the groups with the units they
# serve (bot/org/chats.py), each unit's group (:func:`unit_group`) and the catalogue's terms
# for suggestions (bot/org/categories.py).
ORG, CATEGORIES, GRID_INDEX, STREET_CLOCKS, CHATS = "org", "categories", "grid_index", "street_clocks", "chats"
UNIT_GROUPS, CATEGORY_TERMS = "unit_groups", "category_terms"
# Also kept, for a few seconds only: who listens to each street's webhooks (bot/interop/webhooks.py;
# the organisation file declares some of them).
WEBHOOK_LISTENERS = "webhook_listeners"


def forget(rt: Runtime) -> None:
    """The organisation changed (an import): everything read from it is read again."""
    for key in (ORG, CATEGORIES, GRID_INDEX, STREET_CLOCKS, CHATS, UNIT_GROUPS, CATEGORY_TERMS, WEBHOOK_LISTENERS):
        rt.cache.pop(key, None)


def unit_group(rt: Runtime, s: Session, unit_id: int | None) -> int | None:
    """The Telegram id of the group bound to the unit (None: it has none), read in `s` the first
    time and kept until a group changes (bot/org/chats.py's forget_chats)."""
    if unit_id is None:
        return None
    # Taken before the read: a group changed meanwhile empties a new dict, not this one.
    known: dict[int, int | None] = rt.cache.setdefault(UNIT_GROUPS, {})
    if unit_id not in known:
        chat = chats.chat_for_unit(s, unit_id)
        known[unit_id] = chat.telegram_id if chat is not None else None
    return known[unit_id]


def org(rt: Runtime) -> Org:
    """The organisation as this process knows it (read in a session of its own the first
    time, so no caller's unit of work sees its rows detached)."""
    cached = rt.cache.get(ORG)
    if cached is None:
        with rt.db.read() as s:
            cached = _read(s)
        rt.cache[ORG] = cached
    return cached


def _read(s: Session) -> Org:
    def by_id(model: Any) -> dict[int, Any]:
        rows: list[Any] = list(s.exec(select(model)))
        for row in rows:
            s.expunge(row)  # detached copies, readable after the session closes
        return {row.id: row for row in rows}

    units = by_id(Unit)
    return Org(
        district=next(iter(by_id(District).values()), None),
        streets=by_id(Street),
        communities=by_id(Community),
        grids=by_id(Grid),
        platforms=by_id(Platform),
        units=units,
        categories=by_id(Category),
        command_rooms={
            u.street_id: u for u in units.values() if u.kind == UnitKind.COMMAND_ROOM and u.active and u.street_id
        },
    )
