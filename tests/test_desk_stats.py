"""/stats: the chart and the figures, buttons switching period and breakdown, who may see
what, bad input; the chart renders Chinese from the shipped font (no missing glyphs)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from bot.cases.cards import Names
from bot.clock import ManualClock
from bot.desk import periods, render, scopes
from bot.desk.figures import compute
from bot.runtime import Runtime
from handlers import desk as desk_handlers
from tests import desk_example as ex
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser, buttons
from tests.flows import onboard
from tests.test_claim import join_directly

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def desk(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock) -> FakeUser:
    ex.build(rt.db)
    clock.set(ex.NOW)
    dispatcher = tg.user(9702, "调度员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    return dispatcher


def last_photo(api: FakeBotAPI) -> bytes:
    call = api.calls_to("sendPhoto")[-1]
    return call.files["photo"]


def assert_chart(png: bytes) -> None:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (1080, 1350)
    colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 20  # not blank


async def test_stats_sends_a_chart_and_the_figures(desk: FakeUser, api: FakeBotAPI) -> None:
    turn = await desk.send("/stats 2026-09")
    caption = turn.texts[0]
    assert "清波街道 · 2026-09-01..2026-09-30" in caption
    for line in ("受理 5", "派遣 4", "响应率 50%", "办结率 40%", "按时办结率 50%", "满意率 50%", "参评率 100%",
                 "当前超期 2", "超期办结 1", "返工 1", "一次验收通过 1", "平均办理工时(小时) 4.5",
                 "90%办理工时(小时) 5.5", "吹哨 1", "平均报到工时(小时) 4.5"):  # fmt: skip
        assert line in caption.splitlines(), (line, caption)
    assert_chart(last_photo(api))
    message = desk.last_message()
    rows = buttons(message)
    assert rows[0] == ["近7天", "近30天", "本月", "上月"]
    assert rows[1] == ["• 按平台", "按网格", "按人员", "按类别"]
    # By grid: the same month, a new chart.
    await desk.press(message, "按网格")
    assert "受理 5" in desk.last_text()
    assert buttons(desk.last_message())[1][1] == "• 按网格"
    # Another period: September's cases are out of the last 7 days.
    await desk.press(desk.last_message(), "近7天")
    assert "受理 0" in desk.last_text() and "响应率 —" in desk.last_text()


async def test_stats_in_english(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock) -> None:
    ex.build(rt.db)
    clock.set(ex.NOW)
    boss = tg.user(9703, "Boss", language_code="en")
    await onboard(admin, boss, "supervisor", "330102")
    caption = (await boss.send("/stats 2026-09-01..2026-09-30")).texts[0]
    assert "Shangcheng District" in caption and "Response rate 50%" in caption.splitlines()
    assert "On-time closure rate 50%" in caption.splitlines()


async def test_stats_rights_and_bad_input(desk: FakeUser, tg: FakeTelegram, admin: FakeUser, rt: Runtime) -> None:
    assert "无权查看330102002" in (await desk.send("/stats 330102002")).texts[0]
    assert "找不到编码NOPE" in (await desk.send("/stats NOPE")).texts[0]
    assert "看不懂时段 2026-11-15..2026-11-01" in (await desk.send("/stats 2026-11-15..2026-11-01")).texts[0]
    assert "看不懂时段 2026-13" in (await desk.send("/stats 2026-13")).texts[0]
    assert "用法" in (await desk.send("/stats 330102001 QB-ZF")).texts[0]
    join_directly(rt, 9710, "执法", "staff", "QB-ZF")
    staff = tg.user(9710, "执法", language_code="zh-hans")
    assert "无权查看330102001" in (await staff.send("/stats 330102001")).texts[0]
    caption = (await staff.send("/stats 2026-09")).texts[0]
    assert "综合执法" in caption and "受理 3" in caption.splitlines()
    resident = tg.user(9711, "居民", language_code="zh-hans")
    assert "没有权限" in (await resident.send("/stats")).texts[0]


def test_chart_has_every_glyph(rt: Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    ex.build(rt.db)
    clock.set(ex.NOW)
    admin = scopes.Scope("district", "330102", Names("上城区", "Shangcheng"), tz="Asia/Shanghai")
    period = periods.parse("2026-09", ex.NOW, ex.SH)
    for lang in ("zh_CN", "en"):
        for by in (None, "team", "grid", "person", "category", "street", "department"):
            report = compute(rt, admin, period, by)
            with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
                warnings.simplefilter("always")
                chart = render.chart(lang, report, "上城区 · 2026-09 网格化管理")
            assert not [w for w in caught if "missing from font" in str(w.message)]
            assert "missing from font" not in caplog.text
            assert not render.missing_glyphs("".join(chart.labels)), chart.labels
            assert_chart(chart.png)


def test_font_covers_the_catalogs_and_the_organisation() -> None:
    texts = [p.read_text(encoding="utf-8") for p in ROOT.glob("locales/*/LC_MESSAGES/*.po")]
    texts.append((ROOT / "bot" / "data" / "sample_org.yaml").read_text(encoding="utf-8"))
    cjk = {c for text in texts for c in text if "\u4e00" <= c <= "\u9fff"}
    assert not render.missing_glyphs("".join(cjk))
    assert render.FONT_PATH.stat().st_size < 4_000_000
    assert (render.FONT_PATH.parent / "OFL.txt").read_text().startswith("Noto Sans CJK")


async def test_the_chart_is_drawn_in_a_lean_worker_and_a_chart_sent_before_goes_by_its_file_id(
    desk: FakeUser, api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """matplotlib's 50–100 ms of CPU run in a process of their own, not under the GIL beside
    everyone's updates; the same figures asked again (a period button pressed back) are not
    drawn or uploaded again."""
    drawn: list[object] = []
    real_run = desk_handlers.PICTURES.run

    async def counted(fn: Callable[..., bytes], *args: object) -> bytes:
        drawn.append(args[0])
        return await real_run(fn, *args)

    monkeypatch.setattr(desk_handlers.PICTURES, "run", counted)
    await desk.send("/stats 2026-09")
    first = api.calls_to("sendPhoto")[-1]
    assert_chart(first.files["photo"])
    assert len(drawn) == 1
    worker = desk_handlers.PICTURES.executor()
    assert list(worker._processes) and os.getpid() not in worker._processes
    heavy = "sorted(n for n in __import__('sys').modules if n.split('.')[0] in {'telegram', 'sqlalchemy', 'sqlmodel', 'handlers', 'storage', 'pytest'})"
    assert await asyncio.wrap_future(worker.submit(eval, heavy)) == []

    file_id = desk.last_message().photo[-1].file_id
    await desk.send("/stats 2026-09")
    again = api.calls_to("sendPhoto")[-1]
    assert again.files == {} and again.params["photo"] == file_id
    assert "受理 5" in desk.last_text() and len(drawn) == 1
    await desk.press(desk.last_message(), "按网格")  # other bars: drawn
    assert "photo" in api.calls_to("sendPhoto")[-1].files and len(drawn) == 2

    # Telegram no longer knows the file: drawn and uploaded again, the person sees no error.
    api.files.pop(file_id)
    await desk.send("/stats 2026-09")
    assert [bool(call.files) for call in api.calls_to("sendPhoto")[-2:]] == [False, True]
    assert desk.last_message().photo and "受理 5" in desk.last_text() and len(drawn) == 3


async def test_a_chart_worker_that_dies_leaves_the_figures_as_text(
    desk: FakeUser, api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.kill(await asyncio.wrap_future(desk_handlers.PICTURES.executor().submit(os.getpid)), signal.SIGKILL)
    photos = len(api.calls_to("sendPhoto"))
    for _ in range(50):  # until the pool notices
        turn = await desk.send("/stats 2026-08")
        if not turn.replies[-1].get("photo"):
            break
        await asyncio.sleep(0.05)
    assert "受理" in desk.last_text() and len(api.calls_to("sendPhoto")) == photos
    await desk.send("/stats 2026-09")  # a fresh worker draws the next one
    assert desk.last_message().photo and "受理 5" in desk.last_text()
