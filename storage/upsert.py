"""INSERT … ON CONFLICT on either database: SQLite's and PostgreSQL's are separate constructs."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session


def insert_on_conflict(database: Session | str, entity: Any) -> Any:
    """An INSERT into `entity` that can say ON CONFLICT, for the session's database (or the
    database kind named: its dialect's name)."""
    dialect = database if isinstance(database, str) else database.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(entity)
