"""Worker processes for the CPU work that would hold the GIL: decoding photos, drawing charts.

Done in the default thread pool, such work takes the threads database calls wait for, and
holds the GIL the event loop needs: a 4000×3000 photo or a chart costs 30–100 ms, during which
nobody else's update is served. Each kind of work has its own small pool (:class:`WorkerPool`),
so a chart never waits behind a queue of photos and photo workers never load matplotlib. A
pool is made on first use (its workers start when work needs them) and every pool is stopped
by :func:`shutdown_all`, for the application's ``post_shutdown``; it kills a worker that does
not stop in time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import spawn
from multiprocessing.connection import wait as wait_for_processes
from typing import Any, TypeVar

from bot import workerinit

log = logging.getLogger(__name__)

T = TypeVar("T")
SHUTDOWN_WAIT_S = 10.0


class WorkerDied(Exception):
    """The job's worker died (killed for memory, a crashing decoder) or the pool broke under
    the submit. The pool is replaced; the caller answers as for any failed job."""


class WorkerPool:
    """A named pool of ``workers`` spawned processes, made on first use."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._discarded: list[_Stopping] = []  # broken pools, stopped for good by shutdown()
        self._lock = threading.Lock()
        _POOLS.append(self)

    def executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = _LeanPool(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=workerinit.start,  # Ctrl-C left to the bot; a lower priority
                )
            return self._pool

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker. Its own exceptions come back as raised (they
        must pickle); a dead worker or a broken pool raises :class:`WorkerDied`."""
        pool = self.executor()
        try:
            pending = asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args, **kwargs))
        except (BrokenProcessPool, OSError, RuntimeError, ValueError):
            # The pool broke under this very submit: a worker died while the pool was starting
            # another (its pipes closed: "handle is closed", or "bad value(s) in fds_to_keep" from
            # the new worker's spawn), or it was shut down a moment ago.
            log.exception("the %s pool broke as a job was handed to it; starting a new pool", self.name)
            self.discard(pool)
            raise WorkerDied() from None
        try:
            return await pending
        except BrokenProcessPool:
            log.exception("a %s worker died; starting a new pool", self.name)
            self.discard(pool)
            raise WorkerDied() from None

    def discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
            self._discarded[:] = [each for each in self._discarded if each.running()]
            self._discarded.append(_let_go(pool))

    def shutdown(self, *, timeout: float = SHUTDOWN_WAIT_S) -> None:
        """Stop the workers: jobs under way finish, queued ones are cancelled, and the call
        returns when the processes have exited. A worker still busy after ``timeout`` seconds
        is killed: the bot must stop on SIGTERM even with a decoder stuck, and concurrent.futures
        would otherwise wait for it at interpreter exit, for ever. Pools given up as broken are
        stopped too. Safe to call twice, or with no pool; a later job starts a new pool."""
        with self._lock:
            pool, self._pool = self._pool, None
            stopping = [*self._discarded, _let_go(pool)] if pool is not None else list(self._discarded)
            self._discarded.clear()
        deadline = time.monotonic() + timeout
        for each in stopping:
            each.finish(deadline)


_POOLS: list[WorkerPool] = []


PHOTO_WORKERS = 2  # processes decoding photos (and drawing before/after composites) at once
PHOTOS = WorkerPool("photo", PHOTO_WORKERS)  # Pillow only: handlers/media.py, handlers/verify_request.py


def shutdown_all(*, timeout: float = SHUTDOWN_WAIT_S) -> None:
    """Stop every pool's workers (see :meth:`WorkerPool.shutdown`), within one ``timeout``."""
    deadline = time.monotonic() + timeout
    for pool in _POOLS:
        pool.shutdown(timeout=max(0.0, deadline - time.monotonic()))


@dataclass(frozen=True)
class _Stopping:
    """A pool told to stop: its processes and its own thread (shutdown() forgets both)."""

    workers: tuple[multiprocessing.process.BaseProcess, ...]
    manager: threading.Thread | None

    def running(self) -> bool:
        return self.manager is not None and self.manager.is_alive()

    def finish(self, deadline: float) -> None:
        # Wait on the processes' sentinels, not join(): the pool's own thread reaps them.
        wait_for_processes([w.sentinel for w in self.workers], max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.is_alive():
                log.warning("worker %s still busy at shutdown; killing it", worker.pid)
                worker.kill()
        if self.manager is not None:
            self.manager.join(max(1.0, deadline - time.monotonic()))


def _let_go(pool: ProcessPoolExecutor) -> _Stopping:
    # typeshed mistypes the manager thread's attribute
    stopping = _Stopping(tuple((pool._processes or {}).values()), getattr(pool, "_executor_manager_thread", None))
    pool.shutdown(wait=False, cancel_futures=True)
    return stopping


_spawn_lock = threading.Lock()


class _LeanPool(ProcessPoolExecutor):
    """A process pool whose workers do not run the parent's ``__main__`` again.

    multiprocessing's spawn re-imports the parent's main module in each child, so that things
    defined there unpickle. Ours is the ``griddesk`` script (or pytest, or a benchmark), which
    would load the whole bot (PTB, SQLAlchemy: ~70 MB) into every worker; a worker needs only
    the module of its job (``bot.intake.photos``, ``bot.desk.drawing``), which unpickling the
    job imports by name. Nothing defined in ``__main__`` is ever sent to a worker."""

    def _spawn_process(self) -> None:
        with _spawn_lock:
            original = spawn.get_preparation_data

            def without_main(name: str) -> dict[str, Any]:
                data = original(name)
                data.pop("init_main_from_name", None)
                data.pop("init_main_from_path", None)
                return data

            spawn.get_preparation_data = without_main
            try:
                super()._spawn_process()  # type: ignore[misc]
            finally:
                spawn.get_preparation_data = original
