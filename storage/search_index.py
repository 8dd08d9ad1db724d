"""The text index `/find` uses for codes, addresses and descriptions (substrings: Chinese has
no word boundaries, so both indexes are of trigrams).

- SQLite: an FTS5 table `case_search` (trigram tokenizer, external content over `cases`),
  kept in step by three triggers on `cases`.
- PostgreSQL: GIN indexes with `pg_trgm`'s `gin_trgm_ops` on code, address and description;
  the planner uses them for the LIKE/ILIKE the search already runs.

Both are optional: migration 0007 installs them when it can (the FTS5 trigram tokenizer needs
SQLite 3.34; `pg_trgm` needs the extension to be available and the right to create it), and
the search falls back to scanning the scope's cases when they are missing
(`storage/desk_queue.py`).
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

log = logging.getLogger(__name__)

FTS_TABLE = "case_search"
FTS_TRIGGERS = ("case_search_ai", "case_search_ad", "case_search_au")
TRGM_INDEXES = {
    "ix_case_trgm_code": "code",
    "ix_case_trgm_address": "address",
    "ix_case_trgm_description": "description",
}
COLUMNS = "code, address, description"

_SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5({COLUMNS}, content='cases', "
    "content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER IF NOT EXISTS case_search_ai AFTER INSERT ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, new.code, new.address, new.description); END",
    f"CREATE TRIGGER IF NOT EXISTS case_search_ad AFTER DELETE ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS}) "
    "VALUES ('delete', old.id, old.code, old.address, old.description); END",
    f"CREATE TRIGGER IF NOT EXISTS case_search_au AFTER UPDATE OF {COLUMNS} ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS}) "
    "VALUES ('delete', old.id, old.code, old.address, old.description); "
    f"INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, new.code, new.address, new.description); END",
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
)


def is_search_object(name: str | None) -> bool:
    """Tables and indexes of this module (the models do not describe them)."""
    return bool(name) and (str(name).startswith(FTS_TABLE) or str(name) in TRGM_INDEXES)


def install(conn: Connection, extension: str = "pg_trgm") -> bool:
    """Create the index if this database can have it; False (and nothing changed) if not."""
    if conn.dialect.name == "sqlite":
        try:
            with conn.begin_nested():
                for ddl in _SQLITE_DDL:
                    conn.exec_driver_sql(ddl)
        except DBAPIError as exc:  # no FTS5, or no trigram tokenizer (SQLite < 3.34)
            log.warning("no text index for /find (SQLite FTS5 trigram unavailable: %s); /find scans", exc)
            return False
        return True
    if conn.dialect.name != "postgresql":
        return False
    try:
        try:  # in public when it can: a schema of its own (tests) may be dropped with the extension
            with conn.begin_nested():
                conn.exec_driver_sql(f'CREATE EXTENSION IF NOT EXISTS "{extension}" SCHEMA public')
        except DBAPIError:
            with conn.begin_nested():
                conn.exec_driver_sql(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        schema = conn.execute(
            text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = :name"), {"name": extension}
        ).scalar_one()
        with conn.begin_nested():
            for name, column in TRGM_INDEXES.items():
                conn.exec_driver_sql(
                    f"CREATE INDEX IF NOT EXISTS {name} ON cases USING gin ({column} {schema}.gin_trgm_ops)"
                )
    except DBAPIError as exc:  # not installed on the server, or no right to create it
        log.warning("no text index for /find (%s unavailable: %s); /find scans", extension, exc)
        return False
    return True


def uninstall(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for trigger in FTS_TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    elif conn.dialect.name == "postgresql":
        for name in TRGM_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        # the extension stays: other schemas or applications may use it


def fts_ready(s: Session) -> bool:
    """SQLite: the FTS table and all its triggers are there (a later migration that copies the
    `cases` table would drop the triggers: then the index is stale and must not be used)."""
    if s.get_bind().dialect.name != "sqlite":
        return False
    names = {
        n
        for (n,) in s.execute(
            text(
                "SELECT name FROM sqlite_master WHERE name IN ('case_search', 'case_search_ai', 'case_search_ad', 'case_search_au')"
            )
        )
    }
    return len(names) == 1 + len(FTS_TRIGGERS)


def fts_phrase(text_: str) -> str:
    """The text as one FTS5 phrase: with the trigram tokenizer, a substring match."""
    return '"' + text_.replace('"', '""') + '"'
