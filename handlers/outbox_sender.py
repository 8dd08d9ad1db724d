"""The outbox sender: one background task per process renders queued rows and sends them.

How it runs:

- `flush(app)` only wakes the sender (handlers call it right after a service committed;
  it never waits for Telegram). `drain(app)` waits until everything due when it was
  called has been attempted (tests after each update, the demo, shutdown).
- Rows are claimed a few per chat at a time and queued per chat. Chats take turns
  (round robin), each within its budget (bot/outbox.py: ~1 a second in a private chat,
  ~20 a minute in a group, ~30 a second overall), up to MAX_IN_FLIGHT sends at once and
  never two at once in one chat. One group's backlog never delays another chat.
- Several rows for one card (same case, chat, purpose) queued together are rendered
  once and sent as one post or edit; all of them are marked sent.
- A 429 pauses that chat for `retry_after` (its queued rows go back to the database for
  then); 5xx and timeouts retry the row with backoff; Telegram's refusals end the row
  (a chat that blocked or removed us is marked and the command room alerted). PTB's rate
  limiter does not retry our sends (`FROM_OUTBOX`, see griddesk/app.py), so no message
  is retried twice.
- A database error while recording one row's result is retried a few times, logged, and
  left to the lease (the row is sent again later, never lost); the others carry on.
- A card's photo is uploaded once per process, then sent by Telegram's file_id.
- A photo card whose caption would pass 1,024 UTF-16 units becomes a photo with a short
  caption (the card's first line) followed by the full card as a text message with the
  buttons; that text message is then the card, edited in place from then on.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import html
import logging
import re
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Message, ReplyKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application

from bot import outbox
from bot.callbacks import Extension
from bot.cases import digests
from bot.cases.cards import Card, CaseView, case_view, render_card
from bot.cases.timewords import when_words
from bot.cases.verifyview import shows_composite
from bot.i18n import t
from bot.intake.photos import absolute
from bot.metrics import TELEGRAM_429
from bot.org.chats import chat_info
from bot.runtime import Runtime
from bot.textlimits import CAPTION_LIMIT, MESSAGE_LIMIT, utf16_len
from handlers.common import clip, off_loop
from handlers.verify_request import closed_composite, send_verify_request

log = logging.getLogger(__name__)

SENDER_TASK_NAME = "griddesk-outbox-sender"
_SENDER_KEY = "outbox_sender"
_FILE_IDS_KEY = "outbox_file_ids"
_UPLOADS_KEY = "photo_uploads"  # key -> the lock of its upload under way
_R = TypeVar("_R")
STOP_GRACE_S = 10.0  # sends under way at shutdown get this long to finish
ERROR_PAUSE_S = 1.0  # after an unexpected error in the loop (the database is down…)
MAX_CACHED_VIEWS = 500  # case views kept between idle moments
RECLAIM_PAUSE_S = 0.1  # a drain waits on rows the last claim could not take: look again after

# True inside the sender's sends: PTB's rate limiter then leaves 429s to us (griddesk/app.py).
FROM_OUTBOX: contextvars.ContextVar[bool] = contextvars.ContextVar("griddesk_from_outbox", default=False)


def markup(card: Card) -> InlineKeyboardMarkup | None:
    if not card.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in card.buttons]
    )


def localized_params(params: dict[str, Any], lang: str) -> dict[str, Any]:
    """Escape what people typed, and pick `x` from an `x_zh` / `x_en` pair by language."""
    out: dict[str, Any] = {}
    suffix = "_zh" if lang == "zh_CN" else "_en"
    for name, value in params.items():
        if name.endswith(("_zh", "_en")):
            if name.endswith(suffix):
                out[name[:-3]] = html.escape(str(value), quote=False)
            continue
        out[name] = html.escape(value, quote=False) if isinstance(value, str) else value
    return out


def visible_len(text: str) -> int:
    """Roughly what Telegram counts of an HTML text: tags gone, entities decoded, UTF-16."""
    return utf16_len(html.unescape(re.sub(r"<[^>]+>", "", text)))


def short_caption(card_text: str) -> str:
    """The caption of a photo whose card goes in a text message: the card's first line."""
    first = card_text.split("\n", 1)[0]
    return first if visible_len(first) <= CAPTION_LIMIT else ""


def _main_menu(lang: str) -> ReplyKeyboardMarkup:
    from handlers.report import main_menu  # report.py imports this module: import when used

    return main_menu(lang)


def _message_gone(exc: BadRequest) -> bool:
    """The message to edit is no longer there to edit (deleted in the chat, or too old)."""
    text = str(exc).lower()
    return "not found" in text or "can't be edited" in text


def _caption_too_long(exc: BadRequest) -> bool:
    return "caption is too long" in str(exc).lower()


def bad_file_id(exc: BadRequest) -> bool:
    """Telegram no longer takes a file_id we kept (another bot token, a purged file)."""
    text = str(exc).lower()
    return "file identifier" in text or "file reference" in text or "wrong remote file" in text


