"""Notifications as outbox rows, written in the same transaction as the change behind them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.org import index
from bot.runtime import Runtime
from storage import audit, cases, chats, orgs, outbox, worklists
from storage.cases import OPEN_STATES
from storage.models import Case, Chat, Unit

COMMAND, TEAM, DEPARTMENT, REPORTER = "command", "team", "department", "reporter"
VERIFY = "verify"  # the command room's verification card


def card_to_unit(
    rt: Runtime, session: Session, *, case: Case, unit_id: int | None, purpose: str, now: datetime
) -> bool:
    """Queue the case card for a unit's group; False (and an audit note) if it has none."""
    chat_id = index.unit_group(rt, session, unit_id)
    return card_to_chat(session, case=case, chat_id=chat_id, unit_id=unit_id, purpose=purpose, now=now)


def card_to_chat(
    session: Session, *, case: Case, chat_id: int | None, unit_id: int | None, purpose: str, now: datetime
) -> bool:
    """:func:`card_to_unit` with the unit's group known already (None: it has none)."""
    if chat_id is None:
        audit.record(
            session,
            action="notify.no_chat",
            subject_type="case",
            subject_id=case.id,
            case_id=case.id,
            data={"unit_id": unit_id, "purpose": purpose},
            at=now,
        )
        return False
    outbox.enqueue(session, chat_id=chat_id, kind="case_card", case_id=case.id, purpose=purpose, now=now)
    return True


def refresh_cards(
    session: Session, *, case_id: int, now: datetime, skip: frozenset[tuple[int, str]] = frozenset()
) -> None:
    """Re-render every card of the case already posted (edited in place when sent), but
    those in `skip` ((chat id, purpose) pairs just queued some other way)."""
    for card in cases.cards_of(session, case_id):
        if (card.chat_id, card.purpose) not in skip:
            outbox.enqueue(
                session, chat_id=card.chat_id, kind="case_card", case_id=case_id, purpose=card.purpose, now=now
            )


def command_room(rt: Runtime, case: Case) -> Unit | None:
    """The command room of the case's street (the organisation in memory)."""
    return index.org(rt).command_room(case.street_id)


RoomChat = tuple[int | None, int | None]  # the command room's unit id, and its group's if one is bound


def command_room_chat(rt: Runtime, session: Session, case: Case) -> RoomChat:
    room = command_room(rt, case)
    if room is None or room.id is None:
        return None, None
    return room.id, index.unit_group(rt, session, room.id)


def card_to_command_room(
    rt: Runtime, session: Session, *, case: Case, now: datetime, room: RoomChat | None = None
) -> bool:
    """The case card for the command room's group; `room` when the caller read it already."""
    unit_id, chat_id = room if room is not None else command_room_chat(rt, session, case)
    return card_to_chat(session, case=case, chat_id=chat_id, unit_id=unit_id, purpose=COMMAND, now=now)


@dataclass(frozen=True)
class Receipt:
    """A message of ours the line is written into (edited, not sent anew): the text above
    stays, the line goes below it, the message's buttons go."""

    message_id: int
    above_html: str


def text_to_user(
    session: Session,
    *,
    telegram_id: int,
    key: str,
    now: datetime,
    case_id: int | None = None,
    menu: str | None = None,
    receipt: Receipt | None = None,
    **params: Any,
) -> None:
    """A localized line for a person (or group), rendered in their language when sent.

    A pair of params `x_zh` / `x_en` becomes `x` in the reader's language. `menu="main"`
    sends the main menu keyboard with it; `receipt` writes it into that message instead."""
    payload: dict[str, Any] = {"key": key, "params": params}
    if menu is not None:
        payload["menu"] = menu
    if receipt is not None:
        payload["receipt"] = {"message_id": receipt.message_id, "above": receipt.above_html}
    outbox.enqueue(session, chat_id=telegram_id, kind="user_text", case_id=case_id, payload=payload, now=now)


def chat_lost(session: Session, *, chat: Chat, now: datetime) -> None:
    """A unit's group stopped taking our messages (bot removed, group deleted): tell the
    command room at once, with how many open cases that unit holds."""
    unit = orgs.unit(session, chat.unit_id) if chat.unit_id else None
    if unit is None:
        return
    open_cases = worklists.open_count_for_unit(session, unit.id, OPEN_STATES)  # type: ignore[arg-type]
    if unit.street_id is not None:
        rooms = [orgs.command_room_of(session, unit.street_id)]
    else:  # a district department: every street's command room should know
        rooms = [orgs.command_room_of(session, st.id) for st in orgs.active_streets(session)]  # type: ignore[arg-type]
    audit.record(
        session,
        action="chat.lost",
        subject_type="chat",
        subject_id=chat.id,
        data={"unit": unit.code, "open_cases": open_cases},
        at=now,
    )
    for room in rooms:
        room_chat = chats.chat_for_unit(session, room.id) if room else None  # type: ignore[arg-type]
        if room_chat is None or room_chat.telegram_id == chat.telegram_id:
            continue
        text_to_user(
            session,
            telegram_id=room_chat.telegram_id,
            key="chat.lost",
            now=now,
            unit_zh=unit.name_zh,
            unit_en=unit.name_en,
            title=chat.title,
            open=open_cases,
        )


ALERT_EVERY = timedelta(hours=1)


def alert_admins_once(rt: Runtime, key: str, **params: Any) -> bool:
    """One alert to every admin about an operational trouble (a full disk), at most once an
    hour per process whatever the number of times it happens; True if one was queued."""
    sent: dict[str, datetime] = rt.cache.setdefault("alerts", {})
    now = rt.clock.now()
    last = sent.get(key)
    if last is not None and now - last < ALERT_EVERY:
        return False
    sent[key] = now
    with rt.db.session() as s:
        for admin in sorted(rt.settings.admin_ids):
            text_to_user(s, telegram_id=admin, key=key, now=now, **params)
    return True
