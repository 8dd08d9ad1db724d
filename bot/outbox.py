"""Draining the outbox: claim due rows, pace them per chat, and record how each ended.

Knows nothing of Telegram: the sender (handlers/outbox_sender.py) asks here what to
send next and tells here what happened. The numbers below are Telegram's published
limits with a little room; settings.py does not carry them because nobody should need
to tune them per deployment (a test builds its own `Budgets`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot import notify
from bot.cases.cards import CaseView, view_in
from bot.i18n import N_, pick_language
from bot.org import chats as chat_service
from bot.runtime import Runtime
from storage import cases, chats, people
from storage import outbox as rows
from storage.models import Chat, User

LEASE = timedelta(minutes=2)  # a row held longer than this by a dead sender is taken again
MAX_ATTEMPTS = 8

# How much one claim takes: at most CLAIM_PER_CHAT of any one chat, so a group's backlog
# never fills a claim (a resident's notice committed later is claimed at the next wake-up,
# not after the backlog). A group's share lasts CLAIM_PER_CHAT / 20 a minute = 30 s, well
# inside the lease; rows held longer anyway have their lease extended.
CLAIM_LIMIT = 200
CLAIM_PER_CHAT = 10
MAX_IN_FLIGHT = 8  # sends under way at once, each to a different chat


@dataclass(frozen=True)
class Window:
    """At most `count` sends in any `seconds`."""

    count: int
    seconds: float


# Telegram: about one message a second in one chat, twenty a minute in a group, thirty a
# second overall (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).
PRIVATE_CHAT = (Window(1, 1.0),)
GROUP_CHAT = (Window(1, 1.0), Window(20, 60.0))
OVERALL = (Window(30, 1.0),)

# Bookkeeping after a send is retried this many times (seconds between) when the
# database hiccups, then left to the lease: the row is sent again later, never lost.
BOOKKEEPING_RETRIES = (0.05, 0.25, 1.0)


@dataclass(frozen=True)
class Job:
    id: int
    chat_id: int
    kind: str
    case_id: int | None
    purpose: str | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class CardRef:
    message_id: int
    is_photo: bool


def card_key(job: Job) -> tuple[int, str] | None:
    """Rows that render the same card in the same chat: sent once, as one post or edit."""
    if job.kind == "case_card" and job.case_id is not None and job.purpose:
        return job.case_id, job.purpose
    return None


# --- pacing ------------------------------------------------------------------------------


class Budgets:
    """Sliding windows per chat and overall, on a monotonic clock in seconds.

    `ready_at` says when a chat may send next; `spend` records a send; `pause` holds a
    chat back (Telegram said "retry after"). With `enabled=False` (tests, where the fake
    has no limits) every chat is always ready, but pauses still hold.
    """

    def __init__(
        self,
        *,
        private: tuple[Window, ...] = PRIVATE_CHAT,
        group: tuple[Window, ...] = GROUP_CHAT,
        overall: tuple[Window, ...] = OVERALL,
        enabled: bool = True,
    ) -> None:
        self.private, self.group, self.overall = private, group, overall
        self.enabled = enabled
        self._sent: dict[int, deque[float]] = {}
        self._all: deque[float] = deque()
        self._paused: dict[int, float] = {}

    def _windows(self, chat_id: int) -> tuple[Window, ...]:
        return self.private if chat_id > 0 else self.group

    @staticmethod
    def _free_at(times: deque[float], windows: tuple[Window, ...], now: float) -> float:
        longest = max((w.seconds for w in windows), default=0.0)
        while times and times[0] <= now - longest:
            times.popleft()
        at = now
        for w in windows:
            recent = [x for x in times if x > now - w.seconds]
            if len(recent) >= w.count:
                at = max(at, recent[-w.count] + w.seconds)
        return at

    def chat_ready_at(self, chat_id: int, now: float) -> float:
        at = self._paused.get(chat_id, now)
        if at <= now:
            self._paused.pop(chat_id, None)
            at = now
        if self.enabled and chat_id in self._sent:
            at = max(at, self._free_at(self._sent[chat_id], self._windows(chat_id), now))
        return at

    def overall_ready_at(self, now: float) -> float:
        return self._free_at(self._all, self.overall, now) if self.enabled else now

    def spend(self, chat_id: int, now: float) -> None:
        if self.enabled:
            self._sent.setdefault(chat_id, deque()).append(now)
            self._all.append(now)

    def pause(self, chat_id: int, until: float) -> None:
        self._paused[chat_id] = max(until, self._paused.get(chat_id, until))

    def paused(self, now: float) -> set[int]:
        return {chat for chat, until in self._paused.items() if until > now}

    def forget_idle(self, now: float) -> None:
        """Drop the history of chats quiet for longer than any window (memory stays small)."""
        longest = max(w.seconds for w in (*self.private, *self.group))
        for chat in [c for c, times in self._sent.items() if not times or times[-1] <= now - longest]:
            del self._sent[chat]


class FileIds:
    """Telegram file_ids of photos we uploaded, by media path, most recent kept.

    A file_id is valid for the bot in every chat, so a card's photo posted to the
    command room, the team and the reporter is uploaded once. Per process: a restart
    uploads each photo once more (see the report to the lead for a durable column).
    """

    def __init__(self, size: int = 5000) -> None:
        self.size = size
        self._ids: OrderedDict[str, str] = OrderedDict()

    def get(self, path: str) -> str | None:
        file_id = self._ids.get(path)
        if file_id is not None:
            self._ids.move_to_end(path)
        return file_id

    def put(self, path: str, file_id: str) -> None:
        self._ids[path] = file_id
        self._ids.move_to_end(path)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)

    def forget(self, path: str) -> None:
        self._ids.pop(path, None)


# --- the database side -------------------------------------------------------------------


def _job(r: Any) -> Job:
    return Job(r.id, r.chat_id, r.kind, r.case_id, r.purpose, dict(r.payload), r.attempts)


def claim(rt: Runtime, limit: int = 50, *, per_chat: int | None = None, skip_chats: Iterable[int] = ()) -> list[Job]:
    return claim_batch(rt, limit, per_chat=per_chat, skip_chats=skip_chats).jobs


@dataclass(frozen=True)
class Batch:
    """Rows claimed, and what sending them reads, read in the claim's unit of work (once per
    claim, not once per row)."""

    jobs: list[Job]
    langs: dict[int, str]  # chat id -> the language it is written to in
    cards: dict[tuple[int, int, str], CardRef | None]  # (case, chat, purpose) -> the card posted there
    views: dict[int, CaseView | None]  # case id -> what its cards show
    units: dict[int, int | None]  # chat id -> the team or department it is bound to


VIEWED_KINDS = frozenset({"case_card", "verify_request"})  # rows whose rendering shows the case


def claim_batch(rt: Runtime, limit: int = 50, *, per_chat: int | None = None, skip_chats: Iterable[int] = ()) -> Batch:
    """Take due rows (see storage.outbox.claim_due) and read what rendering them needs, in one
    unit of work. A claim that finds nothing costs one statement (the sender only claims when
    woken, so most find something: no look before it)."""
    now, skip = rt.clock.now(), set(skip_chats)
    with rt.db.session() as s:
        jobs = [
            _job(r) for r in rows.claim_due(s, now=now, lease=LEASE, limit=limit, per_chat=per_chat, skip_chats=skip)
        ]
        if not jobs:
            return Batch([], {}, {}, {}, {})
        chat_ids = {job.chat_id for job in jobs}
        users = {u.telegram_id: u for u in people.users_by_telegram_ids(s, {c for c in chat_ids if c > 0})}
        groups = {c.telegram_id: c for c in chats.chats_by_telegram_ids(s, {c for c in chat_ids if c <= 0})}
        langs = {chat: _language(rt, users.get(chat), groups.get(chat)) for chat in chat_ids}
        carded = [job for job in jobs if job.kind == "case_card" and job.case_id is not None and job.purpose]
        posted = {(c.case_id, c.chat_id, c.purpose): CardRef(c.message_id, c.is_photo) for c in
                  cases.cards_of_cases(s, {job.case_id for job in carded if job.case_id is not None})}  # fmt: skip
        found: dict[tuple[int, int, str], CardRef | None] = {}
        for job in carded:
            assert job.case_id is not None and job.purpose is not None
            key = (job.case_id, job.chat_id, job.purpose)
            found[key] = posted.get(key)
        views: dict[int, CaseView | None] = {}
        for case_id in sorted({job.case_id for job in jobs if job.kind in VIEWED_KINDS and job.case_id is not None}):
            case = cases.get_case(s, case_id)
            views[case_id] = view_in(s, rt, case) if case is not None else None
        units = {chat.telegram_id: chat.unit_id for chat in groups.values()}
        return Batch(jobs, langs, found, views, units)


def high_water(rt: Runtime) -> int:
    """The newest row's id: a drain waits for the rows up to here."""
    with rt.db.read() as s:
        return rows.newest_id(s)


