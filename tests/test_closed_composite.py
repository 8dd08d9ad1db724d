"""A case closed with an after photo: its cards show before and after side by side (the
composite the reporter verified), stored once under the media dir and re-sent by file_id."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlmodel import select

from bot.runtime import Runtime
from handlers.workers import PHOTOS, WorkerDied
from storage.db import Database
from storage.models import Case
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser
from tests.flows import bound_group, grid_centre, onboard
from tests.images import make_jpeg, rgb

GRID = "33010200100101"


def photo_of(api: FakeBotAPI, message: object) -> Image.Image:
    file_id = message.photo[-1].file_id  # type: ignore[attr-defined]
    return Image.open(io.BytesIO(api.file_bytes(file_id)))


@pytest.mark.parametrize("composites", ["drawn", "worker died"])
async def test_the_closed_card_shows_before_and_after(
    tg: FakeTelegram,
    admin: FakeUser,
    rt: Runtime,
    db: Database,
    api: FakeBotAPI,
    monkeypatch: pytest.MonkeyPatch,
    composites: str,
) -> None:
    """With its worker dead, a composite is simply not shown: the question and the cards go
    without it, nothing is lost."""
    jobs: list[str] = []  # what the photo workers were given (Pillow work stays off the database's threads)
    real_run = PHOTOS.run

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        jobs.append(fn.__name__)
        if composites == "worker died" and fn.__name__ != "process_photo":
            raise WorkerDied()
        return await real_run(fn, *args, **kwargs)

    monkeypatch.setattr(PHOTOS, "run", run)
    worker = tg.user(6201, "钱网格", language_code="zh-hans")
    dispatcher = tg.user(6202, "陈调度", language_code="zh-hans")
    staff = tg.user(6203, "王执法", language_code="zh-hans")
    await onboard(admin, worker, "worker", GRID)
    await onboard(admin, dispatcher, "dispatcher", "QB-CMD")
    await onboard(admin, staff, "staff", "QB-ZF")
    room = await bound_group(tg, admin, -100621, "QB-CMD")
    team = await bound_group(tg, admin, -100622, "QB-ZF")
    lat, lon = grid_centre(db, GRID)
    await worker.send_photo(make_jpeg(color=(200, 0, 0)), caption="小区违建")
    await worker.send_location(lat, lon)
    await worker.press(worker.last_message(), "违法建设")
    await worker.press(worker.last_message(), "✅ 确认上报")
    card = room.last_message()
    assert card is not None
    room_card_id = card.message_id
    before = photo_of(api, card)
    assert before.width < 2 * before.height  # the report photo alone
    await dispatcher.press(card, "派遣至清波街道综合执法平台", chat=room)
    card = team.last_message()
    await staff.press(card, "🙋 认领", chat=team)
    team_card_id = card.message_id
    await staff.press(team.message(team_card_id), "✅ 处置完毕", chat=team)
    await staff.send_photo(make_jpeg(color=(0, 200, 0)), caption="已拆除")
    await staff.press(staff.last_message(), "✅ 完成")
    # still open: the cards keep the report photo
    assert photo_of(api, room.message(room_card_id)).width == before.width
    question = worker.last_message()
    assert bool(question.photo) == (composites == "drawn")
    await worker.press(question, "✅ 确认已解决")
    if composites == "worker died":
        assert jobs.count("write_file") >= 1 and jobs.count("from_files") == 1
        for chat, message_id in ((room, room_card_id), (team, team_card_id)):
            closed = chat.message(message_id)
            assert "已结案" in closed.caption_text
            assert photo_of(api, closed).width == before.width  # the report photo, as before
        return

    for chat, message_id in ((room, room_card_id), (team, team_card_id)):
        closed = chat.message(message_id)
        assert "已结案" in closed.caption_text
        image = photo_of(api, closed).convert("RGB")
        assert image.width > 1.5 * image.height  # two photos side by side
        left, right = (
            rgb(image, (image.width // 4, image.height // 2)),
            rgb(image, (3 * image.width // 4, image.height // 2)),
        )
        assert left[0] > 150 and left[1] < 80  # the red report photo on the left
        assert right[1] > 150 and right[0] < 80  # the green after photo on the right
    # one file under the media dir for the language of both groups; the second chat got it by file_id
    with db.session() as s:
        case = s.exec(select(Case)).one()
    stored = sorted(Path(rt.settings.media_dir, "composites").glob(f"{case.id}-*.jpg"))
    assert [p.name.endswith("-zh_CN.jpg") for p in stored] == [True]
    # two report photos, the verify request's composite, one closed composite drawn for both chats
    assert sorted(jobs) == ["from_files", "process_photo", "process_photo", "write_file"]
    media_edits = [c for c in api.calls if c.method == "editMessageMedia"]
    assert len(media_edits) == 2
    assert sum(1 for c in media_edits if c.files) == 1  # uploaded once, then by file_id
