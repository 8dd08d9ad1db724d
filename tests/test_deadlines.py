"""Deadlines with a controllable clock (never a real sleep): due times, reminders once each,
quiet hours, the supervision ladder, extensions, restarts, closed cases, digests."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select
from telegram.ext import Application

from bot.cases import casework, claim, deadlines, digests
from bot.clock import ManualClock
from bot.intake import submit as intake
from bot.intake.photos import process_photo
from bot.people import identity as people
from bot.people.roles import Person
from bot.runtime import Runtime
from griddesk.app import build_application
from handlers.outbox_sender import drain
from storage.db import Database
from storage.models import AuditEvent, Case, Category, Grid, pk
from tests.fakebot import FakeBotAPI, FakeChat, FakeTelegram, FakeUser
from tests.flows import bound_group, onboard
from tests.images import make_jpeg
from tests.test_claim import join_directly

SH = ZoneInfo("Asia/Shanghai")
HB_GRID = "33010200200101"  # 湖滨: auto-dispatch, claim_minutes 20


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def file_case(rt: Runtime, db: Database, category_code: str, reporter_id: int) -> Case:
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == HB_GRID)).one()
        category = s.exec(select(Category).where(Category.code == category_code)).one()
        assert grid.centre_lat is not None and grid.centre_lon is not None
    done = intake.submit_report(
        rt,
        intake.ReportIn(
            reporter_user_id=reporter_id,
            source="patrol",
            latitude=grid.centre_lat,
            longitude=grid.centre_lon,
            grid_id=pk(grid),
            category_id=pk(category),
            description="deadline test",
            photos=(),
        ),
    )
    return load(db, done.case_id)


def load(db: Database, case_id: int) -> Case:
    with db.session() as s:
        return s.get(Case, case_id)  # type: ignore[return-value]


def person(rt: Runtime, telegram_id: int) -> Person:
    return people.identify(rt, people.Profile(telegram_id=telegram_id, first_name=str(telegram_id)))


async def sweep(rt: Runtime, app: Application) -> deadlines.SweepResult:
    result = deadlines.sweep(rt)
    await drain(app)
    return result


@pytest.fixture
async def hb(tg: FakeTelegram, admin: FakeUser, rt: Runtime) -> dict:
    team = await bound_group(tg, admin, -100951, "HB-ZF")
    room = await bound_group(tg, admin, -100952, "HB-CMD")
    worker = tg.user(9501, "worker", language_code="zh-hans")
    await onboard(admin, worker, "worker", HB_GRID)
    join_directly(rt, 9510, "owner", "staff", "HB-ZF")
    owner = tg.user(9510, "owner", language_code="zh-hans")
    await owner.send("/start")
    return {"team": team, "room": room, "worker": worker, "owner": owner, "reporter_id": person(rt, 9501).user_id}


def nudges(chat: FakeChat | FakeUser, needle: str) -> int:
    return sum(needle in text for text in chat.texts())


async def test_due_time_is_set_at_dispatch_across_lunch(
    rt: Runtime, db: Database, clock: ManualClock, hb: dict
) -> None:
    clock.set(at(23, 9, 30))  # Monday
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])  # 4 working hours
    assert case.state == "dispatched" and case.due_at == at(23, 15, 30)
    urgent = file_case(rt, db, "FIRE-HAZARD", hb["reporter_id"])  # urgent: 2 wall-clock hours
    assert urgent.due_at == at(23, 11, 30)
    with db.session() as s:
        assert s.exec(
            select(AuditEvent).where(AuditEvent.action == "case.due_set", AuditEvent.case_id == case.id)
        ).one()


async def test_claim_nudges_once_each(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, hb: dict
) -> None:
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    await drain(app)
    assert case.next_reminder_at == at(23, 9, 50)  # 湖滨 claims within 20 minutes
    clock.set(at(23, 9, 49))
    assert (await sweep(rt, app)).reminders == 0
    clock.set(at(23, 9, 51))
    assert (await sweep(rt, app)).kinds == {"claim1": 1}
    assert (await sweep(rt, app)).reminders == 0  # a second sweep: nothing twice
    clock.set(at(23, 10, 11))
    assert (await sweep(rt, app)).kinds == {"claim2": 1}
    assert nudges(hb["team"], "无人认领") == 2


async def test_owner_reminders_and_the_ladder(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, tg: FakeTelegram, admin: FakeUser, hb: dict
) -> None:
    street_boss, district_boss = (
        tg.user(9520, "street", language_code="zh-hans"),
        tg.user(9521, "district", language_code="zh-hans"),
    )
    await onboard(admin, street_boss, "supervisor", "330102002")
    await onboard(admin, district_boss, "supervisor", "330102")
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])  # due 15:30, 4 working hours
    claim.claim(rt, person=person(rt, 9510), case_id=case.id)  # type: ignore[arg-type]
    owner = hb["owner"]
    sent: dict[str, int] = {}
    # walk the clock through the day in 10-minute steps, sweeping each time
    moment = at(23, 9, 40)
    while moment <= at(24, 18, 0):
        clock.set(moment)
        for kind, n in (await sweep(rt, app)).kinds.items():
            sent[kind] = sent.get(kind, 0) + n
        moment += timedelta(minutes=10)
    # the 100 % reminder falls with rung 1 (督办) at the due time: one message says both
    assert sent == {"owner_50": 1, "owner_80": 1, "rung1": 1, "rung2": 1, "rung3": 1}
    assert nudges(owner, "已到处置时限") == 0
    assert nudges(owner, "已用去 50%") == 1 and nudges(owner, "已用去 80%") == 1 and nudges(owner, "列入督办") == 1
    assert nudges(hb["team"], "督办") >= 1 and nudges(hb["room"], "请跟进") == 1
    assert nudges(street_boss, "第 2 级督办") == 1 and nudges(district_boss, "第 3 级督办") == 1
    assert nudges(district_boss, "第 2 级") == 0
    stored = load(db, pk(case))
    assert stored.rung == 3 and stored.next_reminder_at is None
    with db.session() as s:
        rungs = [
            e.data["rung"]
            for e in s.exec(
                select(AuditEvent).where(AuditEvent.action == "case.supervised").order_by(col(AuditEvent.id))
            )
        ]
    assert rungs == [1, 2, 3]
    # the card in the team group shows the rung
    assert any("督办（第 3 级）" in (m.text or m.caption or "") for m in hb["team"].messages())


async def test_quiet_hours_hold_reminders_until_morning(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, hb: dict
) -> None:
    clock.set(at(23, 17, 0))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])  # 4 working hours: 1 today, 3 tomorrow
    claim.claim(rt, person=person(rt, 9510), case_id=case.id)  # type: ignore[arg-type]
    await drain(app)
    # the bot was down all evening; it comes back at 23:00 and sweeps
    clock.set(at(23, 23, 0))
    assert load(db, pk(case)).due_at == at(24, 11, 30)
    result = await sweep(rt, app)
    # nothing due yet in working time (the 50% mark falls at 09:30 tomorrow)
    assert result.reminders == 0
    clock.set(at(24, 9, 45))
    assert (await sweep(rt, app)).kinds == {"owner_50": 1}
    assert nudges(hb["owner"], "已用去 50%") == 1
    # an urgent case at night is not held back
    clock.set(at(24, 23, 0))
    urgent = file_case(rt, db, "FIRE-HAZARD", hb["reporter_id"])
    claim.claim(rt, person=person(rt, 9510), case_id=urgent.id)  # type: ignore[arg-type]
    clock.set(at(25, 0, 1))
    await sweep(rt, app)
    assert any(urgent.code in t and "50%" in t for t in hb["owner"].texts())


async def test_a_non_urgent_rung_at_night_waits_for_morning(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, hb: dict
) -> None:
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    claim.claim(rt, person=person(rt, 9510), case_id=case.id)  # type: ignore[arg-type]
    clock.set(at(23, 23, 30))  # overdue since 15:30; swept late at night
    before = len(hb["owner"].texts())
    await sweep(rt, app)
    assert load(db, pk(case)).rung == 1  # marked supervised at once
    assert any("请跟进" in t for t in hb["room"].texts())  # the command room hears at once
    assert not any("列入督办" in t for t in hb["owner"].texts()[before:])  # the owner sleeps
    clock.set(at(24, 7, 31))
    await drain(app)
    assert any("列入督办" in t for t in hb["owner"].texts()[before:])


async def test_extension_resets_the_ladder(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, tg: FakeTelegram, admin: FakeUser, hb: dict
) -> None:
    dispatcher = tg.user(9530, "dispatcher", language_code="zh-hans")
    await onboard(admin, dispatcher, "dispatcher", "330102002")
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    claim.claim(rt, person=person(rt, 9510), case_id=case.id)  # type: ignore[arg-type]
    clock.set(at(23, 16, 0))
    assert "rung1" in (await sweep(rt, app)).kinds
    owner = person(rt, 9510)
    casework.start_input(rt, person=owner, case_id=case.id, action=casework.EXTEND)  # type: ignore[arg-type]
    casework.set_more_time(rt, user_id=owner.user_id, amount=4, unit="wh")  # the limit is in working hours
    casework.add_text(rt, user_id=owner.user_id, text="需协调物业")
    pending = casework.pending(rt, owner.user_id)
    done = casework.finish(rt, person=owner, pending_id=pending.id)  # type: ignore[union-attr]
    casework.decide_extension(rt, person=person(rt, 9530), request_id=done.extra["request"], approve=True)
    stored = load(db, pk(case))
    # 4 working hours from now (16:00, the case being late already): 2 today, 2 tomorrow
    assert stored.rung == 0 and stored.due_at == at(24, 10, 30)
    clock.set(at(24, 10, 40))
    assert "rung1" in (await sweep(rt, app)).kinds  # the ladder climbs again from the new due time
    assert load(db, pk(case)).rung == 1


async def test_restart_mid_window_sends_each_missed_reminder_once(
    rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, hb: dict
) -> None:
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    claim.claim(rt, person=person(rt, 9510), case_id=case.id)  # type: ignore[arg-type]
    clock.set(at(23, 14, 45))  # 50% and 80% passed while the bot was down
    app2 = build_application(rt, request=api)
    await app2.initialize()
    try:
        first = await sweep(rt, app2)
        second = await sweep(rt, app2)
    finally:
        await app2.shutdown()
    # only the latest reminder of the case goes out, not 50 % and 80 % in one second
    assert first.kinds == {"owner_80": 1} and second.reminders == 0
    assert nudges(hb["owner"], "已用去 50%") == 0 and nudges(hb["owner"], "已用去 80%") == 1


async def test_closed_or_resolved_cases_get_no_reminders(
    rt: Runtime, db: Database, clock: ManualClock, app: Application, hb: dict
) -> None:
    clock.set(at(23, 9, 30))
    case = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    owner = person(rt, 9510)
    claim.claim(rt, person=owner, case_id=case.id)  # type: ignore[arg-type]
    casework.start_input(rt, person=owner, case_id=case.id, action=casework.RESOLVE)  # type: ignore[arg-type]
    stored = process_photo(make_jpeg(), rt.settings.media_dir, default_tz=SH)
    casework.add_photo(
        rt,
        user_id=owner.user_id,
        photo=intake.PhotoIn(
            "f",
            stored.sha256,
            str(stored.original_path),
            str(stored.jpeg_path),
            str(stored.thumb_path),
            stored.width,
            stored.height,
        ),
    )
    casework.finish(rt, person=owner, pending_id=casework.pending(rt, owner.user_id).id)  # type: ignore[union-attr]
    assert load(db, pk(case)).next_reminder_at is None  # waiting on the reporter: the clock is paused
    clock.set(at(24, 10, 0))
    assert (await sweep(rt, app)).reminders == 0
    # not fixed the next morning: the paused time is given back to the team
    worker = person(rt, 9501)
    casework.start_input(rt, person=worker, case_id=case.id, action=casework.NOT_FIXED)  # type: ignore[arg-type]
    casework.add_text(rt, user_id=worker.user_id, text="还有残留")
    casework.finish(rt, person=worker, pending_id=casework.pending(rt, worker.user_id).id)  # type: ignore[union-attr]
    reopened = load(db, pk(case))
    # resolved Mon 09:30, not fixed Tue 10:00: 8 working hours paused, so due Mon 15:30 → Tue 16:00
    assert reopened.state == "reopened" and reopened.due_at == at(24, 16, 0)
    assert reopened.next_reminder_at is not None
    # resolved again and confirmed: closed, and nothing more is ever sent for it
    casework.start_input(rt, person=owner, case_id=case.id, action=casework.RESOLVE)  # type: ignore[arg-type]
    casework.add_photo(
        rt,
        user_id=owner.user_id,
        photo=intake.PhotoIn(
            "g",
            stored.sha256,
            str(stored.original_path),
            str(stored.jpeg_path),
            str(stored.thumb_path),
            stored.width,
            stored.height,
        ),
    )
    casework.finish(rt, person=owner, pending_id=casework.pending(rt, owner.user_id).id)  # type: ignore[union-attr]
    casework.confirm(rt, person=worker, case_id=case.id)  # type: ignore[arg-type]
    closed = load(db, pk(case))
    assert closed.state == "closed" and closed.next_reminder_at is None
    clock.set(at(30, 10, 0))
    assert (await sweep(rt, app)).reminders == 0


async def test_morning_digest(rt: Runtime, db: Database, clock: ManualClock, app: Application, hb: dict) -> None:
    clock.set(at(23, 9, 30))  # Monday
    overdue = file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    file_case(rt, db, "CLEAN-EXPOSED-GARBAGE", hb["reporter_id"])
    await drain(app)
    clock.set(at(24, 8, 29))
    assert digests.send_due_digests(rt).messages == 0  # not yet 08:30
    clock.set(at(24, 8, 31))
    result = digests.send_due_digests(rt)
    assert result.streets >= 1 and result.messages == 2  # 湖滨's command room and its team
    assert digests.send_due_digests(rt).messages == 0  # once a day
    await drain(app)
    room_text = hb["room"].texts()[-1]
    assert "每日简报" in room_text and "昨日新增 2 件" in room_text and overdue.code in room_text
    assert "超时 2 件" in hb["team"].texts()[-1]
    # Saturday: no digest
    clock.set(at(28, 9, 0))
    assert digests.send_due_digests(rt).messages == 0