def drain_mark(rt: Runtime, due_by: datetime) -> tuple[int, int | None]:
    """Where a drain begins: the newest row's id, and the oldest row up to it that is due."""
    with rt.db.read() as s:
        mark = rows.newest_id(s)
        return mark, rows.first_due_id(s, now=due_by, up_to=mark)


def first_due(rt: Runtime, mark: int, due_by: datetime) -> int | None:
    """The oldest row up to `mark` still waiting to be tried by `due_by`, if any."""
    with rt.db.read() as s:
        return rows.first_due_id(s, now=due_by, up_to=mark)


def extend_lease(rt: Runtime, row_ids: Iterable[int]) -> None:
    with rt.db.session() as s:
        rows.extend_lease(s, row_ids=set(row_ids), until=rt.clock.now() + LEASE)


def recover_after_crash(rt: Runtime) -> int:
    """At the start of the one sending process: rows the previous (killed) process held are
    due now rather than after their lease. One of them may have been delivered just before
    the kill: it is sent again (at most one per chat that was mid-send)."""
    with rt.db.session() as s:
        return rows.release_all_sending(s, at=rt.clock.now())


def release(rt: Runtime, row_ids: Iterable[int], *, after: float = 0.0) -> None:
    """Claimed but not tried: back to pending (`after` seconds from now), attempt not counted."""
    with rt.db.session() as s:
        rows.release(s, row_ids=set(row_ids), at=rt.clock.now() + timedelta(seconds=after))


