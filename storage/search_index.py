"""The text index `/find` uses for codes, addresses and descriptions (substrings: Chinese has
no word boundaries, and most Chinese words are two characters, one shorter than a trigram).

- SQLite: an FTS5 table `case_search` (trigram tokenizer, external content over the view
  `case_search_source`), kept in step by three triggers on `cases`. The view ends every field
  with two terminators (U+001F, which users cannot type into /find: it is whitespace to
  Python), so each occurrence of a text of one or two characters starts some trigram: those
  texts are answered from the index's terms (`case_search_instances`, fts5vocab), as ranges.
- PostgreSQL: the three fields copied into a table of their own (`case_search_text`, kept in
  step by a trigger on `cases` that fires only when one of them changes), with GIN indexes of
  `pg_trgm`'s `gin_trgm_ops` on each; the planner uses them for the LIKE/ILIKE the search
  runs. pg_trgm has nothing for a text under three characters, so the fields' characters and
  character pairs (`griddesk_short_grams`), stored beside them with a GIN index, answer
  those. Not on `cases` itself: every move of a case writes its row anew, and PostgreSQL then
  adds the new row version to every index of the table, so each claim or dispatch paid for
  four GIN indexes of text that had not changed (migration 0011).

Both are optional: migration 0007 installs them when it can (the FTS5 trigram tokenizer needs
SQLite 3.34; `pg_trgm` needs the extension to be available and the right to create it), and
the search falls back to scanning the scope's cases when they are missing
(`storage/desk_queue.py`). Migration 0009 installs the index again in this shape.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

log = logging.getLogger(__name__)

FTS_TABLE = "case_search"
FTS_SOURCE = "case_search_source"
FTS_INSTANCES = "case_search_instances"
FTS_TRIGGERS = ("case_search_ai", "case_search_ad", "case_search_au")
# PostgreSQL: the searched fields, apart from `cases`; its trigger and the trigger's function.
TEXT_TABLE, TEXT_TRIGGER, TEXT_FUNCTION = "case_search_text", "case_search_text_copy", "griddesk_case_search_text"
TRGM_INDEXES = {
    "ix_case_trgm_code": "code",
    "ix_case_trgm_address": "address",
    "ix_case_trgm_description": "description",
}
SHORT_GRAMS_INDEX = "ix_case_short_grams"
SHORT_GRAMS_FUNCTION = "griddesk_short_grams"
COLUMNS = "code, address, description"
# A text this long or shorter has no trigram of its own: the short-text parts answer it.
SHORT = 2


def _ended(row: str) -> str:
    return ", ".join(f"{row}{c} || char(31, 31)" for c in ("code", "address", "description"))


_SQLITE_DDL = (
    f"CREATE VIEW IF NOT EXISTS {FTS_SOURCE}(id, {COLUMNS}) AS SELECT id, {_ended('')} FROM cases",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5({COLUMNS}, content='{FTS_SOURCE}', "
    "content_rowid='id', tokenize='trigram')",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_INSTANCES} USING fts5vocab({FTS_TABLE}, 'instance')",
    f"CREATE TRIGGER IF NOT EXISTS case_search_ai AFTER INSERT ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, {_ended('new.')}); END",
    f"CREATE TRIGGER IF NOT EXISTS case_search_ad AFTER DELETE ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS}) VALUES ('delete', old.id, {_ended('old.')}); END",
    f"CREATE TRIGGER IF NOT EXISTS case_search_au AFTER UPDATE OF {COLUMNS} ON cases BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS}) VALUES ('delete', old.id, {_ended('old.')}); "
    f"INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, {_ended('new.')}); END",
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')",
)

# Every character and every pair of neighbouring characters of a text, lower-cased.
_PG_SHORT_GRAMS = (
    f"CREATE OR REPLACE FUNCTION {SHORT_GRAMS_FUNCTION}(t text) RETURNS text[] "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
    "SELECT coalesce(array_agg(DISTINCT g), '{}') FROM ("
    "SELECT lower(substr(t, i, 1)) AS g FROM generate_series(1, length(t)) AS i "
    "UNION ALL SELECT lower(substr(t, i, 2)) FROM generate_series(1, length(t) - 1) AS i) AS grams $$"
)


def _grams_of(row: str) -> str:
    """A case's characters and pairs, over the fields of `row` ("" or "NEW.")."""
    fields = " || chr(31) || ".join(f"coalesce({row}{c}, '')" for c in ("code", "address", "description"))
    return f"{SHORT_GRAMS_FUNCTION}({fields})"


