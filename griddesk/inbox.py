"""Inbox before acknowledgement: every update is stored in the database (keyed by its
update_id, idempotently) before Telegram hears that we have it, then processed from there.

- Polling: PTB's updater puts each fetched update into the Application's update queue and
  only then confirms the batch (the next getUpdates carries offset = last + 1). Our queue
  (`InboxQueue`) stores the update in `put`, so the confirmation comes after the commit.
  A crash before the commit: Telegram sends the update again. After it: it is in the inbox.
- Webhook: PTB's webhook handler answers 200 after the same `put`: stored, then answered.
- Another server (an HTTP endpoint of our own) calls `accept(application, payload)`.

An update is processed once it is stored, and marked processed in the transaction of its
handlers' change (storage/inbox.py HANDLING): a crash after that change never runs it again,
and its reply, if the crash came first, is lost rather than said twice. An update that
changes nothing (a list, a refused button) is marked when its handlers are done (several
marks written together). At start-up, updates stored but never marked (the process died)
are processed first. A repeat of a stored update (Telegram re-sending after a crash, a
retried webhook) is not processed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError
from telegram import Update
from telegram.ext import Application

from bot.runtime import Runtime
from storage import inbox as rows

log = logging.getLogger(__name__)

_STATE_KEY = "griddesk_inbox"
KEEP_PROCESSED = timedelta(days=1)
PURGE_EVERY = 500  # accepted updates between purges of handled rows
STORE_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # then every 5 s: polling stalls, nothing is confirmed


# Updates this process has finished, remembered this long (the newest): a repeat whose store
# read the row just before the first run's mark committed says "unfinished" (see _schedule).
REMEMBER_FINISHED = 10_000


class _State:
    def __init__(self) -> None:
        self.done: list[int] = []
        self.writer: asyncio.Task[None] | None = None
        self.accepted = 0
        self.in_progress: set[int] = set()
        self.finished: dict[int, None] = {}  # in the order finished: a set that forgets the oldest

    def finish(self, update_ids: Iterable[int]) -> None:
        for update_id in update_ids:
            self.in_progress.discard(update_id)
            self.finished[update_id] = None
        while len(self.finished) > REMEMBER_FINISHED:
            del self.finished[next(iter(self.finished))]


def _state(app: Application) -> _State:
    state = app.bot_data.get(_STATE_KEY)
    if not isinstance(state, _State):
        state = app.bot_data[_STATE_KEY] = _State()
    return state


def _rt(app: Application) -> Runtime:
    return app.bot_data["rt"]


async def accept(application: Application, payload: dict[str, Any]) -> None:
    """Store a raw update (a dict as Telegram sends it) and schedule its processing.
    Returns once it is committed: the caller may then acknowledge it to Telegram. A repeat
    of an update already stored is ignored. Raises if the database cannot store it."""
    rt = _rt(application)
    update_id = int(payload["update_id"])
    fresh = await asyncio.to_thread(_store, rt, [(update_id, payload)])
    state = _state(application)
    state.accepted += 1
    if fresh:
        _schedule(application, update_id, payload)
    if state.accepted % PURGE_EVERY == 0:
        asyncio.get_running_loop().create_task(asyncio.to_thread(_purge, rt), name="griddesk-inbox-purge")


def _store(rt: Runtime, batch: list[tuple[int, dict[str, Any]]]) -> list[int]:
    with rt.db.session() as s:
        return rows.store(s, batch, now=rt.clock.now())


def _purge(rt: Runtime) -> None:
    try:
        with rt.db.session() as s:
            rows.purge(s, before=rt.clock.now() - KEEP_PROCESSED, keep_newest=rows.newest_id(s))
    except DBAPIError:
        log.warning("could not purge handled inbox rows; trying again later", exc_info=True)


def _schedule(app: Application, update_id: int, payload: dict[str, Any]) -> None:
    """Process a stored update, unless this process is at it or has done it. A repeat's store
    can read the row just before the first run's mark commits (writers take turns) and call it
    unfinished: by the time it is scheduled, the first run may be over."""
    state = _state(app)
    if update_id in state.in_progress or update_id in state.finished:
        return
    state.in_progress.add(update_id)
    asyncio.get_running_loop().create_task(_process(app, update_id, payload), name=f"inbox-update-{update_id}")


async def _process(app: Application, update_id: int, payload: dict[str, Any]) -> None:
    state = _state(app)
    handling = rows.Handling(update_id, _rt(app).clock.now())
    token = rows.HANDLING.set(handling)
    try:
        update = Update.de_json(payload, app.bot)
        await app.process_update(update)  # handler errors go to the error handler
    except Exception:
        log.exception("inbox update %s could not be processed", update_id)
    finally:
        rows.HANDLING.reset(token)
    if handling.marked:  # in the transaction of its change
        state.finish([update_id])
        return
    # Still "in progress" until marked: a repeat arriving meanwhile is not run again.
    state.done.append(update_id)
    if state.writer is None:
        state.writer = asyncio.get_running_loop().create_task(_write_marks(app), name="griddesk-inbox-marks")


async def _write_marks(app: Application) -> None:
    """Mark handled updates processed, everything finished meanwhile in one transaction."""
    state, rt = _state(app), _rt(app)
    try:
        await asyncio.sleep(0)
        while state.done:
            batch, state.done = state.done, []
            for pause in (*STORE_RETRY_S, None):
                try:
                    await asyncio.to_thread(_mark, rt, batch)
                    break
                except DBAPIError:
                    if pause is None:
                        log.error("could not mark inbox updates %s processed; they run again at restart", batch)
                        break
                    await asyncio.sleep(pause)
            state.finish(batch)
    finally:
        state.writer = None


def _mark(rt: Runtime, update_ids: list[int]) -> None:
    with rt.db.session() as s:
        rows.mark_processed(s, update_ids, now=rt.clock.now())


async def flush_marks(app: Application) -> None:
    """Wait until every handled update is marked (shutdown, tests)."""
    state = _state(app)
    while state.writer is not None or state.done:
        if state.writer is None:
            state.writer = asyncio.get_running_loop().create_task(_write_marks(app), name="griddesk-inbox-marks")
        await asyncio.shield(state.writer)


async def wait_idle(app: Application) -> None:
    """Wait until every scheduled update has been processed and marked (tests, shutdown)."""
    state = _state(app)
    while state.in_progress:
        if state.done and state.writer is None:
            state.writer = asyncio.get_running_loop().create_task(_write_marks(app), name="griddesk-inbox-marks")
        await asyncio.sleep(0.01)
    await flush_marks(app)


async def resume(app: Application) -> int:
    """Process the updates a previous run stored but never finished; how many."""
    rt = _rt(app)

    def load() -> list[tuple[int, dict[str, Any]]]:
        with rt.db.read() as s:
            return [(r.update_id, dict(r.payload)) for r in rows.pending(s, limit=100_000)]

    pending = await asyncio.to_thread(load)
    for update_id, payload in pending:
        _schedule(app, update_id, payload)
    if pending:
        log.info("processing %s update(s) stored before a restart", len(pending))
    return len(pending)


class InboxQueue(asyncio.Queue[Any]):
    """The Application's update queue: an Update put here (by PTB's updater or webhook
    server) is stored in the inbox and processed from there; anything else (PTB's stop
    signal) is queued as usual. `put` keeps trying while the database is down, so nothing
    is confirmed to Telegram that is not stored."""

    def __init__(self) -> None:
        super().__init__()
        self.app: Application | None = None

    async def put(self, item: Any) -> None:
        if not isinstance(item, Update) or self.app is None:
            await super().put(item)
            return
        payload = item.to_dict()
        for attempt in range(10**9):
            try:
                await accept(self.app, payload)
                return
            except DBAPIError as exc:
                pause = STORE_RETRY_S[min(attempt, len(STORE_RETRY_S) - 1)]
                log.warning("could not store update %s (%s); retrying in %s s", item.update_id, exc, pause)
                await asyncio.sleep(pause)
