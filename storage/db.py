"""Engine and session factory for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import enum
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar, cast

from psycopg.pq import TransactionStatus
from sqlalchemy import CursorResult, Engine, Result, bindparam, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from storage import outbox
from storage.direct import Direct, run_sql
from storage.inbox import HANDLING, Handling, mark_processed

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL: a statement run this often on a connection is prepared there (psycopg's
# default is 5): parsing and planning cost the server more than running our small queries.
PREPARE_AFTER = 2
M = TypeVar("M")
T = TypeVar("T")


def affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched (a compare-and-set won when it is 1).
    Sessions type every result as ``Result``; a DML statement's is a ``CursorResult``."""
    return cast(CursorResult[Any], result).rowcount


class AsLoaded(Generic[M]):
    """A model's objects made from its columns' values the way the ORM makes a loaded one,
    held by the session as if read: later changes to them are tracked like any loaded row's
    (a move's compare-and-set). Neither the model's constructor (a table model's per-field
    defaults and attribute events cost more than its INSERT) nor the ORM's loading runs."""

    def __init__(self, model: type[M]) -> None:
        mapper = inspect(model)
        self.model = model
        self._new = mapper.class_manager.new_instance
        self.attributes = tuple(a.key for a in mapper.column_attrs)
        self.columns = tuple(a.columns[0] for a in mapper.column_attrs)
        self._id_at = [c.primary_key for c in self.columns].index(True)

    def held(self, session: Session, values: Sequence[Any]) -> M:
        """`values` are the columns' in the order of `columns`. A row the session holds
        already is returned as it holds it (as the ORM's loading does)."""
        known: M | None = session.identity_map.get(identity_key(self.model, values[self._id_at]))
        if known is not None:
            return known
        row: Any = self._new()
        row.__dict__.update(zip(self.attributes, values, strict=True))
        make_transient_to_detached(row)
        session.add(row)
        return cast(M, row)


def autoflushed(session: Session) -> Session:
    """What the session's own ``execute`` does before a read: write what was changed on its
    objects (unless inside ``no_autoflush``), so the read sees it. A statement run straight
    on the driver (storage/direct.py) in its place asks for this."""
    if session.autoflush:
        session.flush()
    return session


class Loads(Generic[M]):
    """A SELECT of a model's rows built once, run straight on the driver, its rows made
    loaded objects held by the session (:class:`AsLoaded`): the ORM's statement execution
    and loading cost several times the statement."""

    def __init__(self, model: type[M], *where: Any, order_by: Sequence[Any] = ()) -> None:
        self.made = AsLoaded(model)
        self.statement = Direct(select(*self.made.columns).where(*where).order_by(*order_by))

    def all(self, session: Session, params: dict[str, Any]) -> list[M]:
        return [self.made.held(session, row) for row in self.statement(autoflushed(session), params)]

    def first(self, session: Session, params: dict[str, Any]) -> M | None:
        found = self.statement(autoflushed(session), params).first()
        return self.made.held(session, found) if found is not None else None


