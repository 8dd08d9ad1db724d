"""/export and `griddesk export`: the assessment spreadsheet read back with openpyxl
(cases, timeline, figures; headers in the reader's language, local times), CSV, an empty
period's valid empty file, bad input."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from bot.clock import ManualClock
from bot.desk import export, periods, scopes
from bot.runtime import Runtime
from tests import desk_example as ex
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser
from tests.flows import onboard


@pytest.fixture
async def room(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock) -> FakeUser:
    ex.build(rt.db)
    clock.set(ex.NOW)
    dispatcher = tg.user(9602, "调度员", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102001")
    return dispatcher


def last_document(api: FakeBotAPI) -> tuple[bytes, str]:
    call = api.calls_to("sendDocument")[-1]
    assert call.ok
    return call.files["document"], call.file_names["document"]


async def test_export_reads_back(room: FakeUser, api: FakeBotAPI) -> None:
    turn = await room.send("/export 2026-09")
    assert "清波街道" in turn.texts[0] and "6 件" in turn.texts[0]
    data, name = last_document(api)
    assert name == "griddesk-330102001-20260901-20260930.xlsx"
    book = load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["案件", "过程", "指标"]
    cases = list(book["案件"].iter_rows(values_only=True))
    header = cases[0]
    assert header[:4] == ("编号", "来源", "类别", "平台类型") and "按时办结" in header and "回访结果" in header
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in cases[1:]}
    assert len(rows) == 6  # A B C D E F (the duplicate is listed; G is October's)
    a = rows["QB-2609A-0001"]
    assert a["类别"] == "违章停车" and a["街道"] == "清波街道" and a["网格"] == "劳动路社区第1网格"
    assert a["受理时间"] == datetime(2026, 9, 24, 16, 0)  # the district's time, not UTC
    assert a["按时办结"] == "是" and a["返工"] == "否" and a["评价等级"] == 4
    b = rows["QB-2609B-0002"]
    assert b["按时办结"] == "否" and b["返工"] == "是" and b["评价等级"] == 2
    assert rows["QB-2609C-0003"]["按时办结"] in ("", None)
    timeline = list(book["过程"].iter_rows(values_only=True))
    assert timeline[0][:3] == ("编号", "时间", "动作") and len(timeline) == 1 + 14
    assert ("QB-2609B-0002", datetime(2026, 10, 8, 10, 30), "case.not_fixed") in [r[:3] for r in timeline]
    figures = dict(book["指标"].iter_rows(values_only=True))
    assert figures["响应率"] == "50%" and figures["受理"] == "5" and figures["范围"] == "清波街道"


async def test_export_in_english_and_an_empty_period(tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock, api: FakeBotAPI) -> None:  # fmt: skip
    ex.build(rt.db)
    clock.set(ex.NOW)
    boss = tg.user(9603, "Boss", language_code="en")
    await onboard(admin, boss, "supervisor", "330102")
    await boss.send("/export 2026-09-01..2026-09-30")
    book = load_workbook(io.BytesIO(last_document(api)[0]), read_only=True)
    assert book.sheetnames == ["Cases", "Timeline", "Figures"]
    assert next(book["Cases"].iter_rows(values_only=True))[:3] == ("Code", "Source", "Category")
    turn = await boss.send("/export 2025-01")
    assert "0 cases" in turn.texts[0] and "empty" in turn.texts[0]
    book = load_workbook(io.BytesIO(last_document(api)[0]), read_only=True)
    assert len(list(book["Cases"].iter_rows(values_only=True))) == 1  # the header only: a valid empty file
    assert "Unknown" not in turn.texts[0]


async def test_export_refusals(room: FakeUser, tg: FakeTelegram) -> None:
    assert "无权查看330102002" in (await room.send("/export 330102002 2026-09")).texts[0]
    assert "看不懂时段" in (await room.send("/export 2026-09-30..2026-09-01")).texts[0]
    assert "找不到编码" in (await room.send("/export XX-NOPE")).texts[0]
    resident = tg.user(9604, "居民", language_code="zh-hans")
    assert "没有权限" in (await resident.send("/export")).texts[0]


def test_the_command_line_writes_xlsx_and_csv(rt: Runtime, clock: ManualClock, tmp_path: Path) -> None:
    ex.build(rt.db)
    clock.set(ex.NOW)
    out = tmp_path / "qb.xlsx"
    assert export.export_file(rt, "330102001", "2026-09-01", "2026-09-30", "xlsx", out, "zh_CN") == 6
    assert len(list(load_workbook(out, read_only=True)["案件"].iter_rows())) == 7
    out = tmp_path / "qb.csv"
    assert export.export_file(rt, "330102", "2026-09-01", "2026-09-30", "csv", out, "en") == 6
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert rows[0][0] == "Code" and len(rows) == 7
    assert any(r[0] == "QB-2609A-0001" and "2026-09-24 16:00:00" in r for r in rows)
    empty = tmp_path / "empty.csv"
    assert export.export_file(rt, "330102001", "2025-01-01", "2025-01-31", "csv", empty, "en") == 0
    assert len(list(csv.reader(io.StringIO(empty.read_text(encoding="utf-8-sig"))))) == 1
    with pytest.raises(scopes.UnknownDeskScope):
        export.export_file(rt, "NOPE", "2026-09-01", "2026-09-30", "csv", empty, "en")
    with pytest.raises(periods.BadPeriod):
        export.export_file(rt, "330102001", "2026-09-30", "2026-09-01", "csv", empty, "en")
    with pytest.raises(periods.BadPeriod):
        export.export_file(rt, "330102001", "2026-09-31", "2026-10-01", "csv", empty, "en")
