"""What a person owes the bot in their private chat, read in one unit of work.

Three things can be waiting for a person's next private message, and this is the one place
that decides which one it goes to, in this order:

1. a comment on the rating they just gave (residents only; anything but text or voice ends
   the wait and goes on as if it had not been there);
2. the words and photos a case action needs (a resolve's result, a return's reason…);
3. the report they are writing (the draft), or a new one.

handlers/private.py routes each message by this answer; handlers for buttons and commands
that start or end one of these waits live with their feature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlmodel import Session

from bot.cases import casework
from bot.intake import drafts
from bot.people.roles import Person
from bot.rating import ratings
from bot.runtime import Runtime
from storage import drafts as draft_rows


@dataclass(frozen=True)
class Awaiting:
    rating_comment: int | None  # the rating whose comment we wait for
    case_input: casework.Pending | None  # what a case action waits for
    draft: drafts.Loaded  # the report under way (or that just expired)


T = TypeVar("T")

NOTHING = Awaiting(None, None, drafts.Loaded(None, False))


def may_comment(rt: Runtime, person: Person) -> bool:
    """Might their next message be a comment on a rating? Staff never rate a case; a
    resident only while a window their rating opened may be open (bot/rating/ratings.py
    window_may_be_open: known in memory, so most messages ask the database nothing)."""
    return not person.memberships and ratings.window_may_be_open(rt, person.user_id)


def _comment_window_in(s: Session, rt: Runtime, person: Person, now: datetime) -> int | None:
    if not may_comment(rt, person):
        return None
    found = ratings.comment_window_in(s, person.user_id, now)
    if found is None:
        ratings.window_closed(rt, person.user_id)
    return found


def awaiting(rt: Runtime, person: Person, *, command: bool = False) -> Awaiting:
    """What `person` owes. A command is never a case input or a report step: for one only
    the comment window matters (a command ends it)."""
    if command and not may_comment(rt, person):
        return NOTHING
    now = rt.clock.now()
    with rt.db.read() as s:
        comment = _comment_window_in(s, rt, person, now)
        if command:
            return Awaiting(comment, None, NOTHING.draft)
        case_input = casework.pending_in(s, person.user_id)
        draft_row = draft_rows.get(s, person.user_id)
    return Awaiting(comment, case_input, drafts.loaded(rt, person.user_id, draft_row))


def step(
    rt: Runtime, person: Person, apply: Callable[[Session, drafts.Loaded], T], *, words: str | None = None
) -> tuple[Awaiting, T | None]:
    """A private message's whole unit of work: what `person` owes and, when it is the report,
    `apply` (the step's change to the draft, and what its reply needs to read) in the same
    transaction; when a case action waits for words, the message's `words` (its text, if it
    is a text message) are added to them in it, and `case_input` is what it now holds.
    Nothing is applied when a rating comment is owed: the caller hands the message to it (a
    rating's comment window is the only thing that can end without the message, and then
    the caller steps again).

    The draft's row is locked for the transaction: steps of one person from two processes
    queue here (in one process the person's asyncio lock already orders them)."""
    now = rt.clock.now()
    with _idle_gone_anyway(rt, person.user_id) as seen, rt.db.session() as s:
        comment = _comment_window_in(s, rt, person, now)
        if comment is not None:
            return Awaiting(comment, None, NOTHING.draft), None
        case_input = casework.pending_in(s, person.user_id, words=words, now=now)
        if case_input is not None:
            return Awaiting(None, case_input, NOTHING.draft), None
        loaded = seen(drafts.loaded_in(s, rt, person.user_id, draft_rows.get(s, person.user_id, for_update=True)))
        return Awaiting(None, None, loaded), apply(s, loaded)


def draft_step(rt: Runtime, user_id: int, apply: Callable[[Session, drafts.Loaded], T]) -> T:
    """A step of the report alone (a button of its summary, /report), in one transaction
    with the draft's row locked, as :func:`step`."""
    with _idle_gone_anyway(rt, user_id) as seen, rt.db.session() as s:
        return apply(s, seen(drafts.loaded_in(s, rt, user_id, draft_rows.get(s, user_id, for_update=True))))


@contextmanager
def _idle_gone_anyway(rt: Runtime, user_id: int) -> Iterator[Callable[[drafts.Loaded], drafts.Loaded]]:
    """A step refused (a stale button, the hourly limit) rolls its unit of work back; a draft
    it found idle is still discarded, in a unit of work of its own (rare)."""
    expired = False

    def seen(loaded: drafts.Loaded) -> drafts.Loaded:
        nonlocal expired
        expired = loaded.expired
        return loaded

    try:
        yield seen
    except Exception:
        if expired:
            drafts.drop_idle(rt, user_id)
        raise
