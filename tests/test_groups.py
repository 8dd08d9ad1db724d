"""Binding group chats, the bot joining and leaving, and group languages."""

from __future__ import annotations

from sqlmodel import col, select

from storage.db import Database
from storage.models import AuditEvent, Chat, Unit
from tests.fakebot import FakeTelegram, FakeUser


def bound_unit(db: Database, chat_id: int) -> str | None:
    with db.session() as s:
        chat = s.exec(select(Chat).where(Chat.telegram_id == chat_id)).first()
        if chat is None or chat.unit_id is None:
            return None
        unit = s.get(Unit, chat.unit_id)
        return unit.code if unit else None


async def test_admin_binds_a_team_group(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    group = tg.group(-100101, "清波综合执法平台", admins=[admin])
    turn = await admin.send("/bind QB-ZF", chat=group)
    assert "本群已绑定为平台" in turn.texts[0] and "QB-ZF" in turn.texts[0]
    assert bound_unit(db, -100101) == "QB-ZF"
    with db.session() as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "chat.bound")).first() is not None


async def test_rebinding_moves_the_unit(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    old = tg.group(-100101, "old", admins=[admin])
    new = tg.group(-100102, "new", admins=[admin])
    await admin.send("/bind QB-CMD", chat=old)
    turn = await admin.send("/bind qb-cmd", chat=new)  # codes are not case-sensitive
    assert "原来绑定的群组已解除绑定" in turn.texts[0]
    assert bound_unit(db, -100101) is None
    assert bound_unit(db, -100102) == "QB-CMD"


async def test_non_admin_cannot_bind(tg: FakeTelegram, db: Database) -> None:
    someone = tg.user(3001, "Zhao", language_code="en")
    group = tg.group(-100103, "team", members=[someone])
    turn = await someone.send("/bind QB-ZF", chat=group)
    assert turn.texts == ["只有系统管理员可以进行此操作。"]  # a group speaks its own language
    assert bound_unit(db, -100103) is None


async def test_bind_unknown_code_and_usage(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    group = tg.group(-100104, "team", admins=[admin])
    turn = await admin.send("/bind XX-NOPE", chat=group)
    assert "XX-NOPE" in turn.texts[0] and "没有编码" in turn.texts[0]
    turn = await admin.send("/bind 33010200100101", chat=group)  # a grid cannot have a group
    assert "没有编码" in turn.texts[0]
    turn = await admin.send("/bind", chat=group)
    assert "用法" in turn.texts[0]
    assert bound_unit(db, -100104) is None


async def test_bind_in_private_chat(admin: FakeUser, db: Database) -> None:
    turn = await admin.send("/bind QB-ZF")
    assert "请在要绑定的群组中发送" in turn.texts[0]


async def test_bind_where_the_bot_cannot_post(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    group = tg.group(-100105, "muted", admins=[admin], bot_status="restricted")
    turn = await admin.send("/bind QB-ZF", chat=group)
    private = [m for m in turn.replies if m["chat"]["id"] == admin.id]
    assert private and "无法在群组" in private[0]["text"]
    assert bound_unit(db, -100105) is None


async def test_bot_added_and_removed(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    group = tg.group(-100106, "new team", admins=[admin], bot_status="left")
    turn = await tg.bot_added_to(group, by=admin)
    assert any("/bind" in text for text in turn.texts)
    await admin.send("/bind HB-SC", chat=group)
    await tg.bot_removed_from(group, by=admin)
    with db.session() as s:
        chat = s.exec(select(Chat).where(Chat.telegram_id == -100106)).one()
        assert chat.status == "left"
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))]
    assert actions.count("chat.left") == 1 and "chat.joined" in actions


async def test_group_language(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    member = tg.user(3002, "Qian", language_code="zh-hans")
    group = tg.group(-100107, "team", admins=[admin], members=[member])
    await admin.send("/bind QB-ZF", chat=group)
    turn = await admin.send("/lang en", chat=group)
    assert turn.texts == ["Language set to English."]
    # The group now speaks English to everyone, whatever their own language.
    turn = await member.send("/help", chat=group)
    assert "What you can do" in turn.texts[0]
    # ...and a member who is not an administrator cannot change it.
    turn = await member.send("/lang zh", chat=group)
    assert turn.texts == ["Only an administrator can do that."]  # in the group's English
