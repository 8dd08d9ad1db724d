"""Typed row look-ups for tests: ``Session.get`` returns ``Model | None``; a test that expects the
row to exist says so with :func:`fetch`, which fails with a clear message when it does not."""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import Session, SQLModel

M = TypeVar("M", bound=SQLModel)


def fetch(session: Session, model: type[M], row_id: int | None) -> M:
    """The ``model`` row with id ``row_id`` (AssertionError if there is none)."""
    assert row_id is not None, f"no id given for {model.__name__}"
    row = session.get(model, row_id)
    assert row is not None, f"{model.__name__} {row_id} does not exist"
    return row