class ById(Generic[M]):
    """``session.get`` for a row read on nearly every update: the session's identity map
    first, then a SELECT built once, run straight on the driver (storage/direct.py) and made
    a loaded object without the ORM's loading (together a third of get's cost)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.loads = Loads(model, inspect(model).primary_key[0] == bindparam("id"))

    def __call__(self, session: Session, row_id: int) -> M | None:
        held: M | None = session.identity_map.get(identity_key(self.model, row_id))
        if held is not None:
            return held
        return self.loads.first(session, {"id": row_id})


R = TypeVar("R")


def select_of(model: Any, row: type) -> Any:
    """A SELECT of the columns of `model`'s table that the dataclass `row` names, in its
    order: what :func:`plain_rows` turns into `row`s."""
    table = model.__table__
    return select(*(table.c[f.name] for f in dataclasses.fields(row)))


def plain_rows(session: Session, statement: Direct, params: dict[str, Any], row: Callable[..., R]) -> list[R]:
    """Run a SELECT built once straight on the driver; each row made a `row` (a frozen
    dataclass whose fields are the selected columns, in order): no ORM object."""
    return [row(*found) for found in statement(session, params)]


_IMMUTABLE = (type(None), bool, int, float, str, bytes, datetime.datetime, datetime.date, decimal.Decimal, enum.Enum)


class CoreInsert(Generic[M]):
    """New rows of a model inserted by a statement built once and run straight on the driver
    (storage/direct.py), not by the ORM's flush (which costs several times the INSERT for a
    row or two). The model's defaults are declared once, on the model, and applied here to
    the columns a caller leaves out."""

    def __init__(self, model: type[M]) -> None:
        mapper = inspect(model)
        self.made = AsLoaded(model)
        key = mapper.primary_key[0].key
        self.names = [(a.key, a.columns[0].name) for a in mapper.column_attrs if a.key != key]
        fields = getattr(model, "model_fields", {})
        defaults = {a: fields[a] for a, _ in self.names if a in fields and not fields[a].is_required()}
        self.column_of = dict(self.names)
        # A default that is a constant of an immutable type is the same for every row: copied
        # from here; a factory's or a mutable one's is made for each row.
        self.constants: dict[str, Any] = {}
        self.made_per_row: list[tuple[str, str, Any]] = []
        for attr, name in self.names:
            found = defaults.get(attr)
            if found is None:
                continue
            if found.default_factory is None and isinstance(found.default, _IMMUTABLE):
                self.constants[name] = found.default
            else:
                self.made_per_row.append((attr, name, found))
        insert = mapper.local_table.insert().values({name: bindparam(name) for _, name in self.names})
        self.insert = Direct(insert)
        self.insert_returning = Direct(insert.returning(mapper.primary_key[0]))

    def values(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every column's value: what was given, else the model's default."""
        out = self.constants.copy()
        for attr, value in given.items():
            out[self.column_of[attr]] = value
        for attr, name, found in self.made_per_row:
            if attr not in given:
                out[name] = found.get_default(call_default_factory=True)
        if len(out) != len(self.names):
            missing = sorted(attr for attr, name in self.names if name not in out)
            raise KeyError(f"{self.made.model.__name__} needs a value for {missing}")
        return out

    def one(self, session: Session, **given: Any) -> M:
        """Insert a row of `given` values (attribute names; the rest are the model's
        defaults) and hold it in the session as if it had been read."""
        values = self.values(given)
        row_id = self.insert_returning(session, values).scalar_one()
        return self.made.held(session, [row_id if c.primary_key else values[c.name] for c in self.made.columns])

    def many(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` (attribute names to values) in one statement; the session does not hold them."""
        if rows:
            self.insert.many(session, [self.values(r) for r in rows])


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def mask_url(url: str) -> str:
    """A database URL fit to print: its password (in the user part or a `password=` query
    parameter) becomes `***`, as in postgresql://user:***@host/db."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, qsep, query = rest.partition("?")
    params = [p for p in query.split("&") if p] if qsep else []
    kept = [p for p in params if p.split("=", 1)[0].lower() not in ("password", "passwd")]
    hidden = len(kept) != len(params)
    if "@" in rest:
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        if ":" in creds or hidden:
            rest = f"{user}:***@{host}"
    elif hidden:
        rest = f"***@{rest}"
    return scheme + sep + rest + (("?" + "&".join(kept)) if kept else "")


def mask_secrets(text: str, url: str) -> str:
    """`text` (an error message) with the URL's password, wherever it shows, as `***`."""
    secrets = []
    try:
        parsed = make_url(normalise_url(url))
        if parsed.password:
            secrets.append(str(parsed.password))
        secrets += [str(v) for k, v in parsed.query.items() if k.lower() in ("password", "passwd")]
    except Exception:
        pass
    text = text.replace(url, mask_url(url))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def is_sqlite(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN, so a read transaction that later
        # writes can fail with "database is locked" at once, whatever the busy timeout.
        # BEGIN IMMEDIATE takes the write lock up front: writers queue, none fails.
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine, "before_cursor_execute", _before_statement, retval=True)
        event.listen(engine, "begin", _transaction_began)
        return engine
    # No pre-ping: it costs a round trip on every checkout. A connection the server dropped
    # fails its statement with a disconnect error; SQLAlchemy then discards the whole pool's
    # stale connections, and recycling bounds how old an idle one can get.
    engine = create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=20,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args={"prepare_threshold": PREPARE_AFTER},
    )
    event.listen(engine, "before_cursor_execute", _before_statement, retval=True)
    event.listen(engine, "before_cursor_execute", _stream_in_a_transaction)
    event.listen(engine, "begin", _transaction_began)
    return engine


def _stream_in_a_transaction(conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
    """A streamed read (yield_per: a server-side cursor) needs a transaction, which a read's
    autocommit connection (Database.read) has not: it opens one, ended by the read's commit."""
    if context is not None and context.execution_options.get("stream_results"):
        dbapi_connection = conn.connection.dbapi_connection
        if dbapi_connection.autocommit and dbapi_connection.info.transaction_status == TransactionStatus.IDLE:
            dbapi_connection.execute("BEGIN")


# PostgreSQL refuses NUL in text (and a lone surrogate cannot be encoded at all): what people
# typed is cleaned on its way in, in one place, so no Submit fails on it.
_REFUSED = re.compile("[\x00\ud800-\udfff]")


def scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _REFUSED.sub("", value) if _REFUSED.search(value) else value
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub(v) for v in value)
    return value


def _refused_in(value: Any) -> bool:
    """Does a statement's parameters (a dict, a tuple, a list of either, with JSON inside)
    hold text PostgreSQL would refuse? Every statement asks: one call per container, none
    per plain value."""
    if isinstance(value, str):
        return _REFUSED.search(value) is not None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    for item in items:
        if isinstance(item, str):
            if _REFUSED.search(item) is not None:
                return True
        elif isinstance(item, (dict, list, tuple)) and _refused_in(item):
            return True
    return False


_WROTE = "griddesk_wrote"  # on a connection's info: its transaction has changed something


def _before_statement(
    conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> Any:
    """Every statement: note whether the transaction writes (see _mark_update_handled), and
    clean what people typed (copied only when something in it must go: rarely)."""
    if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        if conn.get_execution_options().get("griddesk_read_only"):  # on PostgreSQL, committed at once
            raise RuntimeError("a read's unit of work (Database.read) may not write: use Database.session")
        conn.info[_WROTE] = True
    return statement, scrub(parameters) if _refused_in(parameters) else parameters


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # Read-only units of work take no write lock, so they never queue behind writers (WAL).
    if conn.get_execution_options().get("griddesk_read_only", False):
        run_sql(conn, "BEGIN")
        return
    attempt = _ATTEMPT.get()
    if attempt is None or attempt.begun:
        run_sql(conn, "BEGIN IMMEDIATE")
        return
    # The first write of a unit of work tried on the event loop's thread: another process
    # writing (an admin command) would hold the loop for SQLite's busy timeout, so here it
    # is not waited for (NotNow: the unit of work runs in a thread, and waits there). The
    # two pragmas set the connection, read and write no data: no listener is told of them.
    dbapi_connection = conn.connection.dbapi_connection
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        run_sql(conn, "BEGIN IMMEDIATE")
    except OperationalError as exc:
        if getattr(exc.orig, "sqlite_errorname", "") == "SQLITE_BUSY":
            raise NotNow from None
        raise
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    attempt.begun = True


def _transaction_began(conn: Any) -> None:
    conn.info[_WROTE] = False


def _mark_update_handled(session: Session) -> Handling | None:
    """In the unit of work of an update's handlers that changed something: the update is
    marked processed in the same transaction (storage/inbox.py HANDLING); which, if so."""
    handling = HANDLING.get()
    if handling is None or handling.marked or not session.in_transaction():
        return None
    session.flush()
    if not session.connection().info.get(_WROTE):
        return None
    mark_processed(session, [handling.update_id], now=handling.began)
    return handling


class NotNow(BaseException):
    """A unit of work tried on the caller's thread (Database.here_and_now) would have to
    wait for another writer: raised before it has written anything, so it can run again
    where waiting holds up no one (a thread). A BaseException, as a change of plan that no
    `except Exception` in the unit of work may take for its own failure."""


@dataclasses.dataclass
class _Attempt:
    begun: bool = False  # a write transaction of it has begun: it can no longer start again elsewhere


_ATTEMPT: ContextVar[_Attempt | None] = ContextVar("griddesk_attempt", default=None)


class _WriterQueue:
    """SQLite: this process's writers queue here, not in SQLite's busy handler, which sleeps
    1, 2, 5, 10, 15, 20, 25… ms between tries: a writer that finds the lock taken waits out
    its next sleep however soon the lock is free (the tail of every update's time under
    load). A writer of another process still meets the busy timeout; one waiting here longer
    than that fails as SQLite would have, "database is locked"."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        attempt = _ATTEMPT.get()
        if attempt is not None and not attempt.begun:
            if not self._lock.acquire(blocking=False):
                raise NotNow
            return
        if not self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


class Database:
    """The one place sessions come from: one short session per unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self.sqlite = is_sqlite(self.url)
        # PostgreSQL reads in autocommit: at its READ COMMITTED every statement takes its own
        # snapshot inside a transaction too, so BEGIN and COMMIT would cost two round trips for
        # nothing. SQLite's read transaction is one snapshot: kept.
        self._read_engine = self.engine.execution_options(
            griddesk_read_only=True, **({} if self.sqlite else {"isolation_level": "AUTOCOMMIT"})
        )
        self._writers: contextlib.AbstractContextManager[Any] = (
            _WriterQueue() if self.sqlite else contextlib.nullcontext()
        )

    def here_and_now(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a short unit of work on the caller's thread, if it need not wait: SQLite only.

        An update's unit of work takes 0.3-2 ms of CPU. Handed to a thread and back, an update
        took from a tenth to a third more (the hand-over, and each thread finding the other's
        data out of its core's cache), while the event loop had nothing else to do that the
        GIL would let it (docs/architecture.md, "Where an update's time goes").
        On SQLite nothing in it waits on a network either, so the event loop's thread runs it
        itself, unless another writer holds the database (a thread of this process, or
        another process: an admin command): then NotNow, raised before it writes, and the
        caller runs it in a thread. Once a write transaction of it has begun it is never
        started again: a later one waits its turn here. PostgreSQL's units of work wait on
        round trips: always NotNow."""
        if not self.sqlite:
            raise NotNow
        token = _ATTEMPT.set(_Attempt())
        try:
            return fn(*args, **kwargs)
        finally:
            _ATTEMPT.reset(token)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back on error."""
        with self._writers, Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                outbox.write_queued(session)  # before the mark: they are this update's change too
                handled = _mark_update_handled(session)
                session.commit()
                if handled is not None:
                    handled.marked = True
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that only reads (on SQLite it does not take the write lock)."""
        # It ends by a commit, not by the pool's rollback: psycopg forgets a connection's
        # prepared statements at every ROLLBACK (see PREPARE_AFTER), and on PostgreSQL a
        # streamed read's transaction is the only one a read has to end.
        with Session(self._read_engine, expire_on_commit=False) as session:
            yield session
            session.commit()

    def check(self) -> None:
        """Open a connection, so a wrong URL fails at start-up, not at the first update."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def truncate_all(db: Database) -> None:
    """Empty every table but Alembic's (tests and demo resets only)."""
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401

    tables = list(reversed(SQLModel.metadata.sorted_tables))
    with db.engine.begin() as conn:
        if db.sqlite:
            for table in tables:
                conn.execute(table.delete())
            if _has_sqlite_sequence(conn):
                conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        else:
            names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


def _has_sqlite_sequence(conn: Any) -> bool:
    row = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'").first()
    return row is not None


def drop_everything(db: Database) -> None:
    """Drop every table, Alembic's included (tests only: a clean slate per run)."""
    with db.engine.begin() as conn:
        if db.sqlite:
            names = [
                r[0]
                for r in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for name in names:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
        else:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")


class PollerLock:
    """Only one process may poll Telegram for a bot: on PostgreSQL a session advisory lock
    decides which (held on a connection of its own for the life of the process). A standby
    process waits for it; sweeps and the outbox are safe to share anyway. SQLite is one
    process by nature, so the lock is always granted there."""

    KEY = 0x47524944  # "GRID"

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Any = None

    def try_acquire(self) -> bool:
        """True if this process now holds the lock. A database error (the connection was
        terminated, the server restarts) is not fatal: the connection is dropped and the
        next try opens a new one."""
        if self.db.sqlite:
            return True
        try:
            if self._conn is None:
                self._conn = self.db.engine.connect()
            got = bool(self._conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({self.KEY})").scalar())
            self._conn.commit()  # end the implicit transaction; a session lock outlives it
            return got
        except DBAPIError as exc:
            log.warning("poller lock: database error (%s); will try again", exc.__class__.__name__)
            self._drop()
            return False

    def still_held(self) -> bool:
        """Does this process still hold the lock? False when its connection died (the
        server then released the lock, and a standby may have taken it)."""
        if self.db.sqlite:
            return True
        if self._conn is None:
            return False
        try:
            held = self._conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                f"AND objid = {self.KEY} AND granted"
            ).scalar()
            self._conn.commit()
            return bool(held)
        except DBAPIError:
            self._drop()
            return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # already gone
                pass
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({self.KEY})")
                self._conn.commit()
            except DBAPIError:
                pass  # the connection is gone, and the lock with it
            finally:
                self._drop()
