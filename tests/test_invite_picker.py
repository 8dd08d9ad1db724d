"""/invite with no arguments: pickers as buttons (role → street → community → grid, or team,
command room's street, department, district), ending with the link /invite ROLE SCOPE makes."""

from __future__ import annotations

import re

from sqlmodel import select

from bot.people import invite_picker
from storage.db import Database
from storage.models import Community, Membership, Street, User, pk
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import LINK

GRID = "33010200100101"


def without_link(text: str) -> str:
    return re.sub(r"join-[A-Za-z0-9_-]+", "join-…", text)


def memberships(db: Database, telegram_id: int) -> list[tuple[str, str]]:
    with db.session() as s:
        user = s.exec(select(User).where(User.telegram_id == telegram_id)).one()
        return [(m.role, m.scope_code) for m in s.exec(select(Membership).where(Membership.user_id == user.id))]


async def pick(admin: FakeUser, *labels: str) -> str:
    """/invite, then press each label on the picker message; the message's final text."""
    turn = await admin.send("/invite")
    message = turn.replies[0]
    for label in labels:
        current = admin.chat.message(message["message_id"])
        assert any(label in row for row in buttons(current)), (label, buttons(current))
        await admin.press(current, label)
    return admin.chat.message(message["message_id"]).body


async def test_a_worker_picked_role_street_community_grid_joins(
    tg: FakeTelegram, admin: FakeUser, db: Database
) -> None:
    turn = await admin.send("/invite")
    first = turn.replies[0]
    assert "请选择角色" in first["text"]
    assert [label for row in buttons(first) for label in row] == [
        "网格员",
        "平台工作人员",
        "指挥中心调度员",
        "部门工作人员",
        "督导人员",
    ]
    await admin.press(first, "网格员")
    msg = admin.chat.message(first["message_id"])
    assert "邀请<b>网格员</b>" in msg.text_html or "邀请网格员" in msg.body
    assert ["清波街道"] in buttons(msg) or any("清波街道" in row for row in buttons(msg))
    await admin.press(msg, "清波街道")
    msg = admin.chat.message(first["message_id"])
    assert "（清波街道）" in msg.body and "请选择社区" in msg.body
    assert any("劳动路社区" in row for row in buttons(msg))
    await admin.press(msg, "劳动路社区")
    msg = admin.chat.message(first["message_id"])
    assert "请选择网格" in msg.body
    assert buttons(msg)[0] == ["劳动路社区第1网格", "劳动路社区第2网格"]
    await admin.press(msg, "劳动路社区第1网格")
    final = admin.chat.message(first["message_id"])
    assert buttons(final) == []
    # exactly the words /invite ROLE SCOPE answers with
    typed = (await admin.send(f"/invite worker {GRID}")).texts[-1]
    assert without_link(final.body) == without_link(typed)
    found = LINK.search(final.body)
    assert found
    worker = tg.user(6101, "刘网格", language_code="zh-hans")
    turn = await worker.send(f"/start {found.group(1)}")
    assert "您已登记为网格员" in turn.texts[0]
    assert memberships(db, 6101) == [("worker", GRID)]


