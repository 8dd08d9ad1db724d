"""Tables that hold at most one row per user, read and written on nearly every private
message: the report being written (ReportDraft) and the words and photos a case action
waits for (PendingInput).

Their rows are plain frozen values moved by Core statements built once, not ORM objects: a
report step reads the row, then writes it back changed, and through the ORM that read and
the flush of the change cost four times what the statements themselves do. A row this
unit of work has read or written is kept on the session, so reading it again by id costs
no statement; a rollback forgets them (the transaction's writes are gone with it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, bindparam, delete, event, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from storage.direct import Direct


class _Row(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def user_id(self) -> int: ...


R = TypeVar("R", bound=_Row)

_HELD = "griddesk_one_per_user"  # on a session's info: {table name: {row id: row}}


class OnePerUser(Generic[R]):
    """The statements of one such table, and the row type its reads return (a frozen
    dataclass whose fields are the table's columns)."""

    def __init__(self, table: Table, row: type[R]) -> None:
        names = [c.name for c in table.columns]
        assert names == [f.name for f in dataclasses.fields(row)], f"{row.__name__} must list {table.name}'s columns"  # type: ignore[arg-type]
        self.table = table
        self.row: Callable[..., R] = row
        c = table.c
        of = select(table).where(c.user_id == bindparam("user_id"))
        self._of = Direct(of)
        self._of_locked = Direct(of.with_for_update())
        self._by_id = Direct(select(table).where(c.id == bindparam("row_id")))
        self._insert = Direct(table.insert().returning(c.id))
        self._update = Direct(table.update().where(c.id == bindparam("row_id")))
        remove = delete(table).where(c.user_id == bindparam("user_id"))
        self._remove = Direct(remove)
        self._remove_idle = Direct(remove.where(c.updated_at < bindparam("before")))

    def of(self, session: Session, user_id: int, *, for_update: bool = False) -> R | None:
        """The user's row; `for_update` locks it until the unit of work ends (PostgreSQL:
        two processes' messages of one person queue here; SQLite's writers queue anyway)."""
        stmt = self._of_locked if for_update else self._of
        found = stmt(session, {"user_id": user_id}).first()
        return self._hold(session, self.row(*found)) if found is not None else None

    def by_id(self, session: Session, row_id: int) -> R | None:
        """The row, from this unit of work's if it has read or written it (no statement)."""
        held = self._held(session)
        if row_id in held:
            return held[row_id]
        found = self._by_id(session, {"row_id": row_id}).first()
        return self._hold(session, self.row(*found)) if found is not None else None

    def replace(self, session: Session, **values: Any) -> R:
        """The user's new row, in place of any they had (`values` are every column but id)."""
        self.remove(session, values["user_id"])
        row_id = self._insert(session, values).scalar_one()
        return self._hold(session, self.row(id=row_id, **values))

    def update(self, session: Session, row: R, **values: Any) -> R:
        """The row with `values` changed, written; what the caller holds is left as read."""
        self._update(session, {"row_id": row.id, **values})
        return self._hold(session, dataclasses.replace(row, **values))  # type: ignore[type-var]

    def remove(self, session: Session, user_id: int) -> None:
        self._remove(session, {"user_id": user_id})
        self._forget_user(session, user_id)

    def remove_if_idle(self, session: Session, user_id: int, before: Any) -> None:
        """Delete the user's row only if nobody touched it since `before`."""
        self._remove_idle(session, {"user_id": user_id, "before": before})
        self._forget_user(session, user_id)

    def _held(self, session: Session) -> dict[int, R]:
        tables: dict[str, dict[int, R]] = session.info.setdefault(_HELD, {})
        return tables.setdefault(self.table.name, {})

    def _hold(self, session: Session, row: R) -> R:
        self._held(session)[row.id] = row
        return row

    def _forget_user(self, session: Session, user_id: int) -> None:
        held = self._held(session)
        for row_id in [k for k, r in held.items() if r.user_id == user_id]:
            del held[row_id]


def _forget_all(session: OrmSession, *_: Any) -> None:
    session.info.pop(_HELD, None)


event.listen(OrmSession, "after_soft_rollback", _forget_all)
