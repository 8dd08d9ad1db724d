"""Group chats the bot is in, and the unit each one serves."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from storage.db import Loads
from storage.models import Chat

# Built once: a chat by its Telegram id (a group new to this process; a send's language) and
# a unit's group (every card queued).
_CHAT = Loads(Chat, col(Chat.telegram_id) == bindparam("telegram_id"))
_CHAT_OF_UNIT = Loads(Chat, col(Chat.unit_id) == bindparam("unit_id"), col(Chat.status) == "active")


def get_chat(session: Session, telegram_id: int) -> Chat | None:
    return _CHAT.first(session, {"telegram_id": telegram_id})


def upsert_chat(session: Session, *, telegram_id: int, title: str, type_: str, now: datetime) -> Chat:
    chat = get_chat(session, telegram_id)
    if chat is None:
        chat = Chat(telegram_id=telegram_id, title=title, type=type_, updated_at=now)
        session.add(chat)
        session.flush()
    elif (chat.title, chat.type) != (title, type_):
        chat.title, chat.type, chat.updated_at = title, type_, now
        session.add(chat)
    return chat


def chat_for_unit(session: Session, unit_id: int) -> Chat | None:
    return _CHAT_OF_UNIT.first(session, {"unit_id": unit_id})


def chats_bound_to(session: Session, unit_id: int) -> list[Chat]:
    return list(session.exec(select(Chat).where(Chat.unit_id == unit_id)))


def save(session: Session, chat: Chat) -> None:
    session.add(chat)
    session.flush()


_CHATS_BY_TELEGRAM_IDS = Loads(Chat, col(Chat.telegram_id).in_(bindparam("ids", expanding=True)))


def chats_by_telegram_ids(session: Session, telegram_ids: Collection[int]) -> list[Chat]:
    """Every send of the outbox asks (its chats): built once."""
    if not telegram_ids:
        return []
    return _CHATS_BY_TELEGRAM_IDS.all(session, {"ids": sorted(telegram_ids)})
