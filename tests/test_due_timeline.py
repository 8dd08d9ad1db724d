"""/case's timeline shows the due times that were set (and the one each replaced)."""

from __future__ import annotations

import re

from sqlmodel import select

from storage.db import Database
from storage.models import Case
from tests.fakebot import FakeTelegram, FakeUser
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg

GRID = "33010200100101"


async def test_the_timeline_shows_the_due_time_set(tg: FakeTelegram, admin: FakeUser, db: Database) -> None:
    worker = tg.user(6301, "钱网格", language_code="zh-hans")
    dispatcher = tg.user(6302, "陈调度", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    room = await bound_group(tg, admin, -100631, "QB-CMD")
    await bound_group(tg, admin, -100632, "QB-ZF")
    lat, lon = grid_centre(db, GRID)
    await worker.send_photo(make_jpeg(), caption="小区违建")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "违法建设")
    await worker.press(worker.last_message(), "✅ 确认上报")
    await dispatcher.press(room.last_message(), "派遣至清波街道综合执法平台", chat=room)
    with db.session() as s:
        case = s.exec(select(Case)).one()
        assert case.due_at is not None
    text = (await dispatcher.send(f"/case {case.code}")).texts[0]
    line = next(x for x in text.splitlines() if "设定时限" in x)
    assert re.search(r"设定时限：\d\d-\d\d \d\d:\d\d", line), line
    await dispatcher.send("/lang en")
    text = (await dispatcher.send(f"/case {case.code}")).texts[0]
    assert re.search(
        r": \d\d-\d\d \d\d:\d\d", next(x for x in text.splitlines() if "due" in x.lower() and "⏳" not in x)
    )
