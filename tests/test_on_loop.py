"""Where a unit of work runs (storage/db.py Database.here_and_now, handlers/common.py
off_loop): on SQLite, on the event loop's own thread when no other writer (a thread of this
process, another process) holds the database, and in a thread when one does, started again
from the beginning, having written nothing; on PostgreSQL always in a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from storage.db import Database, NotNow
from storage.models import FiguresStale, ReportDraft, User
from tests.fakebot import FakeTelegram, FakeUser
from tests.flows import onboard

WORKER_GRID = "33010200200101"


def marks(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(FiguresStale)).scalar_one())


def mark(db: Database, case_id: int) -> None:
    with db.session() as s:
        s.add(FiguresStale(case_id=case_id))


@contextmanager
def writer_in_another_thread(db: Database) -> Iterator[threading.Event]:
    """Another thread of this process inside a unit of work that writes, until the event
    yielded is set."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.session():
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join(10)


def test_free_database_the_unit_of_work_runs_on_the_callers_thread(db: Database) -> None:
    if not db.sqlite:
        pytest.skip("PostgreSQL's units of work always run in a thread (see the next test)")
    threads: list[int] = []

    def work() -> str:
        threads.append(threading.get_ident())
        mark(db, 1)
        return "done"

    assert db.here_and_now(work) == "done"
    assert threads == [threading.get_ident()]
    assert marks(db) == 1


def test_postgresql_never_runs_it_on_the_callers_thread(db: Database) -> None:
    if db.sqlite:
        pytest.skip("SQLite's case is the test above")
    ran: list[bool] = []
    with pytest.raises(NotNow):
        db.here_and_now(lambda: ran.append(True))
    assert ran == []


def test_another_writer_busy_not_now_before_anything_is_written(db: Database) -> None:
    if not db.sqlite:
        pytest.skip("SQLite only")
    steps: list[str] = []

    def work() -> None:
        steps.append("read")
        with db.read() as s:  # a read never waits: it goes ahead
            s.execute(select(func.count()).select_from(User)).scalar_one()
        steps.append("write")
        mark(db, 2)
        steps.append("written")

    with writer_in_another_thread(db), pytest.raises(NotNow):
        db.here_and_now(work)
    assert steps == ["read", "write"]
    assert marks(db) == 0
    db.here_and_now(work)  # free again: all of it, from the start
    assert steps == ["read", "write", "read", "write", "written"]
    assert marks(db) == 1


def test_once_it_has_written_it_waits_its_turn_rather_than_start_again(db: Database) -> None:
    """A unit of work of two transactions cannot start again after its first has committed:
    if another writer comes in between, the second waits for it (on the caller's thread)."""
    if not db.sqlite:
        pytest.skip("SQLite only")
    took, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with db.session():
            took.set()
            release.wait(10)
        mark(db, 30)

    def work() -> None:
        mark(db, 10)
        thread = threading.Thread(target=other_writer)
        thread.start()
        assert took.wait(10)
        threading.Timer(0.05, release.set).start()
        mark(db, 20)  # waits 50 ms for the other writer, then writes
        thread.join(10)

    db.here_and_now(work)
    with db.read() as s:
        assert sorted(s.execute(select(col(FiguresStale.case_id))).scalars()) == [10, 20, 30]


def test_another_process_writing_not_now_at_once_and_the_wait_restored(db: Database) -> None:
    """An admin command's connection holding the write lock: the attempt on the loop gives up
    at once (not after SQLite's busy timeout), having written nothing; a unit of work in a
    thread still waits for that writer, as before."""
    if not db.sqlite:
        pytest.skip("SQLite only")
    other = sqlite3.connect(db.engine.url.database or "", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    began = time.monotonic()
    with pytest.raises(NotNow):
        db.here_and_now(mark, db, 4)
    assert time.monotonic() - began < 1.0
    threading.Timer(0.1, other.execute, ("COMMIT",)).start()
    mark(db, 5)  # not an attempt: waits the 0.1 s for the other writer instead of failing
    other.close()
    with db.read() as s:
        assert list(s.execute(select(col(FiguresStale.case_id))).scalars()) == [5]


def test_not_now_is_no_failure_a_unit_of_work_could_take_for_its_own(db: Database) -> None:
    if not db.sqlite:
        pytest.skip("SQLite only")

    def careful() -> str:
        try:
            mark(db, 3)
        except Exception:  # what a unit of work does with its own failures
            return "swallowed"
        return "written"

    with writer_in_another_thread(db), pytest.raises(NotNow):
        db.here_and_now(careful)
    assert marks(db) == 0


@contextmanager
def hops_counted(loop: asyncio.AbstractEventLoop) -> Iterator[list[Any]]:
    """The functions the loop hands to a thread (asyncio.to_thread goes through here)."""
    handed: list[Any] = []
    original = loop.run_in_executor

    def counted(executor: Any, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        handed.append(fn)
        return original(executor, fn, *args)

    loop.run_in_executor = counted  # type: ignore[method-assign,assignment]
    try:
        yield handed
    finally:
        loop.run_in_executor = original  # type: ignore[method-assign]


async def test_an_update_is_handled_on_the_loop_and_in_a_thread_while_another_writes(
    tg: FakeTelegram, admin: FakeUser, db: Database
) -> None:
    worker = tg.user(7301, "周网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", WORKER_GRID)
    loop = asyncio.get_running_loop()

    with hops_counted(loop) as handed:
        await worker.send("/report")
    assert "位置" in (worker.last_message().text or "")
    assert (len(handed) == 0) if db.sqlite else (len(handed) >= 1)
    await worker.send("/cancel")

    # Another thread of the process is writing: the report waits for it in a thread, and
    # the worker gets the same answer once it is done.
    with writer_in_another_thread(db) as release, hops_counted(loop) as handed:
        loop.call_later(0.05, release.set)
        await worker.send("/report")
    assert "位置" in (worker.last_message().text or "")
    assert len(handed) >= 1
    with db.read() as s:
        user_id = s.execute(select(col(User.id)).where(col(User.telegram_id) == worker.id)).scalar_one()
        assert (
            s.execute(select(col(ReportDraft.step)).where(col(ReportDraft.user_id) == user_id)).scalar_one()
            == "location"
        )
