"""Read queries over the organisation: scopes, units, names."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import Category, Community, District, Grid, Platform, Street, Unit


def district(session: Session) -> District | None:
    return session.exec(select(District)).first()


def street_by_code(session: Session, code: str) -> Street | None:
    return session.exec(select(Street).where(Street.code == code, col(Street.active))).first()


def street(session: Session, street_id: int) -> Street | None:
    return session.get(Street, street_id)


def grid_by_code(session: Session, code: str) -> Grid | None:
    return session.exec(select(Grid).where(Grid.code == code, col(Grid.active))).first()


def community(session: Session, community_id: int) -> Community | None:
    return session.get(Community, community_id)


def unit_by_code(session: Session, code: str) -> Unit | None:
    return session.exec(select(Unit).where(Unit.code == code, col(Unit.active))).first()


def unit(session: Session, unit_id: int) -> Unit | None:
    return session.get(Unit, unit_id)


def command_room_of(session: Session, street_id: int) -> Unit | None:
    stmt = select(Unit).where(Unit.street_id == street_id, Unit.kind == "command_room", col(Unit.active))
    return session.exec(stmt).first()


def active_streets(session: Session) -> list[Street]:
    return list(session.exec(select(Street).where(col(Street.active)).order_by(col(Street.id))))


def active_grids(session: Session) -> list[Grid]:
    return list(session.exec(select(Grid).where(col(Grid.active)).order_by(col(Grid.id))))


def active_units(session: Session) -> list[Unit]:
    return list(session.exec(select(Unit).where(col(Unit.active)).order_by(col(Unit.id))))


def active_categories(session: Session) -> list[Category]:
    stmt = select(Category).where(col(Category.active)).order_by(col(Category.sort_order), col(Category.id))
    return list(session.exec(stmt))


def platforms(session: Session) -> list[Platform]:
    return list(session.exec(select(Platform).order_by(col(Platform.id))))


def scope_row(session: Session, scope_kind: str, code: str) -> object | None:
    """The row a stored membership scope names: one lookup, since its kind is known."""
    if scope_kind == "grid":
        return grid_by_code(session, code)
    if scope_kind == "unit":
        return unit_by_code(session, code)
    if scope_kind == "street":
        return street_by_code(session, code)
    d = district(session)
    return d if d is not None and d.code == code else None


def grid(session: Session, grid_id: int) -> Grid | None:
    return session.get(Grid, grid_id)


def category(session: Session, category_id: int) -> Category | None:
    return session.get(Category, category_id)


def teams_of_street(session: Session, street_id: int) -> list[Unit]:
    stmt = select(Unit).where(Unit.street_id == street_id, Unit.kind == "team", col(Unit.active)).order_by(col(Unit.id))
    return list(session.exec(stmt))


def communities_of_street(session: Session, street_id: int) -> list[Community]:
    stmt = select(Community).where(Community.street_id == street_id, col(Community.active)).order_by(col(Community.id))
    return list(session.exec(stmt))


def grids_of_community(session: Session, community_id: int) -> list[Grid]:
    stmt = select(Grid).where(Grid.community_id == community_id, col(Grid.active)).order_by(col(Grid.id))
    return list(session.exec(stmt))
