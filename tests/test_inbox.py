"""Inbox before acknowledgement: an update is stored (by update_id, once) before Telegram
hears we have it, processed from the database, marked when handled; a restart processes
what a crashed run stored but never finished, and nothing twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import select
from telegram import Update
from telegram.ext import Application

from bot.runtime import Runtime
from griddesk import inbox
from griddesk.app import build_application
from handlers.outbox_sender import drain, stop_sender
from storage import inbox as rows
from storage.db import Database
from storage.models import InboxUpdate, User
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser


def help_update(update_id: int, user: FakeUser) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 10_000 + update_id,
            "date": 1_790_000_000,
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.json,
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }


def stored(db: Database) -> dict[int, bool]:
    with db.session() as s:
        return {r.update_id: r.processed_at is not None for r in s.exec(select(InboxUpdate))}


async def test_accept_stores_then_processes_once(app: Application, tg: FakeTelegram, db: Database) -> None:
    user = tg.user(8101, "居民", language_code="zh-hans")
    before = len(user.texts())
    await inbox.accept(app, help_update(501, user))
    await inbox.accept(app, help_update(501, user))  # Telegram sends it again (webhook retry)
    await inbox.wait_idle(app)
    await drain(app)
    assert len(user.texts()) == before + 1 and "/report" in user.texts()[-1]
    assert stored(db) == {501: True}
    await inbox.accept(app, help_update(501, user))  # even after it was handled
    await inbox.wait_idle(app)
    assert len(user.texts()) == before + 1


async def test_a_repeat_that_read_the_row_before_its_mark_is_not_run_again(
    app: Application, tg: FakeTelegram, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried webhook's store can read the update's row just before the first run's mark
    commits (writers take turns), and call it unfinished; by the time it is scheduled the
    first run is over. It must not run a second time."""
    user = tg.user(8103, "居民", language_code="zh-hans")
    await inbox.accept(app, help_update(502, user))
    await inbox.wait_idle(app)
    await drain(app)
    assert len(user.texts()) == 1 and stored(db) == {502: True}

    monkeypatch.setattr(inbox, "_store", lambda _rt, _batch: [502])  # the store's stale read
    await inbox.accept(app, help_update(502, user))
    await inbox.wait_idle(app)
    await drain(app)
    assert len(user.texts()) == 1


async def test_update_stored_by_a_crashed_run_is_processed_at_start(rt: Runtime, api: FakeBotAPI, db: Database) -> None:
    first = build_application(rt, request=api)
    tg = FakeTelegram(first, api)
    user = tg.user(8102, "居民", language_code="zh-hans")
    # A run stored these and died: one handled (marked), one not.
    with db.session() as s:
        rows.store(s, [(601, help_update(601, user)), (602, help_update(602, user))], now=rt.clock.now())
        rows.mark_processed(s, [601], now=rt.clock.now())
    second = build_application(rt, request=api)
    await second.initialize()
    await second.post_init(second)  # type: ignore[misc]
    try:
        await inbox.wait_idle(second)
        await drain(second)
    finally:
        await stop_sender(second)
        await second.shutdown()
    assert len(api.texts(user.id)) == 1  # 602 only: 601 was done before the crash
    assert stored(db) == {601: True, 602: True}


async def test_the_update_queue_stores_what_ptb_puts(app: Application, tg: FakeTelegram, db: Database) -> None:
    user = tg.user(8103, "居民", language_code="zh-hans")
    update = Update.de_json(help_update(701, user), app.bot)
    await app.update_queue.put(update)  # what PTB's updater and webhook server do
    assert 701 in stored(db)  # stored before put returned: only then is it confirmed
    await inbox.wait_idle(app)
    await drain(app)
    assert stored(db) == {701: True} and "/report" in (user.last_text() or "")


def test_store_is_idempotent(db: Database, rt: Runtime) -> None:
    with db.session() as s:
        assert rows.store(s, [(1, {"update_id": 1}), (2, {"update_id": 2})], now=rt.clock.now()) == [1, 2]
    with db.session() as s:
        # 2 is stored but not yet processed: still owed (a process schedules it only once)
        assert rows.store(s, [(2, {"update_id": 2}), (3, {"update_id": 3})], now=rt.clock.now()) == [2, 3]
    with db.session() as s:
        assert [r.update_id for r in rows.pending(s)] == [1, 2, 3]
    with db.session() as s:
        rows.mark_processed(s, [1], now=rt.clock.now())
    with db.session() as s:  # stored but never processed (a run stopped in between): again
        assert rows.store(s, [(1, {"update_id": 1}), (2, {"update_id": 2})], now=rt.clock.now()) == [2]


def command_update(update_id: int, user: FakeUser, text: str) -> dict[str, Any]:
    payload = help_update(update_id, user)
    command = text.split()[0]
    payload["message"] |= {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}]}
    return payload


async def test_an_update_that_changes_something_is_marked_in_its_own_transaction(
    app: Application, tg: FakeTelegram, db: Database, monkeypatch: Any
) -> None:
    """The mark goes with the change: a crash after the change can never run the update again
    (and say its reply twice); an update that changes nothing is marked once its handlers
    are done (a batch of marks; here held back, as by a crash before it was written)."""
    user = tg.user(8104, "居民", language_code="zh-hans")
    await user.send("/help")  # the person is known from now on

    async def held_back(_app: Application) -> None:
        return None

    monkeypatch.setattr(inbox, "_write_marks", held_back)
    await inbox.accept(app, command_update(801, user, "/lang en"))
    await inbox.accept(app, command_update(802, user, "/help"))
    names = {"inbox-update-801", "inbox-update-802"}
    await asyncio.gather(*(task for task in asyncio.all_tasks() if task.get_name() in names))
    assert stored(db) == {801: True, 802: False}  # the change and its mark, together
    with db.session() as s:
        assert s.exec(select(User).where(User.telegram_id == user.id)).one().language == "en"
