"""/map: the scope's grid polygons with the period's cases coloured by state, legend and
grid codes, rendered offline; Chinese labels have every glyph."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlmodel import select

from bot.clock import ManualClock
from bot.desk import maps, periods, render, scopes, tiles
from bot.people.roles import Person
from bot.runtime import Runtime
from storage.models import Case, Grid
from tests import desk_example as ex
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons
from tests.flows import onboard
from tests.images import rgb_colours


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
    assert "无权查看330102002" in (await dispatcher.send("/map 330102002")).texts[0]
    assert "看不懂时段" in (await dispatcher.send("/map 2026-99")).texts[0]


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_map_labels_and_points(rt: Runtime, clock: ManualClock, lang: str) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    admin = Person(user_id=1, telegram_id=1, name="a", language="zh_CN", is_admin=True, memberships=())
    street = scopes.resolve(rt, admin, "330102001")
    grid = scopes.resolve(rt, admin, "33010200100101")
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


async def test_map_coloured_by_category_with_a_button(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock, api: FakeBotAPI
) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    dispatcher = tg.user(9503, "调度员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    await dispatcher.send("/map 2026-09")
    message = dispatcher.last_message()
    assert buttons(message) == [["🎨 按类别着色"]]
    before = len(api.calls_to("sendPhoto"))
    await dispatcher.press(message, "🎨 按类别着色")
    assert len(api.calls_to("sendPhoto")) == before + 1  # a new map
    recoloured = dispatcher.last_message()
    assert "清波街道" in (recoloured.caption or "") and "6 件" in (recoloured.caption or "")
    assert buttons(recoloured) == [["🎨 按状态着色"]]
    png = api.calls_to("sendPhoto")[-1].files["photo"]
    assert Image.open(io.BytesIO(png)).size == (1080, 1080)
    # Back to the first colouring: the same map as the first, sent by its file_id (not drawn
    # or uploaded again).
    await dispatcher.press(recoloured, "🎨 按状态着色")
    back = api.calls_to("sendPhoto")[-1]
    assert back.files == {} and back.params["photo"] == message.photo[-1].file_id
    assert "6 件" in (dispatcher.last_message().caption or "")


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_map_by_category_labels(rt: Runtime, clock: ManualClock, lang: str) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    admin = Person(user_id=1, telegram_id=1, name="a", language="zh_CN", is_admin=True, memberships=())
    street = scopes.resolve(rt, admin, "330102001")
    period = periods.parse("2026-09", ex.NOW, ex.SH)
    image = maps.draw(rt, street, period, lang, "清波街道 · 2026-09", maps.BY_CATEGORY)
    assert image.cases == 6
    legend = [label for label in image.labels if label.endswith(")")]
    if lang == "zh_CN":
        assert legend == ["违章停车 (5)", "电动自行车交通违法 (1)"], legend
    else:
        assert legend == ["Illegal parking (5)", "E-bike traffic violations (1)"], legend
    assert not render.missing_glyphs("".join(image.labels))


def test_base_tiles_only_when_configured(rt: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    ex.build(rt.db)
    place_cases(rt)
    clock.set(ex.NOW)
    admin = Person(user_id=1, telegram_id=1, name="a", language="zh_CN", is_admin=True, memberships=())
    street = scopes.resolve(rt, admin, "330102001")
    period = periods.parse("2026-09", ex.NOW, ex.SH)
    asked: list[str] = []

    def tile(url: str) -> bytes:  # no network in tests: a magenta tile
        asked.append(url)
        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (255, 0, 255)).save(buf, format="PNG")
        return buf.getvalue()

    monkeypatch.setattr(tiles, "fetch", tile)

    def magenta(png: bytes) -> int:
        colours = rgb_colours(Image.open(io.BytesIO(png)).convert("RGB"))
        return sum(n for n, (r, g, b) in colours if r > 200 and g < 80 and b > 200)

    plain = maps.draw(rt, street, period, "zh_CN", "plain")
    assert asked == [] and magenta(plain.png) == 0  # off by default
    rt.settings.map_tile_url = "https://tiles.invalid/{z}/{x}/{y}.png"
    based = maps.draw(rt, street, period, "zh_CN", "tiles")
    assert asked and all(u.startswith("https://tiles.invalid/") and u.endswith(".png") for u in asked)
    assert len(asked) <= tiles.MAX_TILES and magenta(based.png) > 10_000
    monkeypatch.setattr(tiles, "fetch", lambda url: (_ for _ in ()).throw(OSError("down")))
    broken = maps.draw(rt, street, period, "zh_CN", "tiles down")  # the tile server down: the plain map
    assert magenta(broken.png) == 0 and broken.cases == 6
