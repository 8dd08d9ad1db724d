"""Roles, the scope each one is bound to, and what each may do."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import bilingual
from storage.models import Role, UnitKind

# role -> the kinds of scope code an invite for it may name
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    Role.WORKER: ("grid",),
    Role.STAFF: (UnitKind.TEAM,),
    Role.DISPATCHER: ("street", UnitKind.COMMAND_ROOM),
    Role.DEPARTMENT: (UnitKind.DEPARTMENT,),
    Role.SUPERVISOR: ("street", "district"),
}

ADMIN = "admin"


@dataclass(frozen=True)
class MembershipView:
    role: str
    scope_kind: str
    scope_code: str
    scope_name_zh: str
    scope_name_en: str

    def scope_name(self, lang: str) -> str:
        return bilingual(lang, self.scope_name_zh, self.scope_name_en)


@dataclass(frozen=True)
class Person:
    """Who is asking: enough for handlers to choose words and check rights."""

    user_id: int
    telegram_id: int
    name: str
    language: str
    is_admin: bool
    memberships: tuple[MembershipView, ...] = ()

    @property
    def roles(self) -> frozenset[str]:
        roles = {m.role for m in self.memberships}
        if self.is_admin:
            roles.add(ADMIN)
        return frozenset(roles)

    @property
    def is_resident(self) -> bool:
        return not self.memberships and not self.is_admin

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def scopes(self, role: str) -> list[str]:
        return [m.scope_code for m in self.memberships if m.role == role]


# The commands each role sees in /help, in order. Everyone has the "common" ones.
COMMON_COMMANDS = ("start", "report", "my", "help", "lang", "whoami", "cancel")
ROLE_COMMANDS: dict[str, tuple[str, ...]] = {
    "resident": (),
    Role.WORKER: ("case", "ratelink"),
    Role.STAFF: ("tasks", "case", "ratelink", "stats", "queue", "find", "export", "map"),
    Role.DISPATCHER: (
        "tasks",
        "case",
        "assign",
        "duplicate",
        "reject",
        "ratelink",
        "stats",
        "queue",
        "find",
        "export",
        "map",
    ),
    Role.DEPARTMENT: ("tasks", "case"),
    Role.SUPERVISOR: ("case", "stats", "export", "map"),
    ADMIN: ("invite", "revoke", "bind", "case", "stats", "export", "map"),
}


def commands_for(person: Person) -> list[str]:
    keys = ["resident"] if person.is_resident else sorted(person.roles)
    seen: list[str] = list(COMMON_COMMANDS)
    for key in keys:
        for command in ROLE_COMMANDS.get(key, ()):
            if command not in seen:
                seen.append(command)
    return seen
