"""Binding group chats to the units they serve, and following the bot in and out of them."""

from __future__ import annotations

from dataclasses import dataclass

from bot import notify
from bot.errors import AdminOnly, NotAGroup, UnknownUnit
from bot.org import index
from bot.people.roles import Person
from bot.runtime import Runtime
from storage import audit, chats, orgs
from storage.models import Chat, UnitKind

BINDABLE_KINDS = (UnitKind.TEAM, UnitKind.COMMAND_ROOM, UnitKind.DEPARTMENT)
GROUP_TYPES = ("group", "supergroup")


@dataclass(frozen=True)
class Bound:
    unit_code: str
    unit_kind: str
    unit_name_zh: str
    unit_name_en: str
    replaced_chat_id: int | None  # the group that served this unit before, if any


@dataclass(frozen=True)
class ChatInfo:
    telegram_id: int
    unit_id: int | None
    unit_code: str | None
    unit_kind: str | None
    unit_name_zh: str | None
    unit_name_en: str | None
    language: str | None
    status: str


def bind_chat(
    rt: Runtime, *, person: Person, chat_telegram_id: int, title: str, chat_type: str, unit_code: str
) -> Bound:
    if not person.is_admin:
        raise AdminOnly()
    if chat_type not in GROUP_TYPES:
        raise NotAGroup()
    now = rt.clock.now()
    with rt.db.session() as s:
        unit = orgs.unit_by_code(s, unit_code.strip().upper())
        if unit is None or unit.kind not in BINDABLE_KINDS:
            raise UnknownUnit(code=unit_code)
        chat = chats.upsert_chat(s, telegram_id=chat_telegram_id, title=title, type_=chat_type, now=now)
        replaced: int | None = None
        changed = [chat_telegram_id]
        # One group per unit: binding a new group moves the unit's traffic there.
        for other in chats.chats_bound_to(s, unit.id):  # type: ignore[arg-type]
            if other.telegram_id != chat_telegram_id:
                replaced = other.telegram_id
                changed.append(other.telegram_id)
                other.unit_id = None
                other.updated_at = now
                chats.save(s, other)
        previous_unit = chat.unit_id
        chat.unit_id = unit.id
        chat.status = "active"
        chat.bound_by = person.telegram_id
        chat.bound_at = now
        chat.updated_at = now
        chats.save(s, chat)
        audit.record(
            s,
            action="chat.bound",
            subject_type="chat",
            subject_id=chat.id,
            actor_user_id=person.user_id,
            data={"unit": unit.code, "previous_unit_id": previous_unit, "replaced_chat": replaced},
            at=now,
        )
        bound = Bound(unit.code, unit.kind, unit.name_zh, unit.name_en, replaced)
    forget_chats(rt, *changed)
    return bound


def chat_info(rt: Runtime, chat_telegram_id: int) -> ChatInfo | None:
    """The group and the unit it serves. Every update in a group asks (its language, whose
    group it is): kept in memory, forgotten when this process changes the group (bind,
    /lang, the bot added or removed, a send refused for good) or imports the organisation."""
    known: dict[int, ChatInfo | None] = rt.cache.setdefault(index.CHATS, {})
    if chat_telegram_id not in known:
        known[chat_telegram_id] = _read_chat_info(rt, chat_telegram_id)
    return known[chat_telegram_id]


def forget_chats(rt: Runtime, *telegram_ids: int) -> None:
    """These groups changed (call after the change is committed: a read in between would
    keep the old row)."""
    known: dict[int, ChatInfo | None] = rt.cache.get(index.CHATS, {})
    for telegram_id in telegram_ids:
        known.pop(telegram_id, None)
    rt.cache.pop(index.UNIT_GROUPS, None)  # which unit a group serves, or whether it still does


def _read_chat_info(rt: Runtime, chat_telegram_id: int) -> ChatInfo | None:
    with rt.db.read() as s:
        chat = chats.get_chat(s, chat_telegram_id)
        if chat is None:
            return None
        unit = index.org(rt).unit(chat.unit_id)
        return ChatInfo(
            telegram_id=chat.telegram_id,
            unit_id=chat.unit_id,
            unit_code=unit.code if unit else None,
            unit_kind=unit.kind if unit else None,
            unit_name_zh=unit.name_zh if unit else None,
            unit_name_en=unit.name_en if unit else None,
            language=chat.language,
            status=chat.status,
        )


def set_chat_language(
    rt: Runtime, *, person: Person, chat_telegram_id: int, title: str, chat_type: str, language: str
) -> None:
    if not person.is_admin:
        raise AdminOnly()
    now = rt.clock.now()
    with rt.db.session() as s:
        chat = chats.upsert_chat(s, telegram_id=chat_telegram_id, title=title, type_=chat_type, now=now)
        chat.language = language
        chat.updated_at = now
        chats.save(s, chat)
        audit.record(
            s,
            action="chat.language",
            subject_type="chat",
            subject_id=chat.id,
            actor_user_id=person.user_id,
            data={"language": language},
            at=now,
        )
    forget_chats(rt, chat_telegram_id)


def bot_membership_changed(
    rt: Runtime, *, chat_telegram_id: int, title: str, chat_type: str, present: bool, actor_telegram_id: int | None
) -> Chat:
    """The bot was added to or removed from a group. A removed group keeps its binding
    on record (status "left") so the command room can be told which unit lost its chat."""
    now = rt.clock.now()
    with rt.db.session() as s:
        is_new = chats.get_chat(s, chat_telegram_id) is None
        chat = chats.upsert_chat(s, telegram_id=chat_telegram_id, title=title, type_=chat_type, now=now)
        status = "active" if present else "left"
        if chat.status != status or is_new:
            chat.status = status
            chat.updated_at = now
            chats.save(s, chat)
            audit.record(
                s,
                action="chat.joined" if present else "chat.left",
                subject_type="chat",
                subject_id=chat.id,
                data={"by": actor_telegram_id, "unit_id": chat.unit_id},
                at=now,
            )
            if not present:
                notify.chat_lost(s, chat=chat, now=now)
    forget_chats(rt, chat_telegram_id)
    return chat
