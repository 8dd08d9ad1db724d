"""Revocation end to end: /revoke by an admin, `griddesk revoke`, a member leaving or removed
from a bound team group, an organisation re-import that drops a scope; what a revoked
person sees when they press an old button."""

from __future__ import annotations

from sqlmodel import select

from bot.i18n import t
from bot.people import revoke
from bot.runtime import Runtime
from griddesk.simulator.model import member_json
from griddesk.startup import load_org
from storage.db import Database
from storage.models import AuditEvent, Case, Grid, Membership, User, pk
from tests.fakebot import FakeChat, FakeTelegram, FakeUser
from tests.test_casework import claim, file_and_dispatch, state, world  # noqa: F401  (fixture)

World = dict


def active_roles(db: Database, telegram_id: int) -> set[tuple[str, str]]:
    with db.session() as s:
        user = s.exec(select(User).where(User.telegram_id == telegram_id)).one()
        rows = s.exec(select(Membership).where(Membership.user_id == user.id)).all()
        return {(m.role, m.scope_code) for m in rows if m.active}


async def leave(tg: FakeTelegram, group: FakeChat, user: FakeUser, status: str = "left") -> None:
    tg.api.set_member_status(group.id, user.id, status)
    await tg.deliver(
        {
            "chat_member": {
                "chat": group.json(),
                "from": user.json,
                "date": tg.api.timestamp(),
                "old_chat_member": member_json(user.json, "member"),
                "new_chat_member": member_json(user.json, status),
            }
        }
    )


async def test_admin_revokes_a_staff_member_who_then_cannot_work_the_case(
    world: World,  # noqa: F811
    admin: FakeUser,
    db: Database,
) -> None:
    case = await file_and_dispatch(world, db)
    staff: FakeUser = world["staff"]
    await claim(world, staff, case)
    assert state(db, pk(case)).owner_user_id is not None
    team_card = world["team"].last_message()
    # Not an admin: refused.
    turn = await staff.send("/revoke 9311 QB-ZF")
    assert "管理员" in turn.texts[0]
    assert ("staff", "QB-ZF") in active_roles(db, 9311)
    turn = await admin.send("/revoke 9310 QB-ZF")
    assert "已撤销" in turn.texts[0] and "执法丙" in turn.texts[0] and "QB-ZF" in turn.texts[0]
    assert active_roles(db, 9310) == set()
    assert "已被撤销" in staff.last_text()  # told through the outbox
    # The case they had claimed went back to the team's queue...
    fresh = state(db, pk(case))
    assert fresh.state == "dispatched" and fresh.owner_user_id is None
    # ...and their old buttons get the polite refusal, changing nothing.
    answer = await staff.press_data(world["team"].id, team_card.message_id, f"v1:claim:{case.id}")
    assert answer is not None and answer.params["text"] == t("zh_CN", "button.stale")
    assert state(db, pk(case)).state == "dispatched"
    turn = await staff.send("/tasks")
    assert "QB-" not in "".join(turn.texts)
    # The other member still can.
    await claim(world, world["other"], case)
    assert state(db, pk(case)).state == "claimed"
    with db.session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "membership.revoked")).all()
    assert [e.data["reason"] for e in events] == ["revoke"]


async def test_revoke_a_role_in_a_scope_and_a_new_invite_gives_it_back(
    world: World,  # noqa: F811
    admin: FakeUser,
    db: Database,
) -> None:
    turn = await admin.send("/revoke staff QB-ZF")
    assert "执法丙" in turn.texts[0] and "执法丁" in turn.texts[0]
    assert active_roles(db, 9310) == active_roles(db, 9311) == set()
    turn = await admin.send("/revoke staff QB-ZF")
    assert "没有这样的角色" in turn.texts[0]
    turn = await admin.send("/revoke @nobody")
    assert "没有名为" in turn.texts[0]
    turn = await admin.send("/revoke")
    assert "用法" in turn.texts[0]
    from tests.flows import onboard

    await onboard(admin, world["staff"], "staff", "QB-ZF")
    assert active_roles(db, 9310) == {("staff", "QB-ZF")}


async def test_member_removed_from_the_team_group_loses_that_teams_rights(
    world: World,  # noqa: F811
    tg: FakeTelegram,
    db: Database,
) -> None:
    case = await file_and_dispatch(world, db)
    team: FakeChat = world["team"]
    staff: FakeUser = world["staff"]
    await leave(tg, team, world["worker"])  # the worker holds nothing in the team: nothing happens
    assert active_roles(db, 9301) == {("worker", "33010200100101")}
    await leave(tg, team, staff, "kicked")
    assert active_roles(db, 9310) == set()
    answer = await staff.press_data(team.id, team.last_message().message_id, f"v1:claim:{case.id}")
    assert answer is not None and answer.params["text"] == t("zh_CN", "button.stale")
    assert state(db, pk(case)).state == "dispatched"
    with db.session() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "membership.revoked")).all()
    assert [e.data["reason"] for e in events] == ["left_group"]


async def test_org_reimport_without_the_scope_ends_the_role(
    world: World,  # noqa: F811
    rt: Runtime,
    db: Database,
) -> None:
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == "33010200100101")).one()
        grid.active = False
        s.add(grid)
    with db.session() as s:
        ended = revoke.expire_removed_scopes(rt, s)
    assert [(r.role, r.scope_code) for r in ended] == [("worker", "33010200100101")]
    assert active_roles(db, 9301) == set()
    load_org(rt)  # the sample file has it again: the import reactivates the grid, not the role
    assert active_roles(db, 9301) == set()


def test_cli_revoke(rt: Runtime, db: Database, monkeypatch, capsys) -> None:
    from griddesk import cli
    from tests.test_claim import join_directly

    join_directly(rt, 9400, "执法戊", "staff", "QB-ZF")
    monkeypatch.setattr(cli, "load_settings", lambda: rt.settings)
    monkeypatch.setattr(cli, "prepare", lambda settings, import_org_file=True: rt)
    assert cli.main(["revoke", "9400"]) == 0
    assert "revoked: 执法戊 (9400) · staff · QB-ZF" in capsys.readouterr().out
    assert cli.main(["revoke", "9400"]) == 2
    assert "holds no such role" in capsys.readouterr().err
    with db.session() as s:
        assert s.exec(select(Case)).all() == []