async def test_each_role_ends_at_its_scope(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    text = await pick(admin, "平台工作人员", "清波街道", "清波街道综合执法平台")
    assert "QB-ZF" in text and "start=join-" in text
    text = await pick(admin, "指挥中心调度员", "清波街道")
    assert "（清波街道，330102001）" in text and "start=join-" in text
    text = await pick(admin, "部门工作人员", "区住建局")
    assert "区住建局" in text and "start=join-" in text
    text = await pick(admin, "督导人员", "上城区")
    assert "上城区" in text and "start=join-" in text
    staff = tg.user(6102, "王执法", language_code="zh-hans")
    text = await pick(admin, "平台工作人员", "清波街道", "清波街道综合执法平台")
    found = LINK.search(text)
    assert found
    await staff.send(f"/start {found.group(1)}")
    assert memberships(db, 6102) == [("staff", "QB-ZF")]


async def test_english_admin_sees_english_names(tg: FakeTelegram, admin: FakeUser) -> None:
    await admin.send("/lang en")
    turn = await admin.send("/invite")
    first = turn.replies[0]
    assert "Choose a role" in first["text"]
    await admin.press(first, "grid worker")
    msg = admin.chat.message(first["message_id"])
    assert any("Qingbo Subdistrict" in row for row in buttons(msg))
    await admin.press(msg, "Qingbo Subdistrict")
    await admin.press(admin.chat.message(first["message_id"]), "Laodong Road Community")
    msg = admin.chat.message(first["message_id"])
    assert "choose the grid" in msg.body
    await admin.press(msg, "Laodong Road Grid 1")
    assert "start=join-" in admin.chat.message(first["message_id"]).body


async def test_stale_forged_and_foreign_presses_are_refused(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    turn = await admin.send("/invite")
    first = turn.replies[0]
    with db.session() as s:
        street = s.exec(select(Street)).first()
        other = s.exec(select(Community).where(Community.street_id != street.id)).first()  # type: ignore[union-attr]
        assert street is not None and other is not None
    # a community that does not exist, a grid level for a team role, a role that is not offered
    for data in ("v1:invite:worker:community:999999", "v1:invite:staff:grid:1", "v1:invite:admin:role:0"):
        answer = await admin.press_data(admin.id, first["message_id"], data)
        assert answer is not None and "按钮已失效" in answer.params["text"], data
    # a department may not be picked as a team
    answer = await admin.press_data(admin.id, first["message_id"], f"v1:invite:staff:street:{street.id}")
    assert answer is not None and "text" not in answer.params  # a real step: no refusal
    # someone who is not an administrator gets the admin-only answer, and no invite
    stranger = tg.user(6103, "路人", language_code="zh-hans")
    await stranger.send("/start")
    answer = await stranger.press_data(stranger.id, first["message_id"], f"v1:invite:worker:community:{other.id}")
    assert answer is not None and "只有系统管理员" in answer.params["text"]
    # /invite without arguments from a non-admin: refused before any picker
    turn = await stranger.send("/invite")
    assert "只有系统管理员" in turn.texts[0] and buttons(turn.replies[0]) == []


async def test_back_goes_to_the_step_before(admin: FakeUser) -> None:
    turn = await admin.send("/invite")
    first = turn.replies[0]
    assert not any("↩️ 返回" in row for row in buttons(first))  # nothing before the roles
    await admin.press(first, "网格员")
    await admin.press(admin.chat.message(first["message_id"]), "清波街道")
    await admin.press(admin.chat.message(first["message_id"]), "劳动路社区")
    msg = admin.chat.message(first["message_id"])
    assert "请选择网格" in msg.body and buttons(msg)[-1] == ["↩️ 返回"]
    await admin.press(msg, "↩️ 返回")  # grids → the street's communities
    msg = admin.chat.message(first["message_id"])
    assert "（清波街道）" in msg.body and "请选择社区" in msg.body and any("清波门社区" in row for row in buttons(msg))
    await admin.press(msg, "↩️ 返回")  # communities → streets
    msg = admin.chat.message(first["message_id"])
    assert "请选择街道" in msg.body and any("湖滨街道" in row for row in buttons(msg))
    await admin.press(msg, "↩️ 返回")  # streets → roles
    msg = admin.chat.message(first["message_id"])
    assert "请选择角色" in msg.body and any("平台工作人员" in row for row in buttons(msg))
    # and on from there, to another role's end
    await admin.press(msg, "平台工作人员")
    await admin.press(admin.chat.message(first["message_id"]), "湖滨街道")
    await admin.press(admin.chat.message(first["message_id"]), "湖滨街道综合执法平台")
    assert "HB-ZF" in admin.chat.message(first["message_id"]).body


async def test_a_street_with_many_communities_comes_in_pages(admin: FakeUser, db: Database) -> None:
    with db.session() as s:
        street = s.exec(select(Street).where(Street.code == "330102001")).one()
        for n in range(1, 13):
            s.add(Community(code=f"33010200199{n:03d}", street_id=pk(street), name_zh=f"新社区{n}", name_en=f"New {n}"))
    turn = await admin.send("/invite")
    first = turn.replies[0]
    await admin.press(first, "网格员")
    await admin.press(admin.chat.message(first["message_id"]), "清波街道")
    msg = admin.chat.message(first["message_id"])
    names = [label for row in buttons(msg)[:-2] for label in row]
    assert len(names) == invite_picker.PAGE_SIZE and names[0] == "劳动路社区"
    assert buttons(msg)[-2:] == [["下一页 ➡️"], ["↩️ 返回"]]
    await admin.press(msg, "下一页 ➡️")
    msg = admin.chat.message(first["message_id"])
    second = [label for row in buttons(msg)[:-2] for label in row]
    assert second[0] == "新社区6" and not set(second) & set(names)
    assert buttons(msg)[-2:] == [["⬅️ 上一页"], ["↩️ 返回"]]  # 3 + 12 communities: two pages
    assert "请选择社区" in msg.body
    await admin.press(msg, "新社区12")  # a community with no grids yet: said so, and the page stays
    assert admin.chat.message(first["message_id"]).body == msg.body
    await admin.press(msg, "⬅️ 上一页")
    assert [label for row in buttons(admin.chat.message(first["message_id"]))[:-2] for label in row] == names
    # a page past the end (the list shrank) shows the last page; a page of a final pick is refused
    with db.session() as s:
        street_id = s.exec(select(Street).where(Street.code == "330102001")).one().id
    answer = await admin.press_data(admin.id, first["message_id"], f"v1:invite_page:worker:street:{street_id}:9")
    assert answer is not None and "text" not in answer.params
    assert "新社区12" in [label for row in buttons(admin.chat.message(first["message_id"])) for label in row]
    answer = await admin.press_data(admin.id, first["message_id"], f"v1:invite_page:dispatcher:street:{street_id}:1")
    assert answer is not None and "按钮已失效" in answer.params["text"]
