"""Bad and awkward input in the report conversation, through the real Application.

Each test checks what the user sees and what the database and the media folder hold: a
wrong kind of message, a photo that is too big, broken, not an image or a pixel bomb, a
location in the sea, live locations, venues, empty and huge descriptions, stale and
forged buttons, two albums at once, a resident filing fifty reports, /cancel at every
step, a restart mid-report, an idle draft, an EXIF position, a voice note. Whatever was
accepted before the bad input is never lost.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from telegram.ext import Application

from bot.clock import ManualClock
from bot.i18n import t
from bot.intake.drafts import Draft
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk.app import build_application
from handlers.outbox_sender import stop_sender
from storage.db import Database
from storage.models import Case, CaseMedia, Grid, Outbox, ReportDraft, User
from tests.conftest import harness
from tests.fakebot import MAX_CAPTION_LENGTH, FakeBotAPI, FakeChat, FakeTelegram, FakeUser, Turn, buttons, utf16_len
from tests.flows import bound_group, grid_centre, onboard, receipt
from tests.images import corrupt_jpeg, make_jpeg, make_png, truncated_jpeg
from tests.test_photos import _huge_one_bit_png, jpeg_with_frame_size, png_header

GRID = "33010200100101"  # 劳动路社区第1网格, 清波街道 (QB): the worker's grid
OTHER_GRID = "33010200100301"  # 柳翠井巷社区第1网格, also in QB
EXIF_POINT = (30.2411, 120.1691)  # inside OTHER_GRID
SEA = (30.0, 123.0)  # the East China Sea: outside every grid
ZH, EN = "zh_CN", "en"
MB = 1024 * 1024


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def worker(tg: FakeTelegram, admin: FakeUser) -> FakeUser:
    user = tg.user(5001, "张网格", language_code="zh-hans")
    await onboard(admin, user, "worker", GRID)
    return user


@pytest.fixture
def resident(tg: FakeTelegram) -> FakeUser:
    return tg.user(6001, "Ms Zhou", language_code="en")


@pytest.fixture
async def command_room(tg: FakeTelegram, admin: FakeUser) -> FakeChat:
    return await bound_group(tg, admin, -100500, "QB-CMD")


# --------------------------------------------------------------------------- helpers


def draft_of(db: Database, user: FakeUser) -> dict[str, Any] | None:
    """The user's draft as stored (every field, defaults filled in), or None."""
    with db.session() as s:
        row = s.exec(
            select(ReportDraft).join(User, col(User.id) == ReportDraft.user_id).where(User.telegram_id == user.id)
        ).first()
        return None if row is None else asdict(Draft(id=row.id, user_id=row.user_id, **row.data))  # type: ignore[arg-type]


def all_cases(db: Database) -> list[Case]:
    with db.session() as s:
        return list(s.exec(select(Case).order_by(col(Case.id))))


def media_of(db: Database, case_id: int | None) -> list[CaseMedia]:
    with db.session() as s:
        return list(s.exec(select(CaseMedia).where(CaseMedia.case_id == case_id).order_by(col(CaseMedia.id))))


def stored_files(settings: Settings) -> list[Path]:
    root = Path(settings.media_dir)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def grid_id(db: Database, code: str) -> int:
    with db.session() as s:
        return s.exec(select(Grid).where(Grid.code == code)).one().id  # type: ignore[return-value]


def photo_count(db: Database, user: FakeUser) -> int:
    draft = draft_of(db, user)
    return len(draft["photos"]) if draft else 0


def data_of(message: Any, label: str) -> str:
    """The callback data of the inline button labelled ``label`` on a bot message."""
    markup = message.reply_markup if not isinstance(message, dict) else None
    rows = markup.inline_keyboard if markup is not None else message["reply_markup"]["inline_keyboard"]
    for row in rows:
        for button in row:
            text = button.text if not isinstance(button, dict) else button["text"]
            if text == label:
                return button.callback_data if not isinstance(button, dict) else button["callback_data"]
    raise AssertionError(f"no button {label!r}: {buttons(message)}")


def failed_calls(api: FakeBotAPI) -> list[tuple[str, str | None]]:
    """Bot API calls Telegram refused (a message too long, a caption too long, …)."""
    return [(c.method, c.error) for c in api.calls if not c.ok]


def rich(width: int = 800, height: int = 600, *, seed: int = 0) -> bytes:
    """A distinct JPEG per seed (so content hashes differ)."""
    return make_jpeg(width, height, color=((seed * 37) % 256, (seed * 91) % 256, 120))


def padded(data: bytes, size: int) -> bytes:
    """A valid image followed by junk up to ``size`` bytes (decoders stop at the end marker)."""
    return data + b"\0" * (size - len(data))


async def to_photos_step(user: FakeUser, db: Database, code: str = GRID) -> None:
    lat, lon = grid_centre(db, code)
    await user.send("/report")
    await user.send_location(lat, lon)


async def to_description_step(user: FakeUser, db: Database) -> None:
    await to_photos_step(user, db)
    await user.send_photo(rich(seed=1))


async def pick_first_category(user: FakeUser) -> None:
    card = user.last_message()
    await user.press(card, buttons(card)[0][0])


async def submit(user: FakeUser, label: str = "✅ 确认上报") -> None:
    await user.press(user.last_message(), label)


def texts_of(lang: str, *keys: str, **params: Any) -> set[str]:
    return {t(lang, key, **params) for key in keys}


# --------------------------------------------------------------------------- wrong kinds


