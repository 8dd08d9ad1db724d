"""Routing by the responsibility list: which team of the street handles a category."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class TeamLike(Protocol):
    id: int | None
    platform_id: int | None
    active: bool


Team = TypeVar("Team", bound=TeamLike)


def route(category_platform_id: int | None, street_teams: Sequence[Team]) -> Team | None:
    """The street's team for the category's platform; None sends it to the command room."""
    if category_platform_id is None:
        return None
    for team in street_teams:
        if team.active and team.platform_id == category_platform_id:
            return team
    return None