def existing_card(rt: Runtime, job: Job) -> CardRef | None:
    if job.case_id is None or job.purpose is None:
        return None
    with rt.db.read() as s:
        card = cases.find_card(s, case_id=job.case_id, chat_id=job.chat_id, purpose=job.purpose)
        return CardRef(card.message_id, card.is_photo) if card else None


@dataclass(frozen=True)
class Sent:
    """A row Telegram accepted: the message it became (None for an edit that changed nothing)."""

    job: Job
    message_id: int | None
    is_photo: bool = False
    card_unchanged: bool = False  # a card the sender knows is recorded where it still is


def delivered(rt: Runtime, job: Job, *, message_id: int | None, is_photo: bool = False) -> None:
    delivered_all(rt, [Sent(job, message_id, is_photo)])


def delivered_all(rt: Runtime, sent: Sequence[Sent]) -> None:
    """Mark rows sent and remember where each case card now is, all in one transaction (the
    sender records the sends that finish together at once)."""
    now = rt.clock.now()
    with rt.db.session() as s:
        rows.mark_sent(s, sent=[(each.job.id, each.message_id) for each in sent], now=now)
        for each in sent:
            job, message_id = each.job, each.message_id
            if each.card_unchanged:
                continue
            if job.kind == "case_card" and job.case_id is not None and message_id is not None and job.purpose:
                cases.save_card(
                    s,
                    case_id=job.case_id,
                    chat_id=job.chat_id,
                    message_id=message_id,
                    purpose=job.purpose,
                    is_photo=each.is_photo,
                    now=now,
                )


def keep_file_ids(rt: Runtime, case_id: int, uploaded: dict[str, str]) -> None:
    """Telegram's file_ids for the case's JPEGs we uploaded (path -> file_id)."""
    with rt.db.session() as s:
        cases.keep_jpeg_file_ids(s, case_id=case_id, uploaded=uploaded)


def backoff_seconds(attempts: int) -> float:
    """5 s, 10 s, 20 s, … up to 10 minutes: for 5xx answers and timeouts."""
    return float(min(5 * 2 ** max(attempts - 1, 0), 600))


def failed_for_now(rt: Runtime, job: Job, *, error: str, retry_after: float | None = None) -> bool:
    """Schedule another try with backoff; False once the row has had its last chance."""
    with rt.db.session() as s:
        if job.attempts >= MAX_ATTEMPTS:
            rows.mark_failed(s, row_id=job.id, error=error)
            return False
        delay = retry_after if retry_after is not None else backoff_seconds(job.attempts)
        rows.retry_later(s, row_id=job.id, at=rt.clock.now() + timedelta(seconds=delay), error=error)
        return True


def undeliverable(rt: Runtime, job: Job, *, error: str, chat_gone: bool) -> None:
    """The chat blocked us or removed us, or Telegram refused the row for good: stop trying,
    remember it, and make it seen (the admins are told; a person who blocked us is not news)."""
    with rt.db.session() as s:
        rows.mark_failed(s, row_id=job.id, error=error)
        alerting = job.kind == "user_text" and str(job.payload.get("key", "")).startswith("alert.")
        if not (chat_gone and job.chat_id > 0) and not alerting:
            for admin in sorted(rt.settings.admin_ids):
                if admin != job.chat_id:
                    notify.text_to_user(
                        s, telegram_id=admin, key=N_("alert.undeliverable"), now=rt.clock.now(),
                        case_id=job.case_id, chat=str(job.chat_id), error=error[:300],
                    )  # fmt: skip
        if chat_gone:
            chat = chats.get_chat(s, job.chat_id)
            if chat is not None and chat.status == "active":
                chat.status = "blocked" if job.chat_id > 0 else "left"
                chats.save(s, chat)
                notify.chat_lost(s, chat=chat, now=rt.clock.now())
            if job.chat_id > 0:
                people.set_can_message(s, telegram_id=job.chat_id, can_message=False)
    if chat_gone:
        chat_service.forget_chats(rt, job.chat_id)


def chat_language(rt: Runtime, chat_id: int) -> str:
    """A group's configured language, a person's chosen one, else the default."""
    with rt.db.read() as s:
        if chat_id > 0:
            return _language(rt, people.get_user_by_telegram_id(s, chat_id), None)
        return _language(rt, None, chats.get_chat(s, chat_id))


def _language(rt: Runtime, user: User | None, chat: Chat | None) -> str:
    if user is not None:
        return pick_language(user.language, user.telegram_language, rt.settings.default_language)
    return (chat.language if chat else None) or rt.settings.default_language
