"""/tasks and /case: each person sees their work, and only what they may see."""

from __future__ import annotations

from bot.runtime import Runtime
from storage.db import Database
from tests.fakebot import FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg
from tests.test_claim import HB_GRID, file_garbage_case, join_directly


async def test_tasks_and_case_timeline(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> None:
    worker = tg.user(8001, "周网格", language_code="zh-hans")
    await onboard(admin, worker, "worker", HB_GRID)
    team = await bound_group(tg, admin, -100800, "HB-ZF")
    case = await file_garbage_case(worker, db)
    join_directly(rt, 8101, "吴执法", "staff", "HB-ZF")
    staff = tg.user(8101, "吴执法", language_code="zh-hans")

    texts = (await staff.send("/tasks")).texts
    assert "我认领的案件" in texts[0] and "暂无" in texts[0]
    assert "本平台待认领" in texts[1] and case.code in texts[1]

    await staff.press(team.last_message(), "🙋 认领", chat=team)
    texts = (await staff.send("/tasks")).texts
    assert case.code in texts[0] and case.code not in texts[1]

    detail = (await staff.send(f"/case {case.code}")).texts[0]
    assert "办理记录" in detail
    for label in ("上报登记", "派遣", "认领 · 吴执法"):
        assert label in detail, detail
    # the reporter sees their own case; a stranger learns nothing, not even that it exists
    assert "办理记录" in (await worker.send(f"/case {case.code}")).texts[0]
    stranger = tg.user(8201, "路人", language_code="zh-hans")
    assert "无权查看" in (await stranger.send(f"/case {case.code}")).texts[0]
    assert "无权查看" in (await stranger.send("/case QB-000000-0000")).texts[0]
    assert "您没有权限" in (await stranger.send("/tasks")).texts[0]


async def test_tasks_pages(tg: FakeTelegram, admin: FakeUser, rt: Runtime, db: Database) -> None:
    worker = tg.user(8002, "郑网格", language_code="en")
    await onboard(admin, worker, "worker", HB_GRID)
    await bound_group(tg, admin, -100801, "HB-ZF")
    join_directly(rt, 8102, "Staff", "staff", "HB-ZF")
    staff = tg.user(8102, "Staff", language_code="en")
    lat, lon = grid_centre(db, HB_GRID)
    for i in range(10):
        await worker.send_photo(make_jpeg(), caption=f"garbage pile {i}")
        await worker.send_location(lat + 0.0008 * (i % 3), lon + 0.0008 * (i // 3))
        await worker.press(worker.last_message(), "Exposed garbage")
        summary = worker.last_message()
        submit = next(label for row in buttons(summary) for label in row if label.startswith("✅"))
        await worker.press(summary, submit)
    turn = await staff.send("/tasks")
    team_list = turn.replies[1]
    assert buttons(team_list) == [["Next ➡️"]]
    await staff.press(team_list, "Next ➡️")
    page2 = staff.tg.message(staff.id, team_list["message_id"])
    assert "Previous" in buttons(page2)[0][0]
    assert page2.body.count("\n") == 2  # title + the two cases beyond the first eight
