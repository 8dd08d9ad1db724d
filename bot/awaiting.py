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

from dataclasses import dataclass

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


NOTHING = Awaiting(None, None, drafts.Loaded(None, False))


def may_comment(person: Person) -> bool:
    return not person.memberships  # staff never rate a case


def awaiting(rt: Runtime, person: Person, *, command: bool = False) -> Awaiting:
    """What `person` owes. A command is never a case input or a report step: for one only
    the comment window matters (a command ends it)."""
    if command and not may_comment(person):
        return NOTHING
    now = rt.clock.now()
    with rt.db.read() as s:
        comment = ratings.comment_window_in(s, person.user_id, now) if may_comment(person) else None
        if command:
            return Awaiting(comment, None, NOTHING.draft)
        case_input = casework.pending_in(s, person.user_id)
        draft_row = draft_rows.get(s, person.user_id)
    return Awaiting(comment, case_input, drafts.loaded(rt, person.user_id, draft_row))
