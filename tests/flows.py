"""Shared steps for tests that play whole conversations: onboarding, binding, reporting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlmodel import select

from storage.db import Database
from storage.models import Grid
from tests.fakebot import FakeChat, FakeTelegram, FakeUser

LINK = re.compile(r"start=(join-[A-Za-z0-9_-]+)")


async def onboard(admin: FakeUser, user: FakeUser, role: str, scope: str) -> None:
    turn = await admin.send(f"/invite {role} {scope}")
    found = LINK.search(turn.texts[-1])
    assert found, turn.texts
    await user.send(f"/start {found.group(1)}")


async def bound_group(tg: FakeTelegram, admin: FakeUser, chat_id: int, code: str) -> FakeChat:
    group = tg.group(chat_id, code, admins=[admin], bot_status="administrator")
    turn = await admin.send(f"/bind {code}", chat=group)
    assert code in turn.texts[0], turn.texts
    return group


def grid_centre(db: Database, code: str) -> tuple[float, float]:
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == code)).one()
        assert grid.centre_lat is not None and grid.centre_lon is not None
        return grid.centre_lat, grid.centre_lon


CASE_CODE = re.compile(r"[A-Z]{2,}-\d{6}-\d{4}")


def receipt(user: FakeUser) -> str:
    """The reporter's acknowledgement as they see it: the summary they pressed Submit on, with
    the case code written below it (the newest of the bot's messages that carries a code)."""
    for message in reversed(user.messages()):
        if CASE_CODE.search(message.body):
            return message.body
    raise AssertionError(f"no case code in the chat of {user}")


@contextmanager
def statements_of(db: Database) -> Iterator[list[str]]:
    """The SQL the database runs inside the block, in order."""
    seen: list[str] = []

    def statement(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", statement)
