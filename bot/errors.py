"""Typed errors of the domain. Each carries the message key handlers translate."""

from __future__ import annotations


class DomainError(Exception):
    """A rule said no. `key` names the localized answer, `params` fill it in."""

    key = "error.generic"

    def __init__(self, **params: object) -> None:
        super().__init__(f"{self.key} {params}")
        self.params = params


class NotAllowed(DomainError):
    key = "error.not_allowed"


class AdminOnly(DomainError):
    key = "error.admin_only"


class UnknownRole(DomainError):
    key = "invite.unknown_role"


class UnknownScope(DomainError):
    key = "invite.unknown_scope"


class ScopeDoesNotFitRole(DomainError):
    key = "invite.scope_mismatch"


class InviteNotFound(DomainError):
    key = "join.not_found"


class InviteUsed(DomainError):
    key = "join.used"


class InviteExpired(DomainError):
    key = "join.expired"


class UnknownUnit(DomainError):
    key = "bind.unknown_code"


class NotAGroup(DomainError):
    key = "bind.not_group"
