"""Statements built once and run straight on the driver's cursor: the hot paths' reads and
writes without SQLAlchemy's per-execution machinery.

A prebuilt Core statement run through ``Connection.execute`` costs about five times the
driver's own call (measured: 60 µs against 12 µs for one row by id on SQLite), for work that
is the same every time: finding the compiled form, building an execution context, firing
events, setting up a result. Here each statement is compiled once per kind of database, and
a run is the driver's ``execute`` plus the types' own conversions (UTC datetimes, JSON).

What stays as SQLAlchemy does it:
- the connection and its transaction are the session's (``session.connection()``): BEGIN
  IMMEDIATE on SQLite, the pool, the unit of work's commit. As for a statement run on
  ``session.connection()``, nothing is flushed first: a read that replaces the session's own
  ``execute`` flushes as it would (storage/db.py ``autoflushed``);
- every ``before_cursor_execute`` listener still sees every statement (storage/db.py's check
  that reads do not write and its cleaning of what people typed; the statement counts of
  tests and benchmarks);
- a driver error becomes SQLAlchemy's exception (IntegrityError, OperationalError…) through
  the connection's own handler, which also discards a connection the server dropped.

A statement's constants (a list of values for an ``IN``, the literals SQLite's partial
indexes need rendered into the SQL) are fixed when it is first compiled; a list a run gives
for an ``IN`` gets one compiled form per length. A statement whose SQL is otherwise decided
per run (a column default SQLAlchemy computes at each run, a value computed by a callable)
is refused with :class:`NotDirect` at its first run, so such a statement is found by its
first test.

This relies on SQLAlchemy internals (``_bind_processors`` and ``_result_columns`` of a
compiled statement, ``Connection._handle_dbapi_exception``; ``construct_expanded_state`` is
public): SQLAlchemy is pinned in pyproject.toml, and tests/test_direct.py runs every kind of
statement here on both databases.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session


class NotDirect(TypeError):
    """The statement's SQL or parameters are decided per run: run it through SQLAlchemy."""


@dataclass
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # the parameters' order (SQLite's "?"), or None (named)
    fixed: dict[str, Any]  # the values the statement carries (its constants), by parameter
    given: frozenset[str]  # the parameters a run may give; `required` are those it must
    required: frozenset[str]
    convert: dict[str, Any]  # the type's conversion of a parameter a run gives, where it has one
    result_columns: list[Any]  # what a SELECT or RETURNING gives (SQLAlchemy's entries)
    # A list a run gives (IN): its parameter, and the names its items take in the SQL.
    lists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    results: tuple[tuple[str, ...], tuple[Any, ...]] | None = None  # its keys and conversions, at the first run


class Rows:
    """What a run gave: its rows (converted), and how many rows it changed."""

    __slots__ = ("keys", "rowcount", "rows")

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.keys = keys
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]

    def named(self) -> list[Any]:
        """The rows as named tuples (``row.code``), their fields the selected columns' names."""
        return [_named(self.keys)._make(row) for row in self.rows]


@functools.cache
def _named(keys: tuple[str, ...]) -> Any:
    return namedtuple("Row", keys)


def _on_driver(
    conn: Connection, sql: str, parameters: Any, *, many: bool = False, fetch: bool = False
) -> tuple[list[Any], int, Any]:
    """Run `sql` on the connection's DBAPI cursor, seen by every listener as any statement
    is, a driver's error raised as SQLAlchemy's: (its rows if `fetch`, rowcount, description)."""
    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = dbapi_connection.cursor()
    try:
        for listener in conn.dispatch.before_cursor_execute:
            sql, parameters = listener(conn, cursor, sql, parameters, None, many)
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        return (cursor.fetchall() if fetch else []), cursor.rowcount, cursor.description
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, sql, parameters, cursor, None)
    finally:
        cursor.close()


def run_sql(conn: Connection, sql: str) -> None:
    """A statement of no parameters and no result (SQLite's BEGIN), straight on the driver."""
    _on_driver(conn, sql, ())


