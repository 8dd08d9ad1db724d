"""Who someone is to a case: the roles of the state machine they hold on it."""

from __future__ import annotations

from sqlmodel import Session

from bot.cases import workflow
from bot.people.roles import Person
from storage import casework, orgs
from storage.models import Case, Role


def actors(s: Session, person: Person, case: Case) -> set[str]:
    found: set[str] = set()
    unit = orgs.unit(s, case.unit_id) if case.unit_id else None
    if unit is not None and unit.code in person.scopes(Role.STAFF):
        found.add(workflow.TEAM)
    if case.owner_user_id is not None and case.owner_user_id == person.user_id:
        found.add(workflow.OWNER)
    if case.reporter_user_id is not None and case.reporter_user_id == person.user_id:
        found.add(workflow.REPORTER)
    street = orgs.street(s, case.street_id) if case.street_id else None
    if street is not None and street.code in person.scopes(Role.DISPATCHER):
        found.add(workflow.DISPATCHER)
    departments = set(person.scopes(Role.DEPARTMENT))
    if departments:
        for whistle in casework.whistles_of(s, case.id):  # type: ignore[arg-type]
            dept = orgs.unit(s, whistle.unit_id)
            if dept is not None and dept.code in departments:
                found.add(workflow.DEPARTMENT)
    if person.is_admin:
        found.add(workflow.ADMIN)
    return found
