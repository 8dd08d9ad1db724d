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

from sqlmodel import Session

from bot.cases.cards import Names
from bot.errors import DomainError, NotAllowed
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import orgs
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


def _sight(s: Session, person: Person, district: District | None) -> tuple[bool, set[int], set[int]]:
    """(whole district, street ids, team unit ids) the person may see."""
    whole = person.is_admin or bool(district and district.code in person.scopes(Role.SUPERVISOR))
    streets: set[int] = set()
    for code in person.scopes(Role.DISPATCHER) + person.scopes(Role.SUPERVISOR):
        street = orgs.street_by_code(s, code)
        if street is None:
            unit = orgs.unit_by_code(s, code)
            if unit is not None and unit.street_id:
                streets.add(unit.street_id)
        else:
            streets.add(pk(street))
    teams: set[int] = set()
    for code in person.scopes(Role.STAFF):
        unit = orgs.unit_by_code(s, code)
        if unit is not None:
            teams.add(pk(unit))
    return whole, streets, teams


def resolve(rt: Runtime, s: Session, person: Person, code: str | None) -> Scope:
    """The scope a person named (or their own when none), checked against their sight."""
    if not may_use_desk(person):
        raise NotAllowed()
    district = orgs.district(s)
    tz = district.timezone if district else rt.settings.timezone
    whole, streets, teams = _sight(s, person, district)
    if code is None:
        if whole and district is not None:
            return _scope(district, tz)
        if streets:
            street = orgs.street(s, min(streets))
            assert street is not None
            return _scope(street, tz)
        if teams:
            unit = orgs.unit(s, min(teams))
            assert unit is not None
            return _scope(unit, tz)
        raise NotAllowed()
    found = orgs.find_scope(s, code[:32])
    if found is None:
        raise UnknownDeskScope(code=code[:32])
    row = found[1]
    scope = _scope(row, tz)
    if whole:
        return scope
    street_of = pk(row) if isinstance(row, Street) else row.street_id if isinstance(row, Grid) else None
    if street_of is not None and street_of in streets:
        return scope
    if isinstance(row, Unit) and (pk(row) in teams or (row.kind != UnitKind.DEPARTMENT and row.street_id in streets)):
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


def by_code(rt: Runtime, s: Session, code: str) -> Scope:
    """A scope by its code, for the operator's command line (no asker to check)."""
    district = orgs.district(s)
    tz = district.timezone if district else rt.settings.timezone
    found = orgs.find_scope(s, code[:32])
    if found is None:
        raise UnknownDeskScope(code=code[:32])
    return _scope(found[1], tz)
