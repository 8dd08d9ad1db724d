"""Reporting through the real Application: a worker's full report, a quick report, an
album, a resident's report, and what lands in the database, on disk and in the groups."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import col, select

from bot.settings import Settings
from storage.db import Database
from storage.models import AuditEvent, Case, CaseMedia, Category, Unit
from tests.fakebot import FakeChat, FakeTelegram, FakeUser, buttons
from tests.flows import bound_group, grid_centre, onboard, receipt
from tests.images import make_jpeg

GRID = "33010200100101"  # in 清波街道 (QB), which dispatches by hand


@pytest.fixture
async def worker(tg: FakeTelegram, admin: FakeUser) -> FakeUser:
    user = tg.user(5001, "张网格", language_code="zh-hans")
    await onboard(admin, user, "worker", GRID)
    return user


@pytest.fixture
async def command_room(tg: FakeTelegram, admin: FakeUser) -> FakeChat:
    return await bound_group(tg, admin, -100500, "QB-CMD")


def only_case(db: Database) -> Case:
    with db.session() as s:
        return s.exec(select(Case)).one()


def category_id(db: Database, code: str) -> int:
    with db.session() as s:
        return s.exec(select(Category).where(Category.code == code)).one().id  # type: ignore[return-value]


async def test_worker_files_a_full_report(
    worker: FakeUser, command_room: FakeChat, db: Database, settings: Settings
) -> None:
    lat, lon = grid_centre(db, GRID)
    turn = await worker.send("/report")
    assert "问题在哪里" in turn.texts[0]
    turn = await worker.send_location(lat, lon)
    assert "劳动路" in turn.texts[0] or "位置" in turn.texts[0]
    assert "照片" in turn.texts[0]
    photo = make_jpeg(1200, 900, exif_gps=(30.2401, 120.1702), exif_time="2026:11:23 09:12:00")
    turn = await worker.send_photo(photo)
    assert "已收到 1 张照片" in turn.texts[0]
    await worker.press(turn.replies[0], "✅ 照片发完了")
    turn = await worker.send("小区门口垃圾堆放好几天了，没人清运")
    card = worker.last_message()
    labels = [row[0] for row in buttons(card)]
    assert "暴露垃圾" in labels[0], labels  # the most likely category first
    await worker.press(card, labels[0])
    summary = worker.last_message()
    assert "请确认上报内容" in summary.body and "没人清运" in summary.body
    await worker.press(summary, "✅ 确认上报")
    shown = worker.chat.message(summary.message_id)  # the summary, now with the case code below it
    done = shown.body
    case = only_case(db)
    assert case.code.startswith("QB-261123-") and case.code in done
    assert "指挥中心" in done  # 清波 dispatches by hand
    assert "请确认上报内容" in done and "没人清运" in done and not buttons(shown)
    assert "继续上报" in worker.last_text()  # the main menu is back, below it
    assert [m.message_id for m in worker.tg.messages(worker.id) if case.code in m.body] == [summary.message_id]
    assert (case.state, case.source) == ("reported", "patrol")
    assert case.grid_id is not None and case.street_id is not None and case.community_id is not None
    assert case.latitude is not None and case.longitude is not None
    assert abs(case.latitude - lat) < 1e-9 and abs(case.longitude - lon) < 1e-9
    # routing proposed the right team, and the command room got the card with the photo
    with db.session() as s:
        unit = s.get(Unit, case.suggested_unit_id)
        media = s.exec(select(CaseMedia).where(CaseMedia.case_id == case.id)).all()
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.case_id == case.id))]
    assert unit is not None and unit.code == "QB-ZF"
    assert actions == ["case.reported"]
    posted = command_room.last_message()
    assert posted.photo and case.code in posted.caption_text
    assert "派遣至" in buttons(posted)[0][0]
    # the files: original kept by hash, the JPEG we pass on has no EXIF
    assert len(media) == 1
    root = Path(settings.media_dir)
    item = media[0]
    assert item.original_path is not None and item.jpeg_path is not None and item.thumb_path is not None
    original = Image.open(root / item.original_path)
    assert original.getexif().get_ifd(0x8825)  # the original keeps its GPS as evidence
    passed_on = Image.open(root / item.jpeg_path)
    assert not passed_on.getexif() and "exif" not in passed_on.info
    assert (root / item.thumb_path).is_file()


async def test_quick_report_in_four_messages(worker: FakeUser, command_room: FakeChat, db: Database) -> None:
    lat, lon = grid_centre(db, GRID)
    sent = 0
    await worker.send_photo(make_jpeg(), caption="路口有车辆违停，乱停乱放")
    sent += 1
    await worker.send_location(lat, lon)
    sent += 1
    card = worker.last_message()
    assert buttons(card)[0][0] == "违章停车", buttons(card)
    await worker.press(card, "违章停车")
    sent += 1
    await worker.press(worker.last_message(), "✅ 确认上报")
    sent += 1
    assert sent <= 4
    case = only_case(db)
    assert case.description == "路口有车辆违停，乱停乱放"
    assert case.category_id == category_id(db, "TRAFFIC-PARKING")


async def test_album_is_collected_and_acknowledged_once(worker: FakeUser, db: Database) -> None:
    turns = await worker.send_album([make_jpeg(color=(i * 40, 0, 0)) for i in range(4)], caption="井盖缺失")
    replies = [m for t in turns for m in t.replies]
    # one acknowledgement for the whole album, then the "send my location" button it speaks of
    assert len(replies) == 2 and "发送我的位置" in replies[1]["text"]
    ack_id = replies[0]["message_id"]
    assert "已收到 4 张照片" in worker.tg.message(worker.id, ack_id).body
    lat, lon = grid_centre(db, GRID)
    await worker.send_location(lat, lon)
    card = worker.last_message()
    await worker.press(card, buttons(card)[0][0])
    await worker.press(worker.last_message(), "✅ 确认上报")
    case = only_case(db)
    with db.session() as s:
        assert len(s.exec(select(CaseMedia).where(CaseMedia.case_id == case.id)).all()) == 4


async def test_resident_reports_and_sees_only_their_own(tg: FakeTelegram, command_room: FakeChat, db: Database) -> None:
    resident = tg.user(6001, "Ms Zhou", language_code="en")
    other = tg.user(6002, "Mr Sun", language_code="en")
    lat, lon = grid_centre(db, "33010200100201")
    for user, text in ((resident, "Streetlight broken outside building 3"), (other, "Dog barking all night")):
        await user.send_photo(make_jpeg(), caption=text)
        await user.send_location(lat, lon)
        card = user.last_message()
        await user.press(card, buttons(card)[0][0])
        await user.press(user.last_message(), "✅ Submit")
        assert "Registered as" in receipt(user)
    with db.session() as s:
        cases = s.exec(select(Case).order_by(col(Case.id))).all()
    assert [c.source for c in cases] == ["resident", "resident"]
    mine = (await resident.send("/my")).texts[0]
    assert cases[0].code in mine and cases[1].code not in mine


async def test_second_report_nearby_joins_the_open_case(
    tg: FakeTelegram, worker: FakeUser, command_room: FakeChat, db: Database, settings: Settings
) -> None:
    lat, lon = grid_centre(db, GRID)

    async def quick(user: FakeUser, caption: str, dlat: float) -> None:
        await user.send_photo(make_jpeg(color=(len(caption) * 7 % 255, 90, 10)), caption=caption)
        await user.send_location(lat + dlat, lon)
        card = user.last_message()
        await user.press(card, "暴露垃圾")

    await quick(worker, "路边垃圾成堆", 0.00001)  # a measured point (a grid's exact centre is approximate)
    await worker.press(worker.last_message(), "✅ 确认上报")
    first = only_case(db)
    resident = tg.user(6100, "王阿姨", language_code="zh-hans")
    await quick(resident, "垃圾好几天没人收", 0.0002)  # about 22 m north
    summary = resident.last_message()
    assert "附近已有 1 件同类问题" in summary.body and first.code in summary.body
    assert buttons(summary)[0] == [f"➕ 并入{first.code}"]
    await resident.press(summary, f"➕ 并入{first.code}")
    assert first.code in receipt(resident) and "并入" in receipt(resident)
    with db.session() as s:
        cases = s.exec(select(Case)).all()
        media = s.exec(select(CaseMedia).where(CaseMedia.case_id == first.id).order_by(col(CaseMedia.id))).all()
        supports = [e for e in s.exec(select(AuditEvent).where(AuditEvent.action == "case.supported"))]
    assert len(cases) == 1  # no new case
    assert [m.stage for m in media] == ["report", "support"]  # the resident's photo is kept
    assert len(supports) == 1 and supports[0].case_id == first.id
    # the command room's card was edited in place to count the extra report
    card = command_room.last_message()
    assert first.code in card.caption_text and "另有 1 人次反映同一问题" in card.caption_text


async def test_far_or_other_category_is_not_a_duplicate(worker: FakeUser, db: Database) -> None:
    lat, lon = grid_centre(db, GRID)
    await worker.send_photo(make_jpeg(), caption="路边垃圾成堆")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "暴露垃圾")
    await worker.press(worker.last_message(), "✅ 确认上报")
    await worker.send_photo(make_jpeg(), caption="路边垃圾成堆")
    await worker.send_location(lat + 0.001, lon)  # about 110 m away: beyond 50 m
    await worker.press(worker.last_message(), "暴露垃圾")
    assert "附近已有" not in worker.last_message().body