_UNKNOWN: Any = object()  # no card read for this row

# Set in the sender's own tasks (and threads they start): what the database and the Bot API
# do there is the outbox's work, not an update's (benchmarks/costs.py counts them apart).
SENDING: ContextVar[bool] = ContextVar("griddesk_outbox_sending", default=False)


# --- the public face ---------------------------------------------------------------------


async def flush(app: Application) -> None:
    """Tell the sender there is something to send. Returns at once: it never waits for
    Telegram (use `drain` to wait)."""
    for wake in app.bot_data.get("wake_also", ()):  # other senders of the same changes (webhooks)
        wake()
    sender = app.bot_data.get(_SENDER_KEY)
    if isinstance(sender, Sender) and sender.running:
        sender.wake()
    else:
        log.debug("no outbox sender running; the rows wait for drain() or the next start")


def file_ids(app: Application) -> outbox.FileIds:
    """The file_ids of photos this process uploaded (cards' photos, charts): one store, so a
    picture is uploaded once and sent by its file_id to every chat after."""
    store: outbox.FileIds = app.bot_data.setdefault(_FILE_IDS_KEY, outbox.FileIds())
    return store


async def photo_call(
    app: Application,
    key: str,
    call: Callable[[str | bytes], Awaitable[_R]],
    file_id_of: Callable[[_R], str | None],
    data: Callable[[], Awaitable[bytes]],
) -> tuple[_R, str | None]:
    """Run `call` with the photo's file_id if Telegram has one (kept under `key`), else with
    its bytes from `data()`; returns the result and the file_id a fresh upload earned (None
    if it went by file_id). A file_id Telegram no longer accepts is forgotten and the photo
    uploaded again. Uploads of one key go one at a time: two chats whose cards change
    together (the command room's and the team's) wait for the first upload and send the
    second by its file_id."""
    store = file_ids(app)
    file_id = store.get(key)
    if file_id is not None:
        try:
            return await call(file_id), None
        except BadRequest as exc:
            if not bad_file_id(exc):
                raise
            log.info("file_id of %s no longer accepted; uploading again", key)
            if store.get(key) == file_id:
                store.forget(key)
    uploads: weakref.WeakValueDictionary[str, asyncio.Lock] = app.bot_data.setdefault(
        _UPLOADS_KEY, weakref.WeakValueDictionary()
    )
    async with uploads.setdefault(key, asyncio.Lock()):
        file_id = store.get(key)  # the upload we waited for
        if file_id is not None:
            return await call(file_id), None
        result = await call(await data())
        uploaded = file_id_of(result)
        if uploaded is not None:
            store.put(key, uploaded)
        return result, uploaded


async def drain(app: Application, *, timeout: float | None = None) -> int:
    """Wait until every row due now has been attempted; the number of rows delivered.

    Without a running sender (an Application that never ran post_init) a sender is run
    just for this.
    """
    token = SENDING.set(True)
    try:
        return await _drain(app, timeout=timeout)
    finally:
        SENDING.reset(token)


async def _drain(app: Application, *, timeout: float | None) -> int:
    sender = app.bot_data.get(_SENDER_KEY)
    if isinstance(sender, Sender) and sender.running:
        return await sender.drain(timeout=timeout)
    temporary = Sender(app)
    temporary.start()
    try:
        return await temporary.drain(timeout=timeout)
    finally:
        await temporary.stop()


def start_sender(app: Application) -> Sender:
    """Start this process's sender (post_init). Idempotent."""
    sender = app.bot_data.get(_SENDER_KEY)
    if isinstance(sender, Sender) and sender.running:
        return sender
    sender = Sender(app)
    app.bot_data[_SENDER_KEY] = sender
    sender.start()
    return sender


async def stop_sender(app: Application, *, drain_timeout: float | None = None) -> None:
    """Stop the sender (post_stop / post_shutdown). With `drain_timeout`, first try to send
    what is due for that long (the bot must still be up). Idempotent."""
    sender = app.bot_data.pop(_SENDER_KEY, None)
    if not isinstance(sender, Sender):
        return
    if drain_timeout and sender.running:
        try:
            await sender.drain(timeout=drain_timeout)
        except TimeoutError:
            log.warning("outbox not drained within %s s at shutdown; the rest is sent on the next start", drain_timeout)
        except Exception:
            log.exception("outbox drain at shutdown failed")
    await sender.stop()


# --- the sender --------------------------------------------------------------------------


@dataclass
class Unit:
    """One thing to send to one chat: a row, or several rows of one card coalesced."""

    chat_id: int
    jobs: list[outbox.Job]
    key: tuple[int, str] | None = None
    dropped: list[Unit] = field(default_factory=list)  # the chat's queue, given up with this one

    @property
    def ids(self) -> list[int]:
        return [job.id for job in self.jobs]


@dataclass(eq=False)
class _Waiter:
    """A drain: rows up to `mark` (the newest id when it began) due by `due_by`."""

    mark: int
    due_by: datetime
    done: asyncio.Future[None]
    claims_before: int  # how many claims the sender had made when it began


