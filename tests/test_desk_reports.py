"""Weekly and monthly reports: figures, 红黑榜 of teams and grids, the longest-overdue cases,
to the command room and the supervisors, once each; the monthly one with the spreadsheet."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import select
from telegram.ext import Application

from bot.clock import ManualClock
from bot.desk import reports
from bot.org.org_file import DEFAULT_ORG_FILE, OrgFileError, load_org_file
from bot.runtime import Runtime
from handlers import desk_jobs
from handlers.outbox_sender import drain
from storage.models import District, Outbox
from tests import desk_example as ex
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser
from tests.flows import bound_group, onboard

MONDAY = datetime(2026, 10, 12, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


async def test_weekly_and_monthly_reports(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock, app: Application, api: FakeBotAPI
) -> None:
    ex.build(rt.db)
    room = await bound_group(tg, admin, -100881, "QB-CMD")
    boss = tg.user(9881, "区督查", language_code="zh-hans")
    await onboard(admin, boss, "supervisor", "330102")
    street_boss = tg.user(9882, "Street boss", language_code="en")
    await onboard(admin, street_boss, "supervisor", "330102001")
    with rt.db.session() as s:
        district = s.exec(select(District)).one()
        district.settings = {**district.settings, "weekly_report": "mon 08:30", "monthly_report_day": 12}
        s.add(district)
    clock.set(datetime(2026, 10, 12, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    assert reports.send_due_reports(rt).reports == 0  # not yet 08:30
    clock.set(MONDAY)
    context = SimpleNamespace(application=app, bot=app.bot)
    await desk_jobs.periodic_reports(context)  # type: ignore[arg-type]
    await drain(app)
    texts = room.texts()
    weekly = next(x for x in texts if "周报" in x)
    monthly = next(x for x in texts if "月报" in x)
    assert "2026-10-05..2026-10-11" in weekly and "受理 0" in weekly
    lines = monthly.splitlines()
    assert "2026-09-01..2026-09-30" in monthly and "响应率 50%" in lines and "按时办结率 50%" in lines
    assert "🟥 红榜： 清波街道综合执法平台 50%" in lines
    assert "🟥 红榜： 劳动路社区第1网格 100%" in lines and "⬛ 黑榜： 劳动路社区第2网格 0%" in lines
    overdue = lines[lines.index("超期最久的案件：") + 1 :]
    assert overdue[0].startswith("QB-2609C-0003 · 超期 13 天") and overdue[1].startswith("QB-2609F-0006")
    document = api.calls_to("sendDocument")
    assert {c.params["chat_id"] for c in document} >= {room.id, boss.id}
    book = load_workbook(io.BytesIO(document[0].files["document"]), read_only=True)
    assert len(list(book[book.sheetnames[0]].iter_rows())) == 7  # the header and September's six cases
    assert any("上城区" in x and "月报" in x for x in boss.texts())  # the district supervisor: the district
    assert any("Monthly report" in x and "Qingbo" in x for x in street_boss.texts())  # in their language
    # Once each.
    again = reports.send_due_reports(rt)
    assert again.reports == 0 and again.messages == 0


def test_the_organisation_file_sets_when_reports_go_out(tmp_path: Path) -> None:
    text = DEFAULT_ORG_FILE.read_text(encoding="utf-8")
    marker = "    follow_up_days: 3"
    assert marker in text
    good = text.replace(marker, '    weekly_report: "fri 17:00"\n    monthly_report_day: 2\n' + marker, 1)
    path = tmp_path / "org.yaml"
    path.write_text(good, encoding="utf-8")
    values = load_org_file(path).district.settings.values()
    assert values["weekly_report"] == "fri 17:00" and values["monthly_report_day"] == 2
    path.write_text(good.replace('"fri 17:00"', '"friday 5pm"'), encoding="utf-8")
    with pytest.raises(OrgFileError):
        load_org_file(path)


async def test_monthly_spreadsheet_goes_through_the_outbox_and_is_retried(
    tg: FakeTelegram, admin: FakeUser, rt: Runtime, clock: ManualClock, app: Application, api: FakeBotAPI
) -> None:
    ex.build(rt.db)
    room = await bound_group(tg, admin, -100882, "QB-CMD")
    with rt.db.session() as s:
        district = s.exec(select(District)).one()
        district.settings = {**district.settings, "monthly_report_day": 12}
        s.add(district)
    clock.set(MONDAY)
    api.fail_next("sendDocument", 502)  # Telegram has a bad moment
    await desk_jobs.periodic_reports(SimpleNamespace(application=app, bot=app.bot))  # type: ignore[arg-type]
    await drain(app)
    with rt.db.read() as s:
        row = s.exec(select(Outbox).where(Outbox.kind == reports.KIND_SPREADSHEET)).one()
        assert row.chat_id == room.id and row.state == "pending" and row.attempts == 1
        assert row.payload == {"code": "330102001", "first": "2026-09-01", "last": "2026-09-30"}
    clock.set(MONDAY + timedelta(minutes=1))
    await drain(app)
    with rt.db.read() as s:
        assert s.exec(select(Outbox).where(Outbox.kind == reports.KIND_SPREADSHEET)).one().state == "sent"
    sent = [c for c in api.calls_to("sendDocument") if c.params["chat_id"] == room.id]
    book = load_workbook(io.BytesIO(sent[-1].files["document"]), read_only=True)
    assert len(list(book[book.sheetnames[0]].iter_rows())) == 7
    assert any("月报" in x for x in room.texts())
