"""Invites and joining, through the real Application and the fake Bot API."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.clock import ManualClock
from griddesk.cli import main
from storage.db import Database
from storage.models import AuditEvent, Invite, Membership, User
from tests.fakebot import FakeTelegram, FakeUser

GRID = "33010200100101"
LINK = re.compile(r"https://t\.me/GridDeskTestBot\?start=(join-[A-Za-z0-9_-]+)")


async def make_invite(admin: FakeUser, role: str, scope: str) -> str:
    turn = await admin.send(f"/invite {role} {scope}")
    found = LINK.search(turn.texts[-1])
    assert found, turn.texts
    return found.group(1)


def memberships(db: Database, telegram_id: int) -> list[tuple[str, str]]:
    with db.session() as s:
        user = s.exec(select(User).where(User.telegram_id == telegram_id)).first()
        if user is None:
            return []
        rows = s.exec(select(Membership).where(Membership.user_id == user.id))
        return [(m.role, m.scope_code) for m in rows]


async def test_admin_invites_and_worker_joins(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    payload = await make_invite(admin, "worker", GRID)
    assert "网格员" in admin.last_text()  # the admin speaks Chinese
    worker = tg.user(1001, "李四", language_code="zh-hans")
    turn = await worker.send(f"/start {payload}")
    assert "欢迎，李四" in turn.texts[0] and "网格员" in turn.texts[0]
    assert memberships(db, 1001) == [("worker", GRID)]
    with db.session() as s:
        invite = s.exec(select(Invite)).one()
        assert invite.used_at is not None and invite.used_by_user_id is not None
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))]
    assert "invite.created" in actions and "user.joined" in actions

    who = await worker.send("/whoami")
    assert "网格员" in who.texts[0] and GRID in who.texts[0]


async def test_english_user_gets_english(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    payload = await make_invite(admin, "staff", "QB-ZF")
    staff = tg.user(1002, "Wang", language_code="en-US")
    turn = await staff.send(f"/start {payload}")
    assert turn.texts[0].startswith("Welcome, Wang! You are now registered as team staff")
    assert memberships(db, 1002) == [("staff", "QB-ZF")]


async def test_used_invite(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    payload = await make_invite(admin, "worker", GRID)
    await tg.user(1001, "A", language_code="en").send(f"/start {payload}")
    other = tg.user(1003, "B", language_code="en")
    turn = await other.send(f"/start {payload}")
    assert "already been used" in turn.texts[0]
    assert memberships(db, 1003) == []


async def test_expired_invite(tg: FakeTelegram, admin: FakeUser, db: Database, clock: ManualClock) -> None:
    payload = await make_invite(admin, "worker", GRID)
    clock.advance(timedelta(hours=72, seconds=1))
    turn = await tg.user(1004, "C", language_code="en").send(f"/start {payload}")
    assert "expired" in turn.texts[0]
    assert memberships(db, 1004) == []


@pytest.mark.parametrize("payload", ["join-doesnotexist", "join-", "join-" + "x" * 60])
async def test_unknown_invite_code(tg: FakeTelegram, payload: str, db: Database) -> None:
    turn = await tg.user(1005, "D", language_code="en").send(f"/start {payload}")
    assert "not valid" in turn.texts[0]
    assert memberships(db, 1005) == []


async def test_race_for_one_invite(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    payload = await make_invite(admin, "dispatcher", "QB-CMD")
    users = [tg.user(2000 + i, f"U{i}", language_code="en") for i in range(8)]
    await asyncio.gather(*(u.send(f"/start {payload}") for u in users))
    winners = [u for u in users if memberships(db, u.id)]
    assert len(winners) == 1
    # a dispatcher invite for the command room binds the person to the street
    assert memberships(db, winners[0].id) == [("dispatcher", "330102001")]


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("/invite worker 99999999999999", 'no "99999999999999" in the organisation'),
        ("/invite worker QB-ZF", "does not fit that role"),
        ("/invite staff 33010200100101", "does not fit that role"),
        ("/invite wizard QB-ZF", "Unknown role"),
        ("/invite worker", "Usage: /invite ROLE SCOPE"),
    ],
)
async def test_bad_invites(tg: FakeTelegram, db: Database, command: str, says: str) -> None:
    from tests.conftest import ADMIN_ID

    admin_en = tg.user(ADMIN_ID, "Boss", language_code="en")
    turn = await admin_en.send(command)
    assert says in turn.texts[0]
    with db.session() as s:
        assert s.exec(select(Invite)).first() is None


async def test_only_admins_invite(tg: FakeTelegram, db: Database) -> None:
    resident = tg.user(1006, "E", language_code="en")
    turn = await resident.send(f"/invite worker {GRID}")
    assert turn.texts == ["Only an administrator can do that."]
    with db.session() as s:
        assert s.exec(select(Invite)).first() is None


async def test_invite_in_a_group_is_refused(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    group = tg.group(-1001, "清波综合执法", admins=[admin])
    turn = await admin.send(f"/invite worker {GRID}", chat=group)
    assert "私聊" in turn.texts[0]
    with db.session() as s:
        assert s.exec(select(Invite)).first() is None


def test_cli_invite(db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", db.url)
    assert main(["invite", "supervisor", "330102", "--bot-username", "GridDeskTestBot"]) == 0
    out = capsys.readouterr().out
    assert LINK.search(out), out
    with db.session() as s:
        invite = s.exec(select(Invite)).one()
    assert (invite.role, invite.scope_code, invite.scope_kind) == ("supervisor", "330102", "district")

    assert main(["invite", "worker", "nowhere", "--bot-username", "GridDeskTestBot"]) == 2
    assert "nowhere" in capsys.readouterr().err