@dataclass
class _Batch:
    """What was read for the rows claimed since the sender was last idle: each case's view
    and each rendered card are computed once however many chats and rows want them."""

    views: dict[int, asyncio.Future[CaseView | None]] = field(default_factory=dict)
    cards: dict[tuple[Any, ...], Card] = field(default_factory=dict)
    langs: dict[int, str] = field(default_factory=dict)
    # Where each card is posted, as the claim read it and as our own sends since then left it
    # (only the sender posts cards; a chat's sends go one at a time).
    posted: dict[tuple[int, int, str], outbox.CardRef | None] = field(default_factory=dict)
    units: dict[int, int | None] = field(default_factory=dict)  # department chats' units
    refused: dict[int, str] = field(default_factory=dict)  # chats that blocked or lost us: the error

    def forget_case(self, case_id: int) -> None:
        self.views.pop(case_id, None)
        for key in [k for k in self.cards if k[0] == case_id]:
            del self.cards[key]

    def take(self, claimed: outbox.Batch) -> None:
        """What the claim read beside its rows: fresher than what we had, except where a
        send of ours finished meanwhile (a card it posted)."""
        for job in claimed.jobs:
            if job.case_id is not None:
                self.forget_case(job.case_id)  # the case changed since we last looked
        loop = asyncio.get_running_loop()
        for case_id, view in claimed.views.items():
            done = loop.create_future()
            done.set_result(view)
            self.views[case_id] = done
        self.langs.update(claimed.langs)
        self.units.update(claimed.units)
        for key, card in claimed.cards.items():
            self.posted.setdefault(key, card)


