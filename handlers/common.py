"""Glue every feature module shares: the runtime, who is asking, their language, replies."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardMarkup, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import textlimits
from bot.i18n import t
from bot.org import chats as chat_service
from bot.people import identity as people
from bot.people.roles import Person
from bot.runtime import Runtime
from storage.db import NotNow

T = TypeVar("T")
Ctx = ContextTypes.DEFAULT_TYPE

TELEGRAM_TEXT_LIMIT = 4096


def runtime(context: Ctx) -> Runtime:
    return context.application.bot_data["rt"]


async def off_loop(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """A short unit of work of a runtime's database (an update's, the outbox sender's): on
    SQLite the event loop's thread runs it when it need not wait for another writer; in a
    thread otherwise, and always on PostgreSQL (storage/db.py Database.here_and_now says why).
    Work that takes long however free the database is goes through :func:`in_thread`."""
    db = next((arg.db for arg in args if isinstance(arg, Runtime)), None)
    if db is not None:
        try:
            return db.here_and_now(fn, *args, **kwargs)
        except NotNow:
            pass
    return await asyncio.to_thread(fn, *args, **kwargs)


async def in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Long work (a sweep, a report, an export, the desk's lists over a district, a file):
    in a thread, so the event loop keeps serving updates meanwhile."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@contextlib.asynccontextmanager
async def user_lock(context: Ctx, user_id: int) -> AsyncIterator[None]:
    """One person's private-chat database steps, one at a time (an album arrives as several
    updates at once, each wanting to add to the same draft or case input). Hold it for the
    unit of work only, never across a send: see :func:`user_turn`."""
    steps = _steps(context, user_id)  # held here: the person's entry lives while it is locked
    async with steps.lock:
        yield


@dataclass(eq=False)
class _UserSteps:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    replied: asyncio.Future[None] | None = None  # done once the latest turn's replies went out


def _steps(context: Ctx, user_id: int) -> _UserSteps:
    """The person's entry while some turn of theirs holds it; forgotten once none does (a weak
    mapping), so the bot keeps no state for everyone it has ever seen."""
    people_steps: weakref.WeakValueDictionary[int, _UserSteps] = context.application.bot_data.setdefault(
        "user_steps", weakref.WeakValueDictionary()
    )
    steps = people_steps.get(user_id)
    if steps is None:
        steps = people_steps[user_id] = _UserSteps()
    return steps


class Turn:
    """One update's turn in a person's private chat: its database step under the person's
    lock, then (after :meth:`replying`) its replies, sent in the order of the steps but
    without the lock, so a slow send to Telegram never holds up the next step's change."""

    def __init__(self, steps: _UserSteps) -> None:
        self._steps = steps
        self._locked = False
        self._previous: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    async def _begin(self) -> None:
        await self._steps.lock.acquire()
        self._locked = True
        # The reply order is the step order: taken under the lock.
        self._previous, self._done = self._steps.replied, asyncio.get_running_loop().create_future()
        self._steps.replied = self._done

    def release(self) -> None:
        if self._locked:
            self._locked = False
            self._steps.lock.release()

    async def replying(self) -> None:
        """Release the lock and wait until the earlier steps' replies are out."""
        self.release()
        previous = self._previous
        if previous is not None and not previous.done():
            await asyncio.shield(previous)
        self._previous = None

    def locked(self) -> asyncio.Lock:
        """The person's lock again, for a small database step while replying (an album's
        acknowledgement, once Telegram gave its message id)."""
        return self._steps.lock

    def _end(self) -> None:
        self.release()
        done = self._done
        if done is not None and not done.done():
            if self._previous is not None and not self._previous.done():
                # Ended before replying (an error): the next turn still waits for ours' predecessor.
                self._previous.add_done_callback(functools.partial(_settle, done))
            else:
                done.set_result(None)


def _settle(done: asyncio.Future[None], _previous: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


@contextlib.asynccontextmanager
async def user_turn(context: Ctx, user_id: int) -> AsyncIterator[Turn]:
    """A turn of `user_id`'s private chat: the block starts holding the person's lock; call
    ``await turn.replying()`` once the database step is done, then send."""
    turn = Turn(_steps(context, user_id))
    try:
        await turn._begin()
        yield turn
    finally:
        turn._end()


def profile_of(update: Update) -> people.Profile | None:
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    return people.Profile(
        telegram_id=user.id,
        first_name=user.first_name or "",
        last_name=user.last_name or "",
        username=user.username,
        language_code=user.language_code,
    )


async def person_of(update: Update, context: Ctx) -> Person | None:
    """Who sent this update, registering them on first contact.

    PTB gives all handlers of one update the same context, and a private message passes
    several of them (pending inputs, then the report conversation): ask the database once.
    """
    profile = profile_of(update)
    if profile is None:
        return None
    cached = context.__dict__.get("_griddesk_person")
    if cached is not None and cached.telegram_id == profile.telegram_id:
        return cached
    rt = runtime(context)
    # Somebody this process knows needs no thread: the common case costs nothing.
    person = people.remembered(rt, profile) or await off_loop(people.identify, rt, profile)
    context.__dict__["_griddesk_person"] = person
    return person


async def pressed(update: Update, context: Ctx) -> tuple[CallbackQuery, Person]:
    """A button press and who pressed it (callback handlers only)."""
    query = update.callback_query
    person = await person_of(update, context)
    assert query is not None and person is not None
    return query, person


def is_private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE


async def chat_language(update: Update, context: Ctx, person: Person | None) -> str:
    """Private chats speak the person's language; groups speak the group's."""
    rt = runtime(context)
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return person.language if person else rt.settings.default_language
    info = await off_loop(chat_service.chat_info, rt, chat.id)
    if info and info.language:
        return info.language
    return rt.settings.default_language


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def clip(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """Telegram refuses messages over 4096 UTF-16 units; cut long text with an ellipsis.

    (Cutting may split an HTML tag in a card that is all user text; callers keep tags
    at the start, so only the tail, plain text, is ever cut.)"""
    return textlimits.clip(text, limit)


async def reply(
    update: Update,
    text: str,
    *,
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None,
) -> Message | None:
    message = update.effective_message
    if message is None:
        return None
    return await message.reply_text(clip(text), reply_markup=markup)


async def say(
    update: Update, context: Ctx, key: str, /, markup: InlineKeyboardMarkup | None = None, **kwargs: Any
) -> Message | None:
    person = await person_of(update, context)
    lang = await chat_language(update, context, person)
    return await reply(update, t(lang, key, **kwargs), markup=markup)


def command_args(context: Ctx) -> list[str]:
    return list(context.args or [])
