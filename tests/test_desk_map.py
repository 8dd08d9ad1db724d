"""/map: the scope's grid polygons with the period's cases coloured by state, legend and
grid codes, rendered offline; Chinese labels have every glyph."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlmodel import select

from bot.clock import ManualClock
from bot.desk import maps, periods, render, scopes
from bot.people.roles import Person
from bot.runtime import Runtime
from storage.models import Case, Grid
from tests import desk_example as ex
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser
from tests.flows import onboard


def place_cases(rt: Runtime) -> None:
    with rt.db.session() as s:
        grids = {g.id: g for g in s.exec(select(Grid))}
        for i, case in enumerate(s.exec(select(Case))):
            g = grids[case.grid_id]
            case.latitude = (g.centre_lat or 30.24) + 0.0002 * (i % 3)
            case.longitude = (g.centre_lon or 120.17) + 0.0002 * (i % 2)
            s.add(case)


async def test_map_command(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock, api: FakeBotAPI) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    dispatcher = tg.user(9502, "调度员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    turn = await dispatcher.send("/map 2026-09")
    assert "清波街道" in turn.texts[0] and "6 件" in turn.texts[0]
    png = api.calls_to("sendPhoto")[-1].files["photo"]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1080, 1080)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20
    assert "无权查看 330102002" in (await dispatcher.send("/map 330102002")).texts[0]
    assert "看不懂时段" in (await dispatcher.send("/map 2026-99")).texts[0]


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_map_labels_and_points(rt: Runtime, clock: ManualClock, lang: str) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    admin = Person(user_id=1, telegram_id=1, name="a", language="zh_CN", is_admin=True, memberships=())
    with rt.db.read() as s:
        street = scopes.resolve(rt, s, admin, "330102001")
        grid = scopes.resolve(rt, s, admin, "33010200100101")
    period = periods.parse("2026-09", ex.NOW, ex.SH)
    image = maps.draw(rt, street, period, lang, "清波街道 · 2026-09")
    assert image.cases == 6 and image.grids == 8
    assert "33010200100101" in image.labels
    assert any(label.startswith("超期" if lang == "zh_CN" else "Overdue") for label in image.labels), image.labels
    assert not render.missing_glyphs("".join(image.labels))
    one = maps.draw(rt, grid, period, lang, "grid")
    assert one.grids == 1 and one.cases == 5
    empty = maps.draw(rt, street, periods.parse("2025-01", ex.NOW, ex.SH), lang, "empty")
    assert empty.cases == 0 and Image.open(io.BytesIO(empty.png)).size == (1080, 1080)
