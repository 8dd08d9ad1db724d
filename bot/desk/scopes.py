"""Which cases a desk command looks at (a scope) and who may look.

A scope is the district, a street, a team, a command room (its street), a department (the
cases whistled to it) or a grid, named by its code. Admins and district supervisors see
everything; dispatchers and street supervisors their street, its teams and grids; team
staff their own team only. A scope outside the asker's sight is refused like an unknown one
would be to a resident, but with its own message so staff know why.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.cases.cards import Names
from bot.errors import DomainError, NotAllowed
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage.models import District, Grid, Role, Street, Unit, UnitKind, pk

DISTRICT, STREET, TEAM, DEPARTMENT, GRID = "district", "street", "team", "department", "grid"


class UnknownDeskScope(DomainError):
    key = "desk.unknown_scope"


class ScopeNotVisible(DomainError):
    key = "desk.scope_not_visible"


@dataclass(frozen=True)
class Scope:
    kind: str  # district, street, team, department, grid
    code: str
    names: Names
    street_ids: tuple[int, ...] | None = None  # None: every street
    unit_id: int | None = None  # a team's cases
    department_id: int | None = None  # the cases whistled to a department
    grid_id: int | None = None
    tz: str = "Asia/Shanghai"


def may_use_desk(person: Person) -> bool:
    return person.is_admin or any(person.has_role(r) for r in (Role.DISPATCHER, Role.SUPERVISOR, Role.STAFF))


@dataclass(frozen=True)
class Sight:
    """What a person may look at on the desk: the whole district, or these streets (their
    teams and grids with them) and these teams."""

    whole: bool
    street_ids: frozenset[int]
    unit_ids: frozenset[int]

    @property
    def street_filter(self) -> tuple[int, ...] | None:
        """The streets a query keeps, in order; None: every street."""
        return None if self.whole else tuple(sorted(self.street_ids))

    @property
    def unit_filter(self) -> tuple[int, ...]:
        """The teams a query keeps besides (none when it sees everything)."""
        return () if self.whole else tuple(sorted(self.unit_ids))


def sight(rt: Runtime, person: Person) -> Sight:
    """The desk's rule of who sees what (the organisation in memory: no statement)."""
    if not may_use_desk(person):
        raise NotAllowed()
    known = index.org(rt)
    district = known.district
    whole = person.is_admin or (district is not None and district.code in person.scopes(Role.SUPERVISOR))
    streets: set[int] = set()
    for code in person.scopes(Role.DISPATCHER) + person.scopes(Role.SUPERVISOR):
        if (street := known.active_street(code)) is not None:
            streets.add(pk(street))
        elif (unit := known.active_unit(code)) is not None and unit.street_id:
            streets.add(unit.street_id)
    teams = frozenset(pk(u) for code in person.scopes(Role.STAFF) if (u := known.active_unit(code)))
    return Sight(whole, frozenset(streets), teams)


def resolve(rt: Runtime, person: Person, code: str | None) -> Scope:
    """The scope a person named (or their own when none), checked against their sight."""
    seen = sight(rt, person)
    known = index.org(rt)
    district = known.district
    tz = district.timezone if district else rt.settings.timezone
    if code is None:
        if seen.whole and district is not None:
            return _scope(district, tz)
        if seen.street_ids:
            street = known.street(min(seen.street_ids))
            assert street is not None
            return _scope(street, tz)
        if seen.unit_ids:
            unit = known.unit(min(seen.unit_ids))
            assert unit is not None
            return _scope(unit, tz)
        raise NotAllowed()
    found = known.find_scope(code[:32])
    if found is None:
        raise UnknownDeskScope(code=code[:32])
    row = found[1]
    scope = _scope(row, tz)
    if seen.whole:
        return scope
    street_of = pk(row) if isinstance(row, Street) else row.street_id if isinstance(row, Grid) else None
    if street_of is not None and street_of in seen.street_ids:
        return scope
    if isinstance(row, Unit) and (
        pk(row) in seen.unit_ids or (row.kind != UnitKind.DEPARTMENT and row.street_id in seen.street_ids)
    ):
        return scope
    raise ScopeNotVisible(code=code[:32])


def _scope(row: object, tz: str) -> Scope:
    if isinstance(row, District):
        return Scope(DISTRICT, row.code, Names(row.name_zh, row.name_en), tz=tz)
    if isinstance(row, Street):
        return Scope(STREET, row.code, Names(row.name_zh, row.name_en), street_ids=(pk(row),), tz=tz)
    if isinstance(row, Grid):
        return Scope(GRID, row.code, Names(row.name_zh, row.name_en), grid_id=pk(row), tz=tz)
    assert isinstance(row, Unit)
    names = Names(row.name_zh, row.name_en)
    if row.kind == UnitKind.COMMAND_ROOM:  # the command room answers for its whole street
        return Scope(STREET, row.code, names, street_ids=(row.street_id,) if row.street_id else (), tz=tz)
    if row.kind == UnitKind.DEPARTMENT:
        return Scope(DEPARTMENT, row.code, names, department_id=pk(row), tz=tz)
    return Scope(TEAM, row.code, names, unit_id=pk(row), tz=tz)


def zone(scope: Scope) -> ZoneInfo:
    return ZoneInfo(scope.tz)


def by_code(rt: Runtime, code: str) -> Scope:
    """A scope by its code, for the operator's command line (no asker to check)."""
    known = index.org(rt)
    tz = known.district.timezone if known.district else rt.settings.timezone
    found = known.find_scope(code[:32])
    if found is None:
        raise UnknownDeskScope(code=code[:32])
    return _scope(found[1], tz)