@pytest.mark.parametrize("kind", ["sticker", "video", "contact"])
async def test_wrong_kind_of_message_where_a_photo_is_expected(
    worker: FakeUser, db: Database, settings: Settings, kind: str
) -> None:
    await to_photos_step(worker, db)
    before = draft_of(db, worker)
    assert before is not None and before["grid_id"] == grid_id(db, GRID)
    senders: dict[str, Callable[[], Awaitable[Turn]]] = {
        "sticker": worker.send_sticker,
        "video": worker.send_video,
        "contact": worker.send_contact,
    }
    send = senders[kind]
    turn = await send()
    assert turn.texts == [t(ZH, "report.wrong_input_photo")]
    assert "照片" in turn.texts[0] and "report." not in turn.texts[0]  # a sentence, not a bare key
    assert draft_of(db, worker) == before  # location kept, nothing added
    # … and the report goes on from where it was
    turn = await worker.send_photo(rich(seed=2))
    assert "已收到 1 张照片" in turn.texts[0]
    assert photo_count(db, worker) == 1


@pytest.mark.parametrize("kind", ["sticker", "video", "contact"])
async def test_wrong_kind_keeps_the_photos_already_sent(worker: FakeUser, db: Database, kind: str) -> None:
    await to_description_step(worker, db)
    before = draft_of(db, worker)
    assert before is not None and len(before["photos"]) == 1
    senders: dict[str, Callable[[], Awaitable[Turn]]] = {
        "sticker": worker.send_sticker,
        "video": worker.send_video,
        "contact": worker.send_contact,
    }
    send = senders[kind]
    turn = await send()
    assert len(turn.texts) == 1
    assert turn.texts[0].startswith(t(ZH, "report.wrong_input")) and t(ZH, "report.ask_description") in turn.texts[0]
    assert draft_of(db, worker) == before


async def test_wrong_kind_where_the_location_is_expected_in_english(resident: FakeUser, db: Database) -> None:
    await resident.send("/report")
    turn = await resident.send_sticker()
    assert turn.texts == [t(EN, "report.wrong_input_location")]
    assert "location" in turn.texts[0].lower()
    draft = draft_of(db, resident)
    assert draft is not None and draft["grid_id"] is None and draft["photos"] == []


# --------------------------------------------------------------------------- bad photos


async def test_document_over_20_mb_is_refused_before_download(
    worker: FakeUser, db: Database, settings: Settings
) -> None:
    await to_photos_step(worker, db)
    big = padded(make_jpeg(), 21 * MB)
    turn = await worker.send_document(big, file_name="scan.jpg", mime_type="image/jpeg")
    assert turn.calls_to("getFile") == []  # its file_size said enough
    assert len(turn.texts) == 1 and "照片太大" in turn.texts[0] and "20 MB" in turn.texts[0]
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []


async def test_photo_whose_size_says_over_20_mb_is_refused_before_download(
    worker: FakeUser, db: Database, settings: Settings
) -> None:
    await to_photos_step(worker, db)
    turn = await worker.send_photo(padded(make_jpeg(1200, 900), 21 * MB))
    sizes = turn.update.message.photo  # type: ignore[union-attr]
    assert (sizes[-1].file_size or 0) > 20 * MB
    assert turn.calls_to("getFile") == []
    assert len(turn.texts) == 1 and "照片太大" in turn.texts[0]
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []


async def test_photo_without_a_size_is_refused_by_getfile(
    tg: FakeTelegram, worker: FakeUser, db: Database, settings: Settings
) -> None:
    """Telegram does not always fill in file_size; then getFile is what says "too big"."""
    await to_photos_step(worker, db)
    sizes = tg.api.add_photo(padded(make_jpeg(1200, 900), 21 * MB))
    sizes = [{k: v for k, v in size.items() if k != "file_size"} for size in sizes]
    turn = await tg._send_from(worker, None, {"photo": sizes}, None)
    refused = turn.calls_to("getFile")
    assert len(refused) == 1 and not refused[0].ok and "too big" in (refused[0].error or "")
    assert turn.errors == []
    assert len(turn.texts) == 1 and "照片太大" in turn.texts[0]
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []
    assert draft_of(db, worker)["grid_id"] == grid_id(db, GRID)  # type: ignore[index]


@pytest.mark.parametrize("how", ["photo", "document"])
@pytest.mark.parametrize("data", [corrupt_jpeg(), truncated_jpeg()], ids=["garbage", "truncated"])
async def test_corrupted_jpeg_is_refused(
    worker: FakeUser, db: Database, settings: Settings, how: str, data: bytes
) -> None:
    await to_photos_step(worker, db)
    if how == "photo":
        turn = await worker.send_photo(data)
    else:
        turn = await worker.send_document(data, file_name="IMG_0001.jpg", mime_type="image/jpeg")
    assert turn.texts and turn.texts[0] in texts_of(ZH, "photo.broken", "photo.not_image")
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []


