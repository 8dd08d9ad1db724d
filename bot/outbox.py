"""Draining the outbox: claim due rows, and record how each delivery ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot import notify
from bot.i18n import pick_language
from bot.runtime import Runtime
from storage import cases, chats, people
from storage import outbox as rows

LEASE = timedelta(minutes=2)  # a row held longer than this by a dead sender is taken again
MAX_ATTEMPTS = 8


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


def claim(rt: Runtime, limit: int = 50) -> list[Job]:
    with rt.db.session() as s:
        claimed = rows.claim_due(s, now=rt.clock.now(), lease=LEASE, limit=limit)
        return [Job(r.id, r.chat_id, r.kind, r.case_id, r.purpose, dict(r.payload), r.attempts) for r in claimed]  # type: ignore[arg-type]


def existing_card(rt: Runtime, job: Job) -> CardRef | None:
    if job.case_id is None or job.purpose is None:
        return None
    with rt.db.read() as s:
        card = cases.find_card(s, case_id=job.case_id, chat_id=job.chat_id, purpose=job.purpose)
        return CardRef(card.message_id, card.is_photo) if card else None


def delivered(rt: Runtime, job: Job, *, message_id: int | None, is_photo: bool = False) -> None:
    now = rt.clock.now()
    with rt.db.session() as s:
        rows.mark_sent(s, row_id=job.id, now=now, message_id=message_id)
        if job.kind == "case_card" and job.case_id is not None and message_id is not None and job.purpose:
            cases.save_card(
                s, case_id=job.case_id, chat_id=job.chat_id, message_id=message_id, purpose=job.purpose, now=now
            )
            card = cases.find_card(s, case_id=job.case_id, chat_id=job.chat_id, purpose=job.purpose)
            if card is not None and card.is_photo != is_photo:
                card.is_photo = is_photo
                s.add(card)


def failed_for_now(rt: Runtime, job: Job, *, error: str, retry_after: float | None = None) -> bool:
    """Schedule another try with backoff; False once the row has had its last chance."""
    with rt.db.session() as s:
        if job.attempts >= MAX_ATTEMPTS:
            rows.mark_failed(s, row_id=job.id, error=error)
            return False
        delay = retry_after if retry_after is not None else min(5 * 2 ** (job.attempts - 1), 600)
        rows.retry_later(s, row_id=job.id, at=rt.clock.now() + timedelta(seconds=delay), error=error)
        return True


def undeliverable(rt: Runtime, job: Job, *, error: str, chat_gone: bool) -> None:
    """The chat blocked us or removed us: stop trying, and remember it."""
    with rt.db.session() as s:
        rows.mark_failed(s, row_id=job.id, error=error)
        if chat_gone:
            chat = chats.get_chat(s, job.chat_id)
            if chat is not None and chat.status == "active":
                chat.status = "blocked" if job.chat_id > 0 else "left"
                chats.save(s, chat)
                notify.chat_lost(s, chat=chat, now=rt.clock.now())
            if job.chat_id > 0:
                people.set_can_message(s, telegram_id=job.chat_id, can_message=False)


def chat_language(rt: Runtime, chat_id: int) -> str:
    """A group's configured language, a person's chosen one, else the default."""
    with rt.db.read() as s:
        if chat_id > 0:
            user = people.get_user_by_telegram_id(s, chat_id)
            if user is not None:
                return pick_language(user.language, user.telegram_language, rt.settings.default_language)
            return rt.settings.default_language
        chat = chats.get_chat(s, chat_id)
        return (chat.language if chat else None) or rt.settings.default_language