# Stored, not an index's expression: a plan that reads the table row by row then compares an
# array, where it would otherwise run the function on every row (seconds at 200,000 cases).
SHORT_GRAMS_MATCH = "grams @> ARRAY[lower(:gram)]"
_PG_TEXT_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TEXT_TABLE} (case_id integer PRIMARY KEY REFERENCES cases(id) ON DELETE CASCADE, "
    "code varchar, address varchar, description varchar, grams text[] NOT NULL)",
    f"INSERT INTO {TEXT_TABLE} (case_id, {COLUMNS}, grams) SELECT id, {COLUMNS}, {_grams_of('')} FROM cases "
    "ON CONFLICT (case_id) DO NOTHING",
    f"CREATE OR REPLACE FUNCTION {TEXT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"INSERT INTO {TEXT_TABLE} (case_id, {COLUMNS}, grams) "
    f"VALUES (NEW.id, NEW.code, NEW.address, NEW.description, {_grams_of('NEW.')}) "
    "ON CONFLICT (case_id) DO UPDATE SET code = EXCLUDED.code, address = EXCLUDED.address, "
    "description = EXCLUDED.description, grams = EXCLUDED.grams; RETURN NULL; END $$",
    f"DROP TRIGGER IF EXISTS {TEXT_TRIGGER} ON cases",
    f"CREATE TRIGGER {TEXT_TRIGGER} AFTER INSERT OR UPDATE OF {COLUMNS} ON cases "
    f"FOR EACH ROW EXECUTE FUNCTION {TEXT_FUNCTION}()",
    f"CREATE INDEX IF NOT EXISTS {SHORT_GRAMS_INDEX} ON {TEXT_TABLE} USING gin (grams)",
    # Statistics at once: until autovacuum's first look the planner takes a common character for
    # a rare one and joins every case that holds it (a second at 200,000 cases).
    f"ANALYZE {TEXT_TABLE}",
)


def is_search_object(name: str | None) -> bool:
    """Tables and indexes of this module (the models do not describe them); TEXT_TABLE's
    name starts with FTS_TABLE's."""
    return bool(name) and (str(name).startswith(FTS_TABLE) or str(name) in (*TRGM_INDEXES, SHORT_GRAMS_INDEX))


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
    with conn.begin_nested():  # plain SQL: any server has what it needs
        conn.exec_driver_sql(_PG_SHORT_GRAMS)
        for ddl in _PG_TEXT_TABLE:
            conn.exec_driver_sql(ddl)
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
                    f"CREATE INDEX IF NOT EXISTS {name} ON {TEXT_TABLE} USING gin ({column} {schema}.gin_trgm_ops)"
                )
    except DBAPIError as exc:  # not installed on the server, or no right to create it
        log.warning("no text index for /find (%s unavailable: %s); /find scans", extension, exc)
        return False
    return True


def uninstall(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for trigger in FTS_TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_INSTANCES}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {FTS_SOURCE}")
    elif conn.dialect.name == "postgresql":
        for name in (*TRGM_INDEXES, SHORT_GRAMS_INDEX):  # on `cases` before migration 0011
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TEXT_TRIGGER} ON cases")
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {TEXT_FUNCTION}()")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TEXT_TABLE}")
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {SHORT_GRAMS_FUNCTION}(text)")
        # the extension stays: other schemas or applications may use it


def fts_ready(s: Session) -> bool:
    """SQLite: the FTS table, its source, its terms and all its triggers are there (a later
    migration that copies the `cases` table would drop the triggers: then the index is stale
    and must not be used)."""
    if s.get_bind().dialect.name != "sqlite":
        return False
    wanted = (FTS_TABLE, FTS_SOURCE, FTS_INSTANCES, *FTS_TRIGGERS)
    marks = ", ".join(f"'{name}'" for name in wanted)
    names = {n for (n,) in s.execute(text(f"SELECT name FROM sqlite_master WHERE name IN ({marks})"))}
    return len(names) == len(wanted)


def text_ready(s: Session) -> tuple[bool, bool]:
    """PostgreSQL: is the searched text's table there (migration 0011), and its index of
    characters and pairs? One statement."""
    if s.get_bind().dialect.name != "postgresql":
        return False, False
    table, grams = s.execute(
        text("SELECT to_regclass(:table) IS NOT NULL, to_regclass(:grams) IS NOT NULL"),
        {"table": TEXT_TABLE, "grams": SHORT_GRAMS_INDEX},
    ).one()
    return bool(table), bool(grams)


def fts_phrase(text_: str) -> str:
    """The text as one FTS5 phrase: with the trigram tokenizer, a substring match."""
    return '"' + text_.replace('"', '""') + '"'


def term_range(text_: str) -> tuple[str, str]:
    """The index terms (trigrams, case folded) that start with a short text: [low, high)."""
    low = text_.lower()
    return low, low + "\U0010ffff"