async def test_a_pdf_is_not_a_photo(worker: FakeUser, db: Database, settings: Settings) -> None:
    await to_photos_step(worker, db)
    turn = await worker.send_document(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", file_name="report.pdf")
    assert turn.texts == [t(ZH, "photo.not_image")]
    assert turn.calls_to("getFile") == []
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []


async def test_an_image_file_is_taken_as_a_photo(worker: FakeUser, db: Database, settings: Settings) -> None:
    await to_photos_step(worker, db)
    turn = await worker.send_document(make_png(), file_name="scene.png", mime_type="image/png")
    assert "已收到 1 张照片" in turn.texts[0]
    assert photo_count(db, worker) == 1
    assert any(p.suffix == ".png" for p in stored_files(settings))


BOMBS = {
    "png-0x0": png_header(0, 0),
    "jpeg-0x0": jpeg_with_frame_size(0, 0),
    "png-30000": _huge_one_bit_png(30000, 30000),
    "jpeg-30000": jpeg_with_frame_size(30000, 30000),
}


@pytest.mark.parametrize("how", ["photo", "document"])
@pytest.mark.parametrize("name", list(BOMBS))
async def test_zero_and_giant_dimensions_are_refused(
    worker: FakeUser, db: Database, settings: Settings, how: str, name: str
) -> None:
    await to_photos_step(worker, db)
    data = BOMBS[name]
    if how == "photo":
        turn = await worker.send_photo(data)
    else:
        mime = "image/png" if name.startswith("png") else "image/jpeg"
        turn = await worker.send_document(data, file_name="x." + name[:3].replace("jpe", "jpg"), mime_type=mime)
    assert turn.texts == [t(ZH, "photo.bad_size", min_side=16, max_megapixels=50)]
    assert photo_count(db, worker) == 0
    assert stored_files(settings) == []


# --------------------------------------------------------------------------- location


async def test_worker_outside_every_grid_picks_their_grid_and_keeps_the_real_point(
    worker: FakeUser, command_room: FakeChat, db: Database
) -> None:
    await worker.send("/report")
    turn = await worker.send_location(*SEA)
    assert len(turn.texts) == 1 and "不在任何网格内" in turn.texts[0]
    card = worker.last_message()
    assert buttons(card) == [["劳动路社区第1网格"]]  # the worker's own grid
    draft = draft_of(db, worker)
    assert draft is not None and draft["grid_id"] is None and draft["outside"] is True
    await worker.press(card, "劳动路社区第1网格")
    assert "劳动路社区第1网格" in worker.last_text()
    await worker.send_photo(rich(seed=3), caption="海堤护栏断了")
    await pick_first_category(worker)
    await submit(worker)
    (case,) = all_cases(db)
    assert case.grid_id == grid_id(db, GRID)
    assert (case.latitude, case.longitude) == SEA  # where it really is
    assert case.code.startswith("QB-")


async def test_resident_outside_every_grid_is_asked_for_another_place(resident: FakeUser, db: Database) -> None:
    await resident.send("/report")
    turn = await resident.send_location(*SEA)
    assert len(turn.texts) == 1
    assert turn.texts[0].startswith(t(EN, "report.outside")) and t(EN, "report.ask_location") in turn.texts[0]
    assert buttons(resident.last_message()) == []  # no grid to pick
    assert resident.reply_keyboard()[0] == [t(EN, "report.btn_send_location")]  # type: ignore[index]
    draft = draft_of(db, resident)
    assert draft is not None and draft["grid_id"] is None
    # a forged "pick this grid" press does nothing for a resident
    answer = await resident.press_data(
        resident.id, resident.last_message().message_id, f"v1:report_grid:{draft['token']}:{GRID}"
    )
    assert answer is not None and answer.params["text"] == t(EN, "button.stale")
    assert draft_of(db, resident)["grid_id"] is None  # type: ignore[index]
    lat, lon = grid_centre(db, "33010200100201")
    turn = await resident.send_location(lat, lon)
    assert "Qingbomen Grid 1" in turn.texts[0]
    assert draft_of(db, resident)["grid_id"] == grid_id(db, "33010200100201")  # type: ignore[index]


async def test_live_location_sets_the_place_and_its_ticks_change_nothing(
    tg: FakeTelegram, worker: FakeUser, db: Database
) -> None:
    lat, lon = grid_centre(db, GRID)
    live = await worker.send_location(lat, lon, live_period=900)  # starts the report by itself
    assert "劳动路社区第1网格" in live.texts[0]
    before = draft_of(db, worker)
    assert before is not None and (before["latitude"], before["longitude"]) == (lat, lon)
    sent_before = len(tg.api.sent_messages(worker.id))
    other = grid_centre(db, OTHER_GRID)
    for point in (other, SEA, (lat + 0.0001, lon)):
        tick = await worker.edit_live_location(live, *point)
        assert tick.delivered and tick.replies == [] and tick.edits == [] and tick.errors == []
    assert draft_of(db, worker) == before
    assert len(tg.api.sent_messages(worker.id)) == sent_before


async def test_venue_keeps_its_title_and_address(worker: FakeUser, command_room: FakeChat, db: Database) -> None:
    lat, lon = grid_centre(db, GRID)
    await worker.send("/report")
    turn = await worker.send_venue(lat, lon, "劳动路菜场", "上城区劳动路 88 号")
    assert "劳动路社区第1网格" in turn.texts[0]
    assert draft_of(db, worker)["address"] == "劳动路菜场 上城区劳动路 88 号"  # type: ignore[index]
    await worker.send_photo(rich(seed=4), caption="菜场门口垃圾满溢")
    await pick_first_category(worker)
    assert "劳动路菜场" in worker.last_text()  # the summary shows it
    await submit(worker)
    (case,) = all_cases(db)
    assert case.address == "劳动路菜场 上城区劳动路 88 号"
    assert "劳动路菜场" in (command_room.last_message().caption or "")


async def test_exif_position_is_offered_and_used_by_button(worker: FakeUser, db: Database) -> None:
    photo = make_jpeg(1200, 900, exif_gps=EXIF_POINT, exif_time="2026:11:23 09:12:00")
    turn = await worker.send_photo(photo, caption="楼道堆满杂物")
    assert t(ZH, "report.exif_offer") in turn.texts[0]
    ack = worker.tg.message(worker.id, turn.replies[0]["message_id"])
    assert [t(ZH, "report.btn_photo_location")] in buttons(ack)
    await worker.press(ack, t(ZH, "report.btn_photo_location"))
    assert "柳翠井巷社区第1网格" in worker.last_text()
    draft = draft_of(db, worker)
    assert draft is not None and draft["grid_id"] == grid_id(db, OTHER_GRID) and draft["exif_offer"] is None
    assert abs(draft["latitude"] - EXIF_POINT[0]) < 1e-6 and abs(draft["longitude"] - EXIF_POINT[1]) < 1e-6
    await pick_first_category(worker)
    await submit(worker)
    (case,) = all_cases(db)
    assert case.grid_id == grid_id(db, OTHER_GRID)
    assert abs(case.latitude - EXIF_POINT[0]) < 1e-6  # type: ignore[operator]


async def test_exif_position_by_keyboard_text(worker: FakeUser, db: Database) -> None:
    await worker.send("/report")
    turn = await worker.send_photo(make_jpeg(exif_gps=EXIF_POINT))
    assert t(ZH, "report.exif_offer") in turn.texts[0]
    turn = await worker.send(t(ZH, "report.btn_photo_location"))
    assert "柳翠井巷社区第1网格" in turn.texts[0]
    draft = draft_of(db, worker)
    assert draft is not None and draft["grid_id"] == grid_id(db, OTHER_GRID)
    assert draft["description"] is None  # the button's text is not taken as the description


async def test_no_exif_offer_without_gps(worker: FakeUser, db: Database) -> None:
    turn = await worker.send_photo(make_jpeg())
    assert t(ZH, "report.exif_offer") not in turn.texts[0]
    assert [t(ZH, "report.btn_photo_location")] not in buttons(worker.last_message())
    assert draft_of(db, worker)["exif_offer"] is None  # type: ignore[index]


# --------------------------------------------------------------------------- description


async def test_blank_description_is_asked_again(worker: FakeUser, db: Database) -> None:
    await to_description_step(worker, db)
    turn = await worker.send("   \n\t  ")
    assert turn.texts == [t(ZH, "report.empty_description")]
    assert draft_of(db, worker)["description"] is None  # type: ignore[index]
    turn = await worker.send("路灯不亮")
    assert t(ZH, "report.description_set") in turn.texts[0]
    assert draft_of(db, worker)["description"] == "路灯不亮"  # type: ignore[index]


@pytest.mark.parametrize(
    "unit",
    # Chinese, HTML to escape, and emoji (two UTF-16 units each)
    ["垃圾", "ab <&> ", "🚯x"],
    ids=["chinese", "html", "emoji"],
)
async def test_a_5000_character_description_is_kept_whole(
    worker: FakeUser, command_room: FakeChat, db: Database, api: FakeBotAPI, unit: str
) -> None:
    description = (unit * 5000)[:5000]
    assert len(description) == 5000
    await to_description_step(worker, db)
    turn = await worker.send(description)
    assert t(ZH, "report.description_set") in turn.texts[0]
    assert draft_of(db, worker)["description"] == description  # type: ignore[index]
    await pick_first_category(worker)
    summary = worker.last_message()
    assert summary is not None and "请确认上报内容" in summary.body
    assert utf16_len(summary.body) <= 4096
    await submit(worker)
    (case,) = all_cases(db)
    assert case.description == description  # stored whole
    card = command_room.last_message()
    assert card is not None and card.photo and case.code in card.caption_text
    assert utf16_len(card.caption_text) <= MAX_CAPTION_LENGTH
    assert failed_calls(api) == []  # nothing was refused as too long
    with db.session() as s:
        assert {o.state for o in s.exec(select(Outbox))} == {"sent"}


async def test_an_emoji_description_fits_the_summary(worker: FakeUser, db: Database, api: FakeBotAPI) -> None:
    """Telegram counts UTF-16 units: 5,000 emoji are 10,000 of them."""
    description = "🚯" * 5000
    await to_description_step(worker, db)
    await worker.send(description)
    await pick_first_category(worker)
    summary = worker.last_message()
    assert summary is not None and "请确认上报内容" in summary.body
    assert 4000 <= utf16_len(summary.body) <= 4096
    assert "\ufffd" not in summary.body  # no emoji cut in half
    await submit(worker)
    (case,) = all_cases(db)
    assert case.description == description
    assert failed_calls(api) == []


# --------------------------------------------------------------------------- buttons


async def test_buttons_of_a_submitted_report_are_stale(worker: FakeUser, db: Database, api: FakeBotAPI) -> None:
    await to_description_step(worker, db)
    await worker.send("井盖不见了")
    category_card = worker.last_message()
    category_data = data_of(category_card, buttons(category_card)[0][0])
    await worker.press(category_card, buttons(category_card)[0][0])
    summary = worker.last_message()
    submit_data = data_of(summary, "✅ 确认上报")
    edit_data = data_of(summary, t(ZH, "report.btn_edit_location"))
    await submit(worker)
    (case,) = all_cases(db)
    assert buttons(worker.tg.message(worker.id, summary.message_id)) == []  # spent
    sent = len(api.sent_messages(worker.id))
    for chat_message, data in ((summary, submit_data), (summary, edit_data), (category_card, category_data)):
        answer = await worker.press_data(worker.id, chat_message.message_id, data)
        assert answer is not None and answer.params["text"] == t(ZH, "button.stale") and answer.params["show_alert"]
    assert [c.id for c in all_cases(db)] == [case.id]
    assert draft_of(db, worker) is None
    assert len(api.sent_messages(worker.id)) == sent


async def test_buttons_of_a_cancelled_report_do_not_act_on_the_next_one(worker: FakeUser, db: Database) -> None:
    await to_description_step(worker, db)
    await worker.send("小区门口垃圾堆放")
    category_card = worker.last_message()
    old_category = data_of(category_card, buttons(category_card)[0][0])
    await worker.press(category_card, buttons(category_card)[0][0])
    old_submit = data_of(worker.last_message(), "✅ 确认上报")
    old_summary = worker.last_message().message_id
    turn = await worker.send("/cancel")
    assert turn.texts == [t(ZH, "report.cancelled")]
    # A new report reaches the same steps; the old buttons must not touch it.
    await to_description_step(worker, db)
    await worker.send("路口车辆违停")
    before = draft_of(db, worker)
    assert before is not None and before["category_id"] is None
    answer = await worker.press_data(worker.id, category_card.message_id, old_category)
    assert answer is not None and answer.params["text"] == t(ZH, "button.stale")
    assert draft_of(db, worker) == before
    await pick_first_category(worker)
    before = draft_of(db, worker)
    answer = await worker.press_data(worker.id, old_summary, old_submit)
    assert answer is not None and answer.params["text"] == t(ZH, "button.stale")
    assert all_cases(db) == [] and draft_of(db, worker) == before


async def test_forged_report_buttons_change_nothing(
    tg: FakeTelegram, worker: FakeUser, resident: FakeUser, db: Database
) -> None:
    await to_description_step(worker, db)
    await worker.send("路灯不亮")
    card = worker.last_message()
    assert card is not None
    token = data_of(card, buttons(card)[0][0]).split(":")[2]
    before = draft_of(db, worker)
    assert before is not None and str(before["token"]) == token
    # The resident has a draft of their own, at the category step too.
    await resident.send_photo(rich(seed=9), caption="Broken bench")
    await resident.send_location(*grid_centre(db, "33010200100201"))
    theirs = draft_of(db, resident)
    forged_by_resident = [
        f"v1:report_category:{token}:1",  # the worker's draft id
        f"v1:report:{token}:submit",
        f"v1:report:{token}:cancel",
        f"v1:report_edit:{token}:location",
    ]
    forged_by_worker = [
        f"v1:report_category:{theirs['token']}:1",  # type: ignore[index]  # someone else's draft
        "v1:report_category:abc:1",  # not a number
        f"v1:report_category:{token}:x1",
        f"v1:report_category:{token}:-1",
        f"v1:report_category:{token}:999999",  # no such category
        f"v1:report_category:{token}",  # missing argument
        f"v1:report_grid:{token}:{OTHER_GRID}",  # not the worker's grid
        f"v1:report_grid:{token}:99999999999999",
        f"v1:report_edit:{token}:everything",
        f"v1:report_location:{token}:exif",  # there is no EXIF position to use
        f"v1:report_platform:{token}:NOPE",  # no such platform
        f"v1:report:{token}:submit",  # not complete yet
        f"v1:report_join:{token}:1",
        f"v1:report_zz:{token}",  # no such action
        f"v2:report:{token}:submit",  # another version
        "v1",
        "",
        "v1:report:" + "9" * 40 + ":submit",
    ]
    for user, forged in ((resident, forged_by_resident), (worker, forged_by_worker)):
        for data in forged:
            answer = await user.press_data(user.id, card.message_id if user is worker else 1, data)
            assert answer is not None and answer.params["text"] == t(user_language(user), "button.stale"), data
    assert draft_of(db, worker) == before
    assert draft_of(db, resident) == theirs
    assert all_cases(db) == []


def user_language(user: FakeUser) -> str:
    return EN if user.language_code == "en" else ZH


async def test_joining_only_a_case_that_was_offered(worker: FakeUser, command_room: FakeChat, db: Database) -> None:
    """A forged "join" button naming some other open case is refused."""
    # An open case elsewhere (another grid, another category): never offered as a duplicate.
    await to_description_step(worker, db)
    await worker.send("路灯不亮")
    await pick_first_category(worker)
    await submit(worker)
    (first,) = all_cases(db)
    lat, lon = grid_centre(db, OTHER_GRID)
    await worker.send("/report")
    await worker.send_location(lat, lon)
    await worker.send_photo(rich(seed=5), caption="消防通道被占用")
    card = worker.last_message()
    token = data_of(card, buttons(card)[0][0]).split(":")[2]
    await worker.press(card, "消防通道堵塞")
    before = draft_of(db, worker)
    answer = await worker.press_data(worker.id, worker.last_message().message_id, f"v1:report_join:{token}:{first.id}")
    assert answer is not None and answer.params["text"] == t(ZH, "button.stale")
    assert draft_of(db, worker) == before
    assert len(all_cases(db)) == 1
    assert [m.stage for m in media_of(db, first.id)] == ["report"]  # no supporting photos added


async def report_parking(user: FakeUser, db: Database, code: str, seed: int) -> Any:
    """A quick report of illegal parking at a grid's centre, up to the summary."""
    await user.send_photo(rich(seed=seed), caption="路口车辆违停")
    lat, lon = grid_centre(db, code)
    await user.send_location(lat + 0.00001, lon)  # measured, near the centre (the exact centre is approximate)
    await user.press(user.last_message(), "违章停车")
    return user.last_message()


async def test_joining_an_offered_case(
    tg: FakeTelegram, worker: FakeUser, command_room: FakeChat, db: Database
) -> None:
    summary = await report_parking(worker, db, GRID, seed=11)
    await worker.press(summary, "✅ 确认上报")
    (case,) = all_cases(db)
    neighbour = tg.user(5002, "李网格", language_code="zh-hans")
    summary = await report_parking(neighbour, db, GRID, seed=12)
    assert case.code in summary.text  # offered as the same problem
    await neighbour.press(summary, f"➕ 并入{case.code}")
    assert case.code in receipt(neighbour)
    assert [c.id for c in all_cases(db)] == [case.id]
    assert [m.stage for m in media_of(db, case.id)] == ["report", "support"]
    assert draft_of(db, neighbour) is None


async def test_joining_a_case_closed_meanwhile_is_refused_politely(
    tg: FakeTelegram, worker: FakeUser, db: Database
) -> None:
    summary = await report_parking(worker, db, GRID, seed=13)
    await worker.press(summary, "✅ 确认上报")
    (case,) = all_cases(db)
    neighbour = tg.user(5002, "李网格", language_code="zh-hans")
    summary = await report_parking(neighbour, db, GRID, seed=14)
    with db.session() as s:
        row = s.get(Case, case.id)
        row.state = "closed"  # type: ignore[union-attr]
        s.add(row)
    before = draft_of(db, neighbour)
    answer = await neighbour.press(summary, f"➕ 并入{case.code}")
    assert answer is not None and answer.params["text"] == t(ZH, "report.case_not_open", code=case.code)
    assert draft_of(db, neighbour) == before  # nothing lost: submit it as new instead
    await neighbour.press(summary, "✅ 这是新问题，确认上报")
    assert len(all_cases(db)) == 2


async def test_joining_a_far_case_of_the_same_category_is_refused(worker: FakeUser, db: Database) -> None:
    summary = await report_parking(worker, db, GRID, seed=15)
    await worker.press(summary, "✅ 确认上报")
    (far,) = all_cases(db)
    summary = await report_parking(worker, db, "33010200200303", seed=16)  # 湖滨, ~800 m away
    assert far.code not in summary.text
    token = data_of(summary, "✅ 确认上报").split(":")[2]
    before = draft_of(db, worker)
    answer = await worker.press_data(worker.id, summary.message_id, f"v1:report_join:{token}:{far.id}")
    assert answer is not None and answer.params["text"] == t(ZH, "button.stale")
    assert draft_of(db, worker) == before and len(all_cases(db)) == 1


# --------------------------------------------------------------------------- albums


def album_item(user: FakeUser, data: bytes, group: str, caption: str | None = None) -> Any:
    return user.send_photo(data, media_group_id=group, caption=caption)


async def test_two_albums_interleaved(worker: FakeUser, db: Database, settings: Settings) -> None:
    await to_photos_step(worker, db)
    a = [rich(seed=10 + i) for i in range(4)]
    b = [rich(seed=20 + i) for i in range(5)]
    turns: list[Turn] = []
    for i in range(5):  # a1 b1 a2 b2 …
        if i < len(a):
            turns.append(await album_item(worker, a[i], "album-a", "井盖缺失" if i == 0 else None))
        turns.append(await album_item(worker, b[i], "album-b"))
    replies = [m for turn in turns for m in turn.replies]
    assert len(replies) == 2  # one acknowledgement per album…
    edits = [call for turn in turns for call in turn.edits]
    assert len(edits) == 3 + 4  # … edited as each later item of its album arrives
    assert {call.params["message_id"] for call in edits} == {m["message_id"] for m in replies}
    for turn in turns:
        assert turn.errors == []
    draft = draft_of(db, worker)
    assert draft is not None and len(draft["photos"]) == 9
    assert len({p["sha256"] for p in draft["photos"]}) == 9  # none lost, none doubled
    assert set(draft["albums"]) == {"album-a", "album-b"}
    assert sorted(draft["albums"].values()) == sorted(m["message_id"] for m in replies)
    final = [worker.tg.message(worker.id, m["message_id"]).body for m in replies]
    assert "已收到 9 张照片" in final[1]  # the last album's ack was edited up to the total
    assert all("张照片" in text for text in final)
    await pick_first_category(worker)
    await submit(worker)
    (case,) = all_cases(db)
    assert len(media_of(db, case.id)) == 9
    assert len([p for p in stored_files(settings) if "original" in p.parts]) == 9


async def test_two_albums_at_the_same_time(worker: FakeUser, db: Database) -> None:
    await to_photos_step(worker, db)
    a = [album_item(worker, rich(seed=30 + i), "album-c") for i in range(3)]
    b = [album_item(worker, rich(seed=40 + i), "album-d") for i in range(3)]
    interleaved = [x for pair in zip(a, b, strict=True) for x in pair]
    sent = len(worker.tg.api.sent_messages(worker.id))
    turns = await asyncio.gather(*interleaved)
    # (each concurrent turn records every call made meanwhile, so count on the server)
    assert len(worker.tg.api.sent_messages(worker.id)) - sent == 2  # one acknowledgement per album
    assert worker.tg.errors == [] and all(turn.errors == [] for turn in turns)
    draft = draft_of(db, worker)
    assert draft is not None and len({p["sha256"] for p in draft["photos"]}) == 6
    assert set(draft["albums"]) == {"album-c", "album-d"}


async def test_a_slow_send_holds_up_no_step_of_the_same_person(worker: FakeUser, db: Database) -> None:
    """The person's lock covers the database step, not the reply: while Telegram takes its
    time over the answer to one message, the next message's change is already stored; the
    answers still arrive in order."""
    await to_description_step(worker, db)
    slow = worker.tg.api.hold("sendMessage", worker.id)
    first = asyncio.create_task(worker.send("路面塌陷"))
    await asyncio.wait_for(slow.reached.wait(), 10)  # the first answer is on its way, stuck
    second = asyncio.create_task(worker.send("路面塌陷，已经有车陷进去了"))
    for _ in range(200):
        draft = draft_of(db, worker)
        if draft is not None and draft["description"] == "路面塌陷，已经有车陷进去了":
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the second message's change waited for the first answer's send")
    assert not first.done() and not second.done()
    sent = len(worker.tg.api.sent_messages(worker.id))
    slow.release()
    await asyncio.gather(first, second)
    answers = worker.tg.api.texts(worker.id)[sent:]
    assert len(answers) == 2 and all(text.startswith(t(ZH, "report.description_set")) for text in answers)
    assert worker.tg.errors == []


async def test_a_failed_send_does_not_stop_the_next_steps(worker: FakeUser, db: Database) -> None:
    """A reply that fails leaves the person's turn order intact: the next message is stored
    and answered."""
    await to_description_step(worker, db)
    worker.tg.api.fail_next("sendMessage", 500)
    await worker.send("路面塌陷")
    turn = await worker.send("井盖缺失")
    assert turn.texts and turn.texts[0].startswith(t(ZH, "report.description_set"))
    draft = draft_of(db, worker)
    assert draft is not None and draft["description"] == "井盖缺失"


async def test_the_eleventh_photo_is_refused(worker: FakeUser, db: Database, settings: Settings) -> None:
    await to_photos_step(worker, db)
    first = await worker.send_album([rich(seed=50 + i) for i in range(6)], caption="乱堆乱放")
    second = await worker.send_album([rich(seed=60 + i) for i in range(5)])
    texts = [text for turn in (*first, *second) for text in turn.texts]
    assert texts.count(t(ZH, "report.too_many_photos", max=10)) == 1
    draft = draft_of(db, worker)
    assert draft is not None and len(draft["photos"]) == 10
    assert rich(seed=64) not in [Path(settings.media_dir, p["original_path"]).read_bytes() for p in draft["photos"]]
    turn = await worker.send_photo(rich(seed=70))
    assert turn.texts == [t(ZH, "report.too_many_photos", max=10)]
    assert photo_count(db, worker) == 10


# --------------------------------------------------------------------------- rate limit


async def test_resident_filing_fifty_reports_in_a_minute(
    resident: FakeUser, command_room: FakeChat, db: Database, settings: Settings, clock: ManualClock
) -> None:
    limit = settings.resident_reports_per_hour
    lat, lon = grid_centre(db, "33010200100201")
    refused = 0
    for i in range(50):
        clock.advance(timedelta(seconds=1))
        turn = await resident.send_photo(rich(seed=100 + i), caption=f"Overflowing bin number {i}")
        if turn.texts == [t(EN, "report.rate_limited", limit=limit)]:
            refused += 1
            continue
        await resident.send_location(lat, lon)
        card = resident.last_message()
        await resident.press(card, buttons(card)[0][0])
        summary = resident.last_message()
        labels = {label for row in buttons(summary) for label in row}
        await resident.press(
            summary,
            t(EN, "report.btn_submit") if t(EN, "report.btn_submit") in labels else t(EN, "report.btn_submit_new"),
        )
        assert "Registered as" in receipt(resident)
    cases = all_cases(db)
    assert len(cases) == limit and refused == 50 - limit
    for number, case in enumerate(cases):
        assert case.description == f"Overflowing bin number {number}"
        assert case.grid_id == grid_id(db, "33010200100201") and case.category_id is not None
        assert (case.source, case.state) == ("resident", "reported")
        assert [m.kind for m in media_of(db, case.id)] == ["photo"]
    # refused photos were not even downloaded
    assert len([p for p in stored_files(settings) if "original" in p.parts]) == limit
    assert draft_of(db, resident) is None


# --------------------------------------------------------------------------- cancel


@pytest.mark.parametrize("step", ["location", "photos", "description", "category", "confirm"])
@pytest.mark.parametrize("how", ["/cancel", "keyboard"])
async def test_cancel_at_every_step(worker: FakeUser, db: Database, step: str, how: str) -> None:
    await worker.send("/report")
    if step != "location":
        await worker.send_location(*grid_centre(db, GRID))
    if step not in ("location", "photos"):
        await worker.send_photo(rich(seed=6))
    if step in ("category", "confirm"):
        await worker.send("树木倒伏")
    if step == "confirm":
        await pick_first_category(worker)
        assert "请确认上报内容" in worker.last_text()
    assert draft_of(db, worker) is not None
    turn = await worker.send("/cancel" if how == "/cancel" else t(ZH, "report.btn_cancel"))
    assert turn.texts == [t(ZH, "report.cancelled")]
    assert draft_of(db, worker) is None
    assert worker.reply_keyboard() == [["📝 上报问题", "📋 我的上报"]]
    turn = await worker.send("/cancel")
    assert turn.texts == [t(ZH, "cancel.nothing")]
    assert all_cases(db) == []


async def test_cancel_button_on_the_summary(worker: FakeUser, db: Database) -> None:
    await to_description_step(worker, db)
    await worker.send("树木倒伏")
    await pick_first_category(worker)
    await worker.press(worker.last_message(), t(ZH, "report.btn_cancel"))
    assert worker.last_text() == t(ZH, "report.cancelled")
    assert draft_of(db, worker) is None and all_cases(db) == []


# --------------------------------------------------------------------------- restart and idle


async def test_the_report_survives_a_restart(
    app: Application,
    tg: FakeTelegram,
    worker: FakeUser,
    command_room: FakeChat,
    api: FakeBotAPI,
    settings: Settings,
    db: Database,
    clock: ManualClock,
) -> None:
    await to_description_step(worker, db)
    await app.shutdown()  # the process stops…
    rt2 = Runtime(settings=settings, db=db, clock=clock, bot_username="GridDeskTestBot")
    app2 = build_application(rt2, request=api)  # … and a new one starts on the same database
    await app2.initialize()
    await app2.post_init(app2)  # type: ignore[misc]
    try:
        tg2 = harness(app2, api)
        again = tg2.user(worker.id, "张网格", language_code="zh-hans")
        turn = await again.send("消防栓漏水")
        assert t(ZH, "report.description_set") in turn.texts[0]
        card = again.last_message()
        await again.press(card, buttons(card)[0][0])
        await again.press(again.last_message(), "✅ 确认上报")
        (case,) = all_cases(db)
        assert case.code in receipt(again)
        assert case.description == "消防栓漏水" and case.grid_id == grid_id(db, GRID) and case.category_id
        assert [m.kind for m in media_of(db, case.id)] == ["photo"]
        assert case.code in (command_room.last_message().caption or "")
        assert draft_of(db, worker) is None
    finally:
        await stop_sender(app2)
        await app2.shutdown()


async def test_an_idle_draft_times_out_politely(
    worker: FakeUser, db: Database, settings: Settings, clock: ManualClock
) -> None:
    await to_description_step(worker, db)
    old = draft_of(db, worker)
    assert old is not None and len(old["photos"]) == 1
    clock.advance(timedelta(minutes=settings.report_idle_minutes - 1))
    turn = await worker.send_sticker()  # still alive: not a timeout
    assert t(ZH, "report.timed_out") not in turn.texts
    clock.advance(timedelta(minutes=settings.report_idle_minutes + 1))
    turn = await worker.send_location(*grid_centre(db, OTHER_GRID))
    assert turn.texts[0] == t(ZH, "report.timed_out")
    assert "柳翠井巷社区第1网格" in turn.texts[1] and "照片" in turn.texts[1]  # a fresh report
    fresh = draft_of(db, worker)
    assert fresh is not None and fresh["photos"] == [] and fresh["token"] != old["token"]
    assert fresh["grid_id"] == grid_id(db, OTHER_GRID)


async def test_text_after_a_timeout_says_so_once(
    worker: FakeUser, db: Database, settings: Settings, clock: ManualClock
) -> None:
    await to_description_step(worker, db)
    clock.advance(timedelta(minutes=settings.report_idle_minutes + 1))
    turn = await worker.send("垃圾桶满了")
    assert turn.texts == [t(ZH, "report.timed_out")]
    assert worker.reply_keyboard() == [["📝 上报问题", "📋 我的上报"]]  # one tap to start again
    assert draft_of(db, worker) is None
    turn = await worker.send("📝 上报问题")
    assert "问题在哪里" in turn.texts[0]


async def test_buttons_of_a_timed_out_draft_are_stale(
    worker: FakeUser, db: Database, settings: Settings, clock: ManualClock
) -> None:
    await to_description_step(worker, db)
    await worker.send("路面塌陷")
    card = worker.last_message()
    clock.advance(timedelta(minutes=settings.report_idle_minutes + 1))
    answer = await worker.press(card, buttons(card)[0][0])
    assert answer is not None and answer.params["text"] == t(ZH, "button.stale")
    assert draft_of(db, worker) is None and all_cases(db) == []


# --------------------------------------------------------------------------- voice


async def test_voice_note_stands_in_for_the_description(worker: FakeUser, command_room: FakeChat, db: Database) -> None:
    await to_description_step(worker, db)
    turn = await worker.send_voice(duration=7)
    assert t(ZH, "report.voice_added", count=1) in turn.texts[0]
    assert t(ZH, "report.ask_category") in turn.texts[0]  # no text description needed
    draft = draft_of(db, worker)
    assert draft is not None and draft["description"] is None and len(draft["voices"]) == 1
    await pick_first_category(worker)
    assert t(ZH, "report.summary_voices", count=1) in worker.last_text()
    await submit(worker)
    (case,) = all_cases(db)
    media = media_of(db, case.id)
    assert sorted(m.kind for m in media) == ["photo", "voice"]
    voice = next(m for m in media if m.kind == "voice")
    assert voice.telegram_file_id and voice.duration is not None
    assert case.description == ""
    assert "语音 1 条" in (command_room.last_message().caption or "")


async def test_voice_note_is_kept_next_to_a_text_description(worker: FakeUser, db: Database) -> None:
    await to_description_step(worker, db)
    await worker.send_voice()
    await worker.send("补充：在 3 号楼后面")
    draft = draft_of(db, worker)
    assert draft is not None and draft["description"] == "补充：在 3 号楼后面" and len(draft["voices"]) == 1
    await pick_first_category(worker)
    await submit(worker)
    (case,) = all_cases(db)
    assert case.description == "补充：在 3 号楼后面"
    assert sorted(m.kind for m in media_of(db, case.id)) == ["photo", "voice"]


# --------------------------------------------------------------------------- menu mid-report


async def test_new_report_button_mid_report_keeps_the_draft(worker: FakeUser, db: Database) -> None:
    """The main menu stays on screen after a photo starts a report; tapping "new report"
    there must not become the description, nor throw the photo away."""
    await worker.send("/cancel")  # shows the main menu
    await worker.send_photo(rich(seed=7))
    before = draft_of(db, worker)
    assert before is not None and len(before["photos"]) == 1
    turn = await worker.send("📝 上报问题")
    assert "问题在哪里" in turn.texts[0]
    assert draft_of(db, worker)["photos"] == before["photos"]  # type: ignore[index]
    assert draft_of(db, worker)["description"] is None  # type: ignore[index]
    turn = await worker.send("/report")
    assert "问题在哪里" in turn.texts[0]
    assert draft_of(db, worker)["photos"] == before["photos"]  # type: ignore[index]


@pytest.mark.parametrize("lang", [ZH, EN])
async def test_a_png_over_its_pixel_budget_is_refused_in_the_users_language(
    tg: FakeTelegram, admin: FakeUser, db: Database, settings: Settings, lang: str
) -> None:
    """The issue's 7000×7000 PNG (49 MP: under the 50 MP limit, ~200 MB decoded, tiny on the
    wire): refused from its header by the photo worker, answered with the PNG budget."""
    from bot.intake.photos import MAX_DECODED_PIXELS

    if lang == ZH:
        user = tg.user(5002, "李网格", language_code="zh-hans")
        await onboard(admin, user, "worker", GRID)
    else:
        user = tg.user(6002, "Mr Wu", language_code="en")
    await to_photos_step(user, db)
    data = _huge_one_bit_png(7000, 7000)
    assert len(data) < 200_000
    turn = await user.send_document(data, file_name="scan.png", mime_type="image/png")
    budget = MAX_DECODED_PIXELS["PNG"] // 1_000_000
    assert turn.texts == [t(lang, "photo.bad_size", min_side=16, max_megapixels=budget)]
    assert "36" in turn.texts[0]
    assert photo_count(db, user) == 0
    assert stored_files(settings) == []


async def test_the_bot_keeps_no_turn_state_for_people_between_their_messages(worker: FakeUser, db: Database) -> None:
    """A person's lock and reply order live while a turn of theirs is under way, not for as
    long as the process runs (a bot that met a million people keeps nothing for them)."""
    await to_description_step(worker, db)
    steps = worker.tg.app.bot_data["user_steps"]
    gc.collect()
    assert worker.id not in steps
    await asyncio.gather(worker.send("路面塌陷"), worker.send("井盖缺失"))
    gc.collect()
    assert worker.id not in steps and len(steps) == 0
    assert draft_of(db, worker) is not None