class _GroupCommit:
    """Sends that finish together are recorded in one transaction: a send hands its rows
    over and waits; one writer takes everything handed over meanwhile at each turn."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self._waiting: list[tuple[list[outbox.Sent], asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, sent: list[outbox.Sent]) -> bool:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((sent, done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="griddesk-outbox-record")
        return await done

    async def _write(self) -> None:
        try:
            await asyncio.sleep(0)  # sends finishing in this same turn of the loop join in
            while self._waiting:
                turn, self._waiting = self._waiting, []
                try:
                    together = await self.sender._record(outbox.delivered_all, [s for sent, _ in turn for s in sent])
                    for sent, done in turn:
                        # One row the database keeps refusing must not cost the others theirs.
                        ok = together or await self.sender._record(outbox.delivered_all, sent)
                        if not done.done():
                            done.set_result(ok)
                except BaseException as exc:
                    for _, done in turn:
                        if not done.done():
                            done.set_exception(exc)
                    raise
        finally:
            self._writer = None


class Sender:
    def __init__(
        self,
        app: Application,
        *,
        budgets: outbox.Budgets | None = None,
        max_in_flight: int = outbox.MAX_IN_FLIGHT,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.app = app
        self.rt: Runtime = app.bot_data["rt"]
        self.budgets = budgets or outbox.Budgets(enabled=self.rt.settings.rate_limit)
        self.max_in_flight = max_in_flight
        self._monotonic = monotonic
        self.file_ids = file_ids(app)
        self._sent = _GroupCommit(self)
        self.delivered_rows = 0  # rows whose message went out, since start
        self._queues: dict[int, deque[Unit]] = {}
        self._turns: OrderedDict[int, None] = OrderedDict()  # chats with queued units, next first
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._held: dict[int, datetime] = {}  # row id -> when its lease was last set
        self._capped: set[int] = set()  # chats of which the last claim took the most it may
        self._batch = _Batch()
        self._kick = asyncio.Event()
        self._claim_wanted = True  # rows of a crashed process may be waiting
        self._waiters: list[_Waiter] = []
        self._last_claim = -1  # rows the last claim took (-1: it failed)
        self._claims = 0
        self._claiming = False
        self._waiters_dirty = False  # something happened that may answer a drain
        self._reclaim_at: float | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- life -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=SENDER_TASK_NAME)

    def wake(self) -> None:
        self._claim_wanted = True
        self._kick.set()

    async def drain(self, *, timeout: float | None = None) -> int:
        """Wait until every row committed before this call and due by now has been tried
        (other chats' new rows arriving meanwhile do not hold it up)."""
        if not self.running:
            raise RuntimeError("the outbox sender is not running")
        before = self.delivered_rows
        async with asyncio.timeout(timeout):
            due_by = self.rt.clock.now()
            mark, first = await off_loop(outbox.drain_mark, self.rt, due_by)
            if first is None and not self._held and not self._claiming:
                return self.delivered_rows - before  # nothing due, nothing under way: the common case
            waiter = _Waiter(mark, due_by, asyncio.get_running_loop().create_future(), self._claims)
            self._waiters.append(waiter)
            self._waiters_dirty = True
            self._kick.set()
            try:
                await asyncio.shield(waiter.done)
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return self.delivered_rows - before

    async def stop(self) -> None:
        """Stop taking work, let sends under way finish, give back rows not yet tried."""
        self._stopping = True
        self._kick.set()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
            except TimeoutError:
                log.warning("outbox sends still under way after %s s; stopping them", STOP_GRACE_S)
                task.cancel()
                for send in list(self._in_flight.values()):
                    send.cancel()
                await asyncio.gather(task, *self._in_flight.values(), return_exceptions=True)
            except Exception:
                log.exception("the outbox sender ended with an error")
        unsent = [row for units in self._queues.values() for unit in units for row in unit.ids]
        self._queues.clear()
        self._turns.clear()
        if unsent:
            await self._record(outbox.release, unsent)
        for waiter in self._waiters:
            if not waiter.done.done():
                waiter.done.set_exception(RuntimeError("the outbox sender stopped"))
                waiter.done.exception()  # retrieved: a drain that timed out no longer listens
        self._waiters.clear()

    # -- the loop ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self._monotonic() if self._monotonic else asyncio.get_running_loop().time()

    async def _run(self) -> None:
        SENDING.set(True)  # this task's context: its sends and their threads inherit it
        while not (self._stopping and not self._in_flight):
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sender: unexpected error; carrying on")
                self._claim_wanted = True
                await asyncio.sleep(ERROR_PAUSE_S)
                continue
            delay = self._next_event_in()
            try:
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            except TimeoutError:
                pass
            self._kick.clear()

    async def _step(self) -> None:
        if self._stopping:
            return
        if self._reclaim_at is not None and self._now() >= self._reclaim_at:
            self._reclaim_at = None
            self._claim_wanted = True
        if self._claim_wanted:
            self._claim_wanted = False
            self._claiming = True  # rows taken but not yet held: a drain must not see "nothing"
            try:
                self._last_claim = await self._claim()
            finally:
                self._claiming = False
            self._claims += 1
            self._waiters_dirty = True
        await self._renew_leases()
        self._start_sends()
        if self._idle():
            self._batch = _Batch()
        await self._answer_waiters()
        self.budgets.forget_idle(self._now())

    def _idle(self) -> bool:
        return not self._queues and not self._in_flight

    async def _answer_waiters(self) -> None:
        """Answer the drains whose rows have all been tried: none of them still held here,
        none due in the database. One look at the database answers them all."""
        if not self._waiters or not self._waiters_dirty:
            return
        self._waiters_dirty = False
        floor = min(self._held) if self._held else None  # the oldest row we still hold
        ready = [w for w in self._waiters if floor is None or floor > w.mark]
        if not ready:
            return  # rows of theirs are still being sent (or queued)
        mark, due_by = max(w.mark for w in ready), max(w.due_by for w in ready)
        try:
            first = await off_loop(outbox.first_due, self.rt, mark, due_by)
        except DBAPIError:
            log.warning("could not look for due outbox rows; trying again shortly", exc_info=True)
            self._reclaim_at = self._now() + RECLAIM_PAUSE_S
            return
        for waiter in ready:
            if first is None or waiter.mark < first:
                if not waiter.done.done():
                    waiter.done.set_result(None)
                self._waiters.remove(waiter)
        if first is None:
            return
        # Rows are due that we do not hold: claim them. If a claim made since these drains
        # began found nothing (their chat is paused, another process holds them), look again
        # in a moment rather than at once.
        self._waiters_dirty = True
        if self._last_claim == 0 and all(self._claims > w.claims_before for w in self._waiters):
            self._reclaim_at = self._reclaim_at or self._now() + RECLAIM_PAUSE_S
        else:
            self._claim_wanted = True

    def _next_event_in(self) -> float | None:
        """Seconds until a queued chat's budget frees up (None: only a wake-up or a finished
        send can give us work), capped so held rows' leases are renewed in time."""
        if self._claim_wanted:
            return 0
        now = self._now()
        delays = [] if self._reclaim_at is None else [self._reclaim_at - now]
        if self._queues and len(self._in_flight) < self.max_in_flight:
            overall = self.budgets.overall_ready_at(now)
            for chat in self._queues:
                if chat not in self._in_flight:
                    delays.append(max(self.budgets.chat_ready_at(chat, now), overall) - now)
        if self._held:
            delays.append(outbox.LEASE.total_seconds() / 4)
        return max(min(delays), 0.01) if delays else None

    async def _claim(self) -> int:
        now = self._now()
        skip = self.budgets.paused(now) | {
            chat for chat, units in self._queues.items() if sum(len(u.jobs) for u in units) >= outbox.CLAIM_PER_CHAT
        }
        try:
            claimed = await off_loop(
                outbox.claim_batch, self.rt, outbox.CLAIM_LIMIT, per_chat=outbox.CLAIM_PER_CHAT, skip_chats=skip
            )
        except DBAPIError:
            log.warning("outbox claim failed; trying again shortly", exc_info=True)
            await asyncio.sleep(ERROR_PAUSE_S)
            self._claim_wanted = True
            return -1
        claimed_at = self.rt.clock.now()
        if len(self._batch.views) > MAX_CACHED_VIEWS:  # never idle for long: start afresh
            self._batch = _Batch()
        jobs = claimed.jobs
        self._batch.take(claimed)
        # A chat whose queue was given up while the claim ran (a 429 paused it, it blocked us)
        # may have rows in it: they go the way its queue went.
        now, paused, refused = self._now(), self.budgets.paused(self._now()), self._batch.refused
        later: dict[int, list[int]] = {}
        for job in jobs:
            if job.chat_id in paused:
                later.setdefault(job.chat_id, []).append(job.id)
            elif job.chat_id in refused:
                await self._record(outbox.undeliverable, job, error=refused[job.chat_id], chat_gone=True)
        for chat, ids in later.items():
            await self._record(outbox.release, ids, after=max(self.budgets.chat_ready_at(chat, now) - now, 0.0))
        if any(job.chat_id in refused for job in jobs):
            await self._own_rows_queued()  # the admins' alert, if a group was lost
        jobs = [job for job in jobs if job.chat_id not in later and job.chat_id not in refused]
        per_chat: dict[int, int] = {}
        for job in jobs:
            self._held[job.id] = claimed_at
            per_chat[job.chat_id] = per_chat.get(job.chat_id, 0) + 1
            self._enqueue(job)
        self._capped |= {chat for chat, n in per_chat.items() if n >= outbox.CLAIM_PER_CHAT}
        if len(claimed.jobs) >= outbox.CLAIM_LIMIT:
            self._claim_wanted = True  # more are waiting
        return len(jobs)

    def _enqueue(self, job: outbox.Job) -> None:
        queue = self._queues.setdefault(job.chat_id, deque())
        key = outbox.card_key(job)
        if key is not None:
            for unit in queue:
                if unit.key == key:
                    unit.jobs.append(job)  # one render, one send for all of them
                    return
        queue.append(Unit(job.chat_id, [job], key))
        self._turns.setdefault(job.chat_id, None)

    def _start_sends(self) -> None:
        now = self._now()
        for chat in list(self._turns):
            if len(self._in_flight) >= self.max_in_flight or self.budgets.overall_ready_at(now) > now:
                return
            if chat in self._in_flight or self.budgets.chat_ready_at(chat, now) > now:
                continue
            queue = self._queues[chat]
            unit = queue.popleft()
            del self._turns[chat]
            if queue:
                self._turns[chat] = None  # its next unit waits for every other chat's turn
            else:
                del self._queues[chat]
            self.budgets.spend(chat, now)
            task = asyncio.get_running_loop().create_task(self._send(unit), name=f"griddesk-outbox-send-{chat}")
            self._in_flight[chat] = task
            task.add_done_callback(functools.partial(self._finished, chat))

    def _finished(self, chat: int, task: asyncio.Task[None]) -> None:
        self._waiters_dirty = True
        if self._in_flight.get(chat) is task:
            del self._in_flight[chat]
        if not task.cancelled() and task.exception() is not None:
            log.error("outbox send to %s failed", chat, exc_info=task.exception())
        if chat in self._capped and chat not in self._queues:
            self._capped.discard(chat)
            self._claim_wanted = True  # its next rows may be waiting in the database
        self._kick.set()

    async def _renew_leases(self) -> None:
        now = self.rt.clock.now()
        stale = [row for row, at in self._held.items() if now - at >= outbox.LEASE / 2]
        if not stale:
            return
        if await self._record(outbox.extend_lease, stale):
            for row in stale:
                self._held[row] = now

    def _drop_chat_queue(self, chat: int) -> list[Unit]:
        self._turns.pop(chat, None)
        return list(self._queues.pop(chat, ()))

    # -- one send ---------------------------------------------------------------------------

    async def _send(self, unit: Unit) -> None:
        FROM_OUTBOX.set(True)  # this task's own context: PTB's limiter must not retry for us
        try:
            await self._attempt(unit)
        finally:
            # Only now, bookkeeping done: a drain waiting on these rows may be answered.
            for each in (unit, *unit.dropped):
                for row in each.ids:
                    self._held.pop(row, None)

    async def _attempt(self, unit: Unit) -> None:
        job, chat = unit.jobs[0], unit.chat_id
        try:
            message_id, is_photo = await self._deliver(job)
        except RetryAfter as exc:
            TELEGRAM_429.inc()
            seconds = exc.retry_after if isinstance(exc.retry_after, (int, float)) else exc.retry_after.total_seconds()
            log.info("Telegram asks us to wait %s s before sending to %s again", seconds, chat)
            self.budgets.pause(chat, self._now() + float(seconds))
            for each in unit.jobs:
                await self._record(outbox.failed_for_now, each, error=str(exc), retry_after=float(seconds))
            unit.dropped = self._drop_chat_queue(chat)  # tried again once the pause is over
            later = [row for u in unit.dropped for row in u.ids]
            await self._record(outbox.release, later, after=float(seconds))
            return
        except Forbidden as exc:
            log.warning("chat %s refuses our messages: %s", chat, exc)
            self._batch.refused[chat] = str(exc)
            unit.dropped = self._drop_chat_queue(chat)  # the rest would be refused the same way
            for each in [*unit.jobs, *(j for u in unit.dropped for j in u.jobs)]:
                await self._record(outbox.undeliverable, each, error=str(exc), chat_gone=True)
            await self._own_rows_queued()
            return
        except BadRequest as exc:
            if "not modified" in str(exc).lower():
                await self._delivered(unit, None, False)
                return
            if "too long" in str(exc).lower():  # a renderer's bug, never the row's fault: try again
                log.error("outbox rows %s too long for Telegram: %s", unit.ids, exc)
                for each in unit.jobs:
                    await self._record(outbox.failed_for_now, each, error=str(exc))
                return
            log.error("outbox rows %s refused by Telegram: %s", unit.ids, exc)
            gone = "chat not found" in str(exc).lower()
            if gone:
                self._batch.refused[chat] = str(exc)
            unit.dropped = self._drop_chat_queue(chat) if gone else []  # no chat: no point in the rest
            for each in [*unit.jobs, *(j for u in unit.dropped for j in u.jobs)]:
                await self._record(outbox.undeliverable, each, error=str(exc), chat_gone=gone)
            await self._own_rows_queued()  # the admins' alert (and the command room's, if gone)
            return
        except (TimedOut, NetworkError) as exc:
            log.info("outbox rows %s not sent for now: %s", unit.ids, exc)
            for each in unit.jobs:
                await self._record(outbox.failed_for_now, each, error=str(exc))
            return
        except Exception as exc:  # a bug in rendering: retry with backoff, and make it seen
            log.exception("outbox rows %s could not be sent", unit.ids)
            for each in unit.jobs:
                await self._record(outbox.failed_for_now, each, error=f"{type(exc).__name__}: {exc}")
            await self.app.process_error(None, exc)
            return
        await self._delivered(unit, message_id, is_photo)

    async def _delivered(self, unit: Unit, message_id: int | None, is_photo: bool) -> None:
        self.delivered_rows += len(unit.jobs)
        sent = []
        for job in unit.jobs:
            known = _UNKNOWN
            if job.kind == "case_card" and job.case_id is not None and job.purpose:
                key = (job.case_id, job.chat_id, job.purpose)
                known = self._batch.posted.get(key, _UNKNOWN)
                if message_id is not None:
                    self._batch.posted[key] = outbox.CardRef(message_id, is_photo)
            # A card edited in place is where the database says it is: no need to look.
            still = isinstance(known, outbox.CardRef) and known == outbox.CardRef(message_id or 0, is_photo)
            sent.append(outbox.Sent(job, message_id, is_photo, card_unchanged=still))
        await self._sent.record(sent)

    async def _own_rows_queued(self) -> None:
        """Our bookkeeping queued rows (the command room's alert about a lost chat): the
        drains under way wait for those too, and they are claimed at once."""
        self._claim_wanted = True
        if self._waiters:
            try:
                mark = await off_loop(outbox.high_water, self.rt)
            except DBAPIError:
                return
            for waiter in self._waiters:
                waiter.mark = max(waiter.mark, mark)

    async def _record(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> bool:
        """Bookkeeping in the database, retried through transient errors. False if it never
        went through: the row stays claimed and is sent again once its lease runs out."""
        for attempt, pause in enumerate((*outbox.BOOKKEEPING_RETRIES, None)):
            try:
                await off_loop(fn, self.rt, *args, **kwargs)
                return True
            except DBAPIError as exc:
                if pause is None:
                    log.error("outbox bookkeeping %s gave up after %s tries: %s", fn.__name__, attempt + 1, exc)
                    return False
                log.warning("outbox bookkeeping %s failed (%s); retrying", fn.__name__, exc)
                await asyncio.sleep(pause)
        return False

    # -- rendering --------------------------------------------------------------------------

    async def _lang(self, chat_id: int) -> str:
        lang = self._batch.langs.get(chat_id)
        if lang is None:
            lang = self._batch.langs[chat_id] = await off_loop(outbox.chat_language, self.rt, chat_id)
        return lang

    async def _view(self, case_id: int) -> CaseView | None:
        pending = self._batch.views.get(case_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(
                off_loop(case_view, self.rt, case_id), name="griddesk-outbox-view"
            )
            self._batch.views[case_id] = pending
        try:
            view = await asyncio.shield(pending)
        except Exception:
            if self._batch.views.get(case_id) is pending:
                del self._batch.views[case_id]
            raise
        if view is not None:
            for path, file_id in view.sent_file_ids:
                if self.file_ids.get(path) is None:
                    self.file_ids.put(path, file_id)  # kept by an earlier process
        return view

    async def _existing_card(self, job: outbox.Job) -> outbox.CardRef | None:
        key = (job.case_id, job.chat_id, job.purpose)
        if key in self._batch.posted:
            return self._batch.posted[key]
        return await off_loop(outbox.existing_card, self.rt, job)

    async def _unit_of(self, chat: int) -> int | None:
        if chat not in self._batch.units:
            info = await off_loop(chat_info, self.rt, chat)
            self._batch.units[chat] = info.unit_id if info else None
        return self._batch.units[chat]

    def _card(self, view: CaseView, *, lang: str, purpose: str, photo: bool, unit_id: int | None) -> Card:
        key = (view.id, lang, purpose, photo, unit_id)
        card = self._batch.cards.get(key)
        if card is None:
            card = self._batch.cards[key] = render_card(
                view,
                lang=lang,
                purpose=purpose,
                tz=self.rt.settings.tz,
                photo=photo,
                viewer_unit_id=unit_id,
                now=self.rt.clock.now(),
            )
        return card

    async def _deliver(self, job: outbox.Job) -> tuple[int | None, bool]:
        app, rt = self.app, self.rt
        lang = await self._lang(job.chat_id)
        if job.kind == "user_text":
            params = localized_params(job.payload.get("params", {}), lang)
            if isinstance(params.get("due_at"), str):  # a reminder's due time, in words when near
                due_at = datetime.fromisoformat(params.pop("due_at"))
                params["due"] = when_words(lang, due_at, rt.clock.now(), rt.settings.tz)
            text = clip(t(lang, job.payload["key"], **params))
            if receipt := job.payload.get("receipt"):
                return await self._receipt(job.chat_id, receipt, text, lang), False
            menu = _main_menu(lang) if job.payload.get("menu") == "main" else None
            message = await app.bot.send_message(job.chat_id, text, reply_markup=menu)
            return message.message_id, False
        if job.kind == "digest":
            text = clip(digests.render(job.payload, lang))
            message = await app.bot.send_message(job.chat_id, text)
            return message.message_id, False
        if job.kind in ("rating_request", "followup_card"):
            from handlers.rate import deliver  # rate.py imports this module: import when used

            return await deliver(app, rt, job, lang)
        if job.kind == "verify_request":
            return await self._verify_request(job, lang), False
        if job.kind == "extension_request":
            return await self._extension_request(job, lang), False
        if job.kind == "case_card":
            return await self._case_card(job, lang)
        if job.kind == "desk_spreadsheet":  # the monthly report's XLSX (issue 11)
            from handlers.desk_jobs import deliver_spreadsheet  # it imports this module

            return await deliver_spreadsheet(app, rt, job, lang), False
        log.error("outbox row %s has an unknown kind %r", job.id, job.kind)
        return None, False

    async def _receipt(self, chat_id: int, receipt: dict[str, Any], line: str, lang: str) -> int:
        """The line written into a message of ours, below its text, its buttons gone (the
        reporter's summary becomes the receipt with the case code). Sent again after a crash it
        changes nothing: Telegram answers "not modified" and the row counts as delivered. If
        that message is gone, the line comes as a new message, with the main menu."""
        above = receipt.get("above") or ""
        text = f"{above}\n\n{line}" if above and utf16_len(above) + utf16_len(line) + 2 <= MESSAGE_LIMIT else line
        try:
            await self.app.bot.edit_message_text(text, chat_id, int(receipt["message_id"]), reply_markup=None)
        except BadRequest as exc:
            if not _message_gone(exc) or "chat not found" in str(exc).lower():
                raise
            message = await self.app.bot.send_message(chat_id, line, reply_markup=_main_menu(lang))
            return message.message_id
        return int(receipt["message_id"])

    async def _extension_request(self, job: outbox.Job, lang: str) -> int:
        p = localized_params(job.payload, lang)
        text = t(
            lang,
            "work.extension_request",
            code=p.get("code", ""),
            by=p["by"],
            hours=p["hours"],
            due=p["due"],
            reason=p["reason"],
        )
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        t(lang, "work.btn_approve"),
                        callback_data=Extension("approve", int(job.payload["request"])).pack(),
                    ),
                    InlineKeyboardButton(
                        t(lang, "work.btn_refuse"),
                        callback_data=Extension("refuse", int(job.payload["request"])).pack(),
                    ),
                ]
            ]
        )
        message = await self.app.bot.send_message(job.chat_id, clip(text), reply_markup=buttons)
        return message.message_id

    async def _case_card(self, job: outbox.Job, lang: str) -> tuple[int | None, bool]:
        assert job.case_id is not None
        bot, chat = self.app.bot, job.chat_id
        view = await self._view(job.case_id)
        if view is None:
            return None, False
        existing = await self._existing_card(job)
        unit_id = await self._unit_of(chat) if job.purpose == "department" else None
        purpose = job.purpose or ""
        card = self._card(
            view, lang=lang, purpose=purpose, photo=existing is None or existing.is_photo, unit_id=unit_id
        )
        # A closed case's photo card shows before and after side by side (issue 12).
        composite = await closed_composite(self.rt, view, lang) if card.photo_path and shows_composite(view) else None
        if composite is not None:
            card = dataclasses.replace(card, photo_path=composite)

        async def as_text() -> int:
            """The whole card as a text message (its photo, if any, went with a short caption)."""
            text_card = self._card(view, lang=lang, purpose=purpose, photo=False, unit_id=unit_id)
            message = await bot.send_message(
                chat,
                text_card.text,
                reply_markup=markup(text_card),
            )
            return message.message_id

        if existing is not None:
            try:
                if existing.is_photo:
                    if visible_len(card.text) > CAPTION_LIMIT:
                        return await self._split_photo_card(job, existing.message_id, card, as_text)
                    if composite is not None:
                        await self._edit_photo(chat, existing.message_id, composite, card)
                    else:
                        await bot.edit_message_caption(
                            chat,
                            existing.message_id,
                            caption=card.text,
                            reply_markup=markup(card),
                        )
                else:
                    await bot.edit_message_text(
                        card.text,
                        chat,
                        existing.message_id,
                        reply_markup=markup(card),
                    )
                return existing.message_id, existing.is_photo
            except BadRequest as exc:
                text = str(exc).lower()
                if "not modified" in text:
                    return existing.message_id, existing.is_photo
                if existing.is_photo and _caption_too_long(exc):
                    return await self._split_photo_card(job, existing.message_id, card, as_text)
                if not _message_gone(exc):
                    raise
                # The card was deleted in the chat: post it again below.
        if card.photo_path:
            if visible_len(card.text) <= CAPTION_LIMIT:
                try:
                    message = await self._send_photo(
                        job.case_id, chat, card.photo_path, caption=card.text, reply_markup=markup(card)
                    )
                    return message.message_id, True
                except BadRequest as exc:
                    if not _caption_too_long(exc):
                        raise
            # Too long for a caption: the photo with the card's first line, then the card.
            log.info("card of case %s in %s is too long for a caption: photo, then text", job.case_id, chat)
            await self._send_photo(
                job.case_id, chat, card.photo_path, caption=short_caption(card.text), reply_markup=None
            )
            return await as_text(), False
        message = await bot.send_message(chat, card.text, reply_markup=markup(card))
        return message.message_id, False

    async def _split_photo_card(
        self, job: outbox.Job, photo_message_id: int, card: Card, as_text: Callable[[], Any]
    ) -> tuple[int, bool]:
        """A photo card grew past the caption limit: its caption shrinks to the first line
        (buttons gone from it) and the full card follows as text, the card from now on."""
        log.info("card of case %s in %s outgrew its caption: moving it to a text message", job.case_id, job.chat_id)
        try:
            await self.app.bot.edit_message_caption(job.chat_id, photo_message_id, caption=short_caption(card.text))
        except BadRequest as exc:
            if "not modified" not in str(exc).lower() and not _message_gone(exc):
                raise
        return await as_text(), False

    async def _send_photo(
        self,
        case_id: int | None,
        chat_id: int,
        path: str,
        *,
        caption: str,
        reply_markup: InlineKeyboardMarkup | None,
    ) -> Message:
        """Our JPEG by its file_id once Telegram has it, else uploaded (and its file_id kept)."""

        async def send(photo: str | bytes) -> Message:
            return await self.app.bot.send_photo(chat_id, photo, caption=caption or None, reply_markup=reply_markup)

        message, uploaded = await self._photo_call(path, send, lambda m: m.photo[-1].file_id if m.photo else None)
        if uploaded is not None and case_id is not None:
            await self._record(outbox.keep_file_ids, case_id, {path: uploaded})
        return message

    async def _edit_photo(self, chat_id: int, message_id: int, path: str, card: Card) -> None:
        """Put our JPEG (by file_id once Telegram has it) and the card's caption on a photo card.
        A composite is not a media row's: its file_id is kept in memory only."""

        async def edit(photo: str | bytes) -> Message | bool:
            return await self.app.bot.edit_message_media(
                InputMediaPhoto(photo, caption=card.text), chat_id, message_id, reply_markup=markup(card)
            )

        await self._photo_call(
            path, edit, lambda m: m.photo[-1].file_id if isinstance(m, Message) and m.photo else None
        )

    async def _photo_call(
        self, path: str, call: Callable[[str | bytes], Awaitable[_R]], file_id_of: Callable[[_R], str | None]
    ) -> tuple[_R, str | None]:
        return await photo_call(
            self.app, path, call, file_id_of, lambda: off_loop(absolute(self.rt.settings.media_dir, path).read_bytes)
        )

    async def _verify_request(self, job: outbox.Job, lang: str) -> int | None:
        """Before and after side by side in one photo, the result note and replies, two buttons."""
        assert job.case_id is not None
        view = await self._view(job.case_id)
        if view is None:
            return None
        return await send_verify_request(self.app, self.rt, job.chat_id, lang, view)