class Direct:
    """One Core statement (built once, at import), run straight on the session's connection."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        # Compiled per kind of database and per set of parameter names (an INSERT or UPDATE
        # without values of its own sets the columns its parameters name, as in Core), and
        # per length of each list a run gives for an IN (its SQL has a place for each item).
        self._compiled: dict[tuple[str, tuple[str, ...], tuple[int, ...]], _Compiled] = {}
        # SQLAlchemy's compiled form before expansion, and the lists a run gives for an IN.
        self._sql: dict[tuple[str, tuple[str, ...]], tuple[SQLCompiler, tuple[str, ...]]] = {}

    def compiled(
        self, dialect: Dialect, names: tuple[str, ...] = (), given: Mapping[str, Any] | None = None
    ) -> _Compiled:
        sql, lists = self._sql.get((dialect.name, names)) or self._sql_of(dialect, names)
        sizes = tuple(len(given[name]) for name in lists) if given is not None and lists else ()
        if len(sizes) != len(lists):
            raise NotDirect("a list for an IN, and no value for it")
        found = self._compiled.get((dialect.name, names, sizes))
        if found is None:
            found = self._compiled[dialect.name, names, sizes] = self._compile(
                sql, dict(zip(lists, sizes, strict=True))
            )
        return found

    def _sql_of(self, dialect: Dialect, names: tuple[str, ...]) -> tuple[SQLCompiler, tuple[str, ...]]:
        statement = self.statement
        if isinstance(statement, Insert) and not statement._returning:
            # PostgreSQL's compiler would add RETURNING of the new id, for SQLAlchemy to read
            statement = statement.inline()
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        assert isinstance(compiled, SQLCompiler)
        lists = tuple(compiled.bind_names[bp] for bp in compiled.post_compile_params if bp.required and bp.expanding)
        found = self._sql[dialect.name, names] = (compiled, lists)
        return found

    @staticmethod
    def _compile(compiled: SQLCompiler, sizes: dict[str, int]) -> _Compiled:
        if compiled.insert_prefetch or compiled.update_prefetch or compiled.escaped_bind_names:
            raise NotDirect(f"a default or a name decided per run: {compiled.string[:80]}")
        late = compiled.post_compile_params | compiled.literal_execute_params
        binds = {compiled.bind_names[bp]: bp for bp in compiled.bind_names}
        if (
            any(bp.callable is not None for bp in binds.values())
            or any(bp.required and compiled.bind_names[bp] not in sizes for bp in late)
            or any(isinstance(fn, tuple) for fn in compiled._bind_processors.values())
        ):
            raise NotDirect(f"values decided per run: {compiled.string[:80]}")
        required = frozenset(name for name, bp in binds.items() if bp.required)
        # The statement's final SQL: a list of constants (IN) expanded, the literals SQLite's
        # partial indexes need rendered; the parameters a run gives stand in as None.
        stand_in = dict.fromkeys(required) | {name: [None] * size for name, size in sizes.items()}
        expanded = compiled.construct_expanded_state(stand_in)
        lists = tuple((name, tuple(expanded.parameter_expansion[name])) for name in sizes)
        given = frozenset(name for name, bp in binds.items() if bp not in late or name in sizes)
        in_lists = {item for _, items in lists for item in items}
        convert: dict[str, Any] = {
            name: fn
            for name, fn in compiled._bind_processors.items()
            if fn is not None and name in given and name not in sizes
        }
        convert.update((name, fn) for name, fn in expanded.processors.items() if fn is not None)
        # The constants are converted once, here.
        fixed = {
            name: convert[name](value) if name in convert else value
            for name, value in expanded.parameters.items()
            if name not in required and name not in in_lists
        }
        positional = tuple(expanded.positiontup) if compiled.positional and expanded.positiontup else None
        return _Compiled(
            expanded.statement, positional, fixed, given, required, convert, compiled._result_columns, lists
        )

    def __call__(self, session: Session | Connection, params: Mapping[str, Any] | None = None) -> Rows:
        return self.run(session, [params or {}])

    def many(self, session: Session | Connection, params: Sequence[Mapping[str, Any]]) -> Rows:
        """One statement for several rows of parameters (an INSERT of many rows; no RETURNING)."""
        return self.run(session, params)

    def run(self, session: Session | Connection, params: Sequence[Mapping[str, Any]]) -> Rows:
        if not params:
            return Rows((), [], 0)
        conn = session.connection() if isinstance(session, Session) else session
        dialect = conn.dialect
        c = self.compiled(dialect, tuple(sorted(params[0])), params[0] if len(params) == 1 else None)
        values = [self._values(c, p) for p in params]
        many = len(values) > 1
        if many and c.result_columns:
            raise NotDirect("RETURNING with several rows of parameters")
        rows, rowcount, description = _on_driver(
            conn, c.sql, values if many else values[0], many=many, fetch=bool(c.result_columns)
        )
        if not c.result_columns:
            return Rows((), [], rowcount)
        keys, convert = self._conversions(dialect, c, description)
        if any(convert):
            rows = [tuple(fn(v) if fn is not None else v for fn, v in zip(convert, row, strict=True)) for row in rows]
        return Rows(keys, rows, rowcount)

    @staticmethod
    def _values(c: _Compiled, given: Mapping[str, Any]) -> Any:
        values = dict(c.fixed)
        for name, value in given.items():
            if name in c.given:
                fn = c.convert.get(name)
                values[name] = value if fn is None else fn(value)
        if not c.required <= given.keys():
            raise KeyError(f"a value is required for {sorted(c.required - given.keys())}")
        for name, items in c.lists:
            values.pop(name, None)
            for item, value in zip(items, given[name], strict=True):
                fn = c.convert.get(item)
                values[item] = value if fn is None else fn(value)
        if c.positional is not None:
            return tuple(values[name] for name in c.positional)
        return values

    @staticmethod
    def _conversions(dialect: Dialect, c: _Compiled, description: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        if c.results is None:
            keys = tuple(entry[0] for entry in c.result_columns)
            convert = tuple(
                entry[3]._cached_result_processor(dialect, described[1])
                for entry, described in zip(c.result_columns, description, strict=True)
            )
            c.results = (keys, convert)
        return c.results
