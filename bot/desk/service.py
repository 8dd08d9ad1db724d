"""What the desk's commands ask of the domain: arguments read, scope checked, figures computed."""

from __future__ import annotations

from dataclasses import dataclass

from bot.desk import figures, periods, scopes
from bot.desk.figures import Report
from bot.errors import DomainError
from bot.people.roles import Person
from bot.runtime import Runtime


class DeskUsage(DomainError):
    key = "desk.stats_usage"


# The breakdown a scope opens with: one level down.
DEFAULT_BREAKDOWN = {
    scopes.DISTRICT: "street",
    scopes.STREET: "team",
    scopes.TEAM: "person",
    scopes.DEPARTMENT: "category",
    scopes.GRID: "category",
}


@dataclass(frozen=True)
class Request:
    scope: str | None
    period: str | None


def read_args(args: list[str]) -> Request:
    """`[SCOPE] [PERIOD]` in either order."""
    scope = period = None
    for arg in args:
        if periods.looks_like_period(arg) and period is None:
            period = arg
        elif scope is None and not periods.looks_like_period(arg):
            scope = arg
        else:
            raise DeskUsage()
    return Request(scope, period)


def scope_and_period(
    rt: Runtime, person: Person, scope_code: str | None, period_text: str | None
) -> tuple[scopes.Scope, periods.Period]:
    scope = scopes.resolve(rt, person, scope_code)
    return scope, periods.parse(period_text, rt.clock.now(), scopes.zone(scope))


def stats(rt: Runtime, person: Person, scope_code: str | None, period_text: str | None, by: str | None) -> Report:
    scope = scopes.resolve(rt, person, scope_code)
    period = periods.parse(period_text, rt.clock.now(), scopes.zone(scope))
    breakdown = DEFAULT_BREAKDOWN[scope.kind] if by is None else (None if by == "none" else by)
    return figures.compute(rt, scope, period, breakdown)
