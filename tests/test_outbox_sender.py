"""The outbox sender: per-chat fairness, one edit for many causes, file_id reuse, captions
too long for a photo, retries, and bookkeeping that survives a database hiccup.

Rows are queued straight into the outbox (as a service's transaction would) and the
sender is drained; assertions are on the order and kind of the fake Bot API's calls,
never on wall-clock time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from telegram.error import RetryAfter

import handlers.outbox_sender as sender_module
from bot import outbox as outbox_service
from bot.clock import ManualClock
from bot.intake import submit as intake
from bot.intake.photos import process_photo
from bot.people import identity as people
from bot.runtime import Runtime
from griddesk.app import RetryingRateLimiter
from handlers.outbox_sender import FROM_OUTBOX, drain
from storage import outbox as rows
from storage.db import Database
from storage.models import CaseCard, CaseMedia, Category, Grid, Outbox
from tests.fakebot import Call, FakeBotAPI, FakeTelegram, buttons
from tests.flows import statements_of
from tests.images import make_jpeg

GRID = "33010200100101"
GROUP = -100777
ROOM = -100778
RESIDENT = 7701
REPORTER = 7700


@pytest.fixture
def chats(tg: FakeTelegram) -> dict[str, Any]:
    """Chats the fake knows; none is bound, so filing a case queues nothing by itself."""
    return {
        "group": tg.group(GROUP, "Busy team"),
        "room": tg.group(ROOM, "Command room"),
        "resident": tg.user(RESIDENT, "Resident", language_code="en"),
        "reporter": tg.user(REPORTER, "Reporter", language_code="en"),
    }


def new_case(rt: Runtime, db: Database, n: int = 0, *, photo: bool = True, description: str = "") -> int:
    reporter = people.identify(rt, people.Profile(telegram_id=REPORTER, first_name="Reporter"))
    with db.session() as s:
        grid = s.exec(select(Grid).where(Grid.code == GRID)).one()
        category = s.exec(select(Category)).first()
        assert grid.id is not None and category is not None and category.id is not None
        lat, lon = grid.centre_lat or 30.0, grid.centre_lon or 120.0
    photos: tuple[intake.PhotoIn, ...] = ()
    if photo:
        stored = process_photo(make_jpeg(color=(n % 250, 80, 160)), rt.settings.media_dir, default_tz=rt.settings.tz)
        photos = (
            intake.PhotoIn(
                file_id=f"reporter-file-{n}",
                sha256=stored.sha256,
                original_path=str(stored.original_path),
                jpeg_path=str(stored.jpeg_path),
                thumb_path=str(stored.thumb_path),
                width=stored.width,
                height=stored.height,
            ),
        )
    done = intake.submit_report(
        rt,
        intake.ReportIn(
            reporter_user_id=reporter.user_id,
            source="resident",
            latitude=lat,
            longitude=lon,
            grid_id=grid.id,
            category_id=category.id,
            description=description or f"case number {n}",
            photos=photos,
        ),
    )
    return done.case_id


def queue_card(db: Database, clock: ManualClock, case_id: int, chat_id: int, purpose: str = "command") -> int:
    with db.session() as s:
        rows.enqueue(s, chat_id=chat_id, kind="case_card", case_id=case_id, purpose=purpose, now=clock.now())
    return newest_row(db)


def queue_text(db: Database, clock: ManualClock, chat_id: int, key: str = "cancel.nothing") -> int:
    with db.session() as s:
        rows.enqueue(s, chat_id=chat_id, kind="user_text", payload={"key": key}, now=clock.now())
    return newest_row(db)


def newest_row(db: Database) -> int:
    with db.read() as s:
        return rows.newest_id(s)


def states(db: Database) -> dict[int, str]:
    with db.read() as s:
        return {r.id: r.state for r in s.exec(select(Outbox))}  # type: ignore[misc]


def sends(api: FakeBotAPI, since: int = 0) -> list[Call]:
    kinds = {"sendMessage", "sendPhoto", "editMessageText", "editMessageCaption", "sendMediaGroup"}
    return [c for c in api.calls[since:] if c.method in kinds]


def card_of(db: Database, case_id: int, chat_id: int, purpose: str = "command") -> CaseCard:
    with db.read() as s:
        return s.exec(
            select(CaseCard).where(
                CaseCard.case_id == case_id, CaseCard.chat_id == chat_id, CaseCard.purpose == purpose
            )
        ).one()


# --- fairness ----------------------------------------------------------------------------


async def test_a_private_notice_does_not_wait_behind_a_groups_backlog(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    cases = [new_case(rt, db, n, photo=False) for n in range(40)]
    for case_id in cases:
        queue_card(db, clock, case_id, GROUP)
    notice = queue_text(db, clock, RESIDENT)  # committed after all 40 cards
    start = len(api.calls)

    assert await drain(app) == 41

    order = [int(c.params["chat_id"]) for c in sends(api, start)]
    assert order.count(GROUP) == 40 and order.count(RESIDENT) == 1
    # Chats take turns: the notice goes out among the first sends, long before the
    # group's last card (the old single FIFO sent it 41st).
    assert order.index(RESIDENT) < 5
    assert order.index(RESIDENT) < len(order) - 1 - order[::-1].index(GROUP)
    assert chats["resident"].last_text()
    assert set(states(db).values()) == {"sent"} and notice in states(db)


def test_budgets_pace_a_group_and_leave_other_chats_alone() -> None:
    budgets = outbox_service.Budgets()
    now = 1000.0
    for n in range(20):  # one a second: the group's twenty for this minute
        assert budgets.chat_ready_at(GROUP, now + n) == now + n
        budgets.spend(GROUP, now + n)
    assert budgets.chat_ready_at(GROUP, now + 20) == now + 60  # the twenty-first waits for the minute
    assert budgets.chat_ready_at(RESIDENT, now + 20) == now + 20  # nobody else does
    budgets.spend(RESIDENT, now + 20)
    assert budgets.chat_ready_at(RESIDENT, now + 20.5) == now + 21  # about one a second in a private chat
    budgets.pause(RESIDENT, now + 30)  # Telegram said "retry after"
    assert budgets.chat_ready_at(RESIDENT, now + 22) == now + 30
    assert RESIDENT in budgets.paused(now + 22)
    many = outbox_service.Budgets()
    for chat in range(1, 31):
        many.spend(chat, now)
    assert many.overall_ready_at(now) == now + 1  # thirty a second overall
    assert outbox_service.Budgets(enabled=False).chat_ready_at(GROUP, now) == now


# --- coalescing --------------------------------------------------------------------------


async def test_three_causes_for_one_card_make_one_edit(
    app,
    rt: Runtime,
    db: Database,
    clock: ManualClock,
    api: FakeBotAPI,
    chats: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case_id = new_case(rt, db)
    queue_card(db, clock, case_id, ROOM)
    await drain(app)
    posted = card_of(db, case_id, ROOM)
    assert posted.is_photo

    views: list[int] = []
    real_view = outbox_service.view_in  # the claim reads the views its rows show

    def counting_view(s: Any, rt_: Runtime, case: Any) -> Any:
        views.append(case.id)
        return real_view(s, rt_, case)

    monkeypatch.setattr(outbox_service, "view_in", counting_view)
    ids = [queue_card(db, clock, case_id, ROOM) for _ in range(3)]  # e.g. claimed, noted, extended
    ids.append(queue_card(db, clock, case_id, GROUP, purpose="team"))  # the same case elsewhere
    start = len(api.calls)
    assert await drain(app) == 4
    room_sends = [c for c in sends(api, start) if int(c.params["chat_id"]) == ROOM]
    assert [c.method for c in room_sends] == ["editMessageCaption"]
    assert int(room_sends[0].params["message_id"]) == posted.message_id
    assert views == [case_id]  # one read of the case for both chats
    assert all(states(db)[i] == "sent" for i in ids)


async def test_rows_for_one_new_card_post_it_once(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    case_id = new_case(rt, db, photo=False)
    for _ in range(3):
        queue_card(db, clock, case_id, ROOM)
    start = len(api.calls)
    assert await drain(app) == 3
    assert [c.method for c in sends(api, start)] == ["sendMessage"]
    assert card_of(db, case_id, ROOM).message_id == chats["room"].last_message().message_id


# --- file_id reuse -----------------------------------------------------------------------


async def test_a_cards_photo_is_uploaded_once_then_sent_by_file_id(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    case_id = new_case(rt, db)
    queue_card(db, clock, case_id, ROOM)
    await drain(app)
    queue_card(db, clock, case_id, GROUP, purpose="team")
    queue_card(db, clock, case_id, REPORTER, purpose="reporter")
    await drain(app)
    photos = api.calls_to("sendPhoto")
    assert len(photos) == 3 and all(c.ok for c in photos)
    first, *again = photos
    assert "photo" in first.files  # our JPEG, uploaded
    uploaded_as = first.result["photo"][-1]["file_id"]
    for call in again:
        assert call.files == {} and call.params["photo"] == uploaded_as  # Telegram's copy, by file_id
    assert chats["group"].last_message().photo and chats["reporter"].last_message().photo


async def test_a_refused_file_id_is_forgotten_and_the_photo_uploaded_again(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    case_id = new_case(rt, db)
    queue_card(db, clock, case_id, ROOM)
    await drain(app)
    api.fail_next("sendPhoto", 400, "Bad Request: wrong file identifier/HTTP URL specified")
    queue_card(db, clock, case_id, GROUP, purpose="team")
    assert await drain(app) == 1
    refused, uploaded = api.calls_to("sendPhoto")[1:]
    assert not refused.ok and refused.files == {}
    assert uploaded.ok and "photo" in uploaded.files


# --- captions too long -------------------------------------------------------------------


async def test_caption_refused_as_too_long_becomes_photo_then_text_with_buttons(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    case_id = new_case(rt, db, description="A long description. " * 40)
    api.fail_next("sendPhoto", 400, "Bad Request: message caption is too long")
    row = queue_card(db, clock, case_id, ROOM)
    start = len(api.calls)
    assert await drain(app) == 1
    assert states(db)[row] == "sent"  # never a permanent failure
    refused, photo, text = sends(api, start)
    assert (refused.method, refused.ok) == ("sendPhoto", False)
    assert photo.method == "sendPhoto" and photo.ok and "reply_markup" not in photo.params
    assert "\n" not in photo.params["caption"]  # the card's first line
    assert text.method == "sendMessage" and text.ok
    card = chats["room"].last_message()
    assert card.text and "A long description." in card.text
    assert buttons(card) and buttons(card)[-1]  # the command room's buttons, on the text
    saved = card_of(db, case_id, ROOM)
    assert saved.message_id == card.message_id and not saved.is_photo
    # From now on the card is the text message, edited in place.
    queue_card(db, clock, case_id, ROOM)
    start = len(api.calls)
    await drain(app)
    assert [c.method for c in sends(api, start)] == ["editMessageText"]
    assert int(sends(api, start)[0].params["message_id"]) == card.message_id


async def test_a_caption_we_know_is_too_long_is_never_tried(
    app,
    rt: Runtime,
    db: Database,
    clock: ManualClock,
    api: FakeBotAPI,
    chats: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case_id = new_case(rt, db)
    queue_card(db, clock, case_id, ROOM)
    await drain(app)
    photo_card = card_of(db, case_id, ROOM)
    assert photo_card.is_photo
    # The card grows past what a caption holds (here: the limit shrinks under it).
    monkeypatch.setattr(sender_module, "CAPTION_LIMIT", 60)
    queue_card(db, clock, case_id, ROOM)
    start = len(api.calls)
    await drain(app)
    shrink, text = sends(api, start)
    assert shrink.method == "editMessageCaption" and int(shrink.params["message_id"]) == photo_card.message_id
    assert "reply_markup" not in shrink.params  # the buttons move to the text
    assert text.method == "sendMessage" and text.ok
    assert buttons(chats["room"].last_message())
    moved = card_of(db, case_id, ROOM)
    assert moved.message_id == chats["room"].last_message().message_id and not moved.is_photo


# --- failures ----------------------------------------------------------------------------


async def test_a_database_error_on_one_rows_bookkeeping_does_not_stop_the_others(
    app,
    rt: Runtime,
    db: Database,
    clock: ManualClock,
    api: FakeBotAPI,
    chats: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox_service, "BOOKKEEPING_RETRIES", (0, 0, 0))
    ids = [queue_text(db, clock, chat) for chat in (GROUP, RESIDENT, ROOM, RESIDENT)]
    broken, flaky = ids[0], ids[2]
    failures = {broken: 99, flaky: 2}  # the first never records, the other on its third try
    real = outbox_service.delivered_all

    def delivered_all(rt_: Runtime, sent: list[outbox_service.Sent]) -> None:
        for each in sent:
            if failures.get(each.job.id, 0) > 0:
                failures[each.job.id] -= 1
                raise OperationalError("UPDATE outbox", {}, Exception("database is locked"))
        real(rt_, sent)

    monkeypatch.setattr(outbox_service, "delivered_all", delivered_all)
    assert await drain(app) == 4  # all four messages went out
    assert len([c for c in sends(api) if c.ok]) == 4
    after = states(db)
    assert after[broken] == "sending"  # left to the lease: sent again later, never lost
    assert after[flaky] == "sent" and after[ids[1]] == "sent" and after[ids[3]] == "sent"


async def test_429_pauses_that_chat_only_and_5xx_retries_with_backoff(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    await drain(app)  # the sender's first claim is over: one claim takes all the rows below
    api.fail_next("sendMessage", retry_after=7)  # whichever chat's message goes first
    queued = {chat: [queue_text(db, clock, chat), queue_text(db, clock, chat)] for chat in (GROUP, RESIDENT, ROOM)}
    await drain(app)
    (limited_call,) = [c for c in api.calls_to("sendMessage") if not c.ok]
    limited_chat = int(limited_call.params["chat_id"])
    with db.read() as s:
        got = {r.id: r for r in s.exec(select(Outbox))}
    limited, later = (got[i] for i in queued[limited_chat])
    assert limited.state == "pending" and limited.attempts == 1
    assert (limited.next_attempt_at - clock.now()).total_seconds() == pytest.approx(7, abs=1)
    assert later.state == "pending" and later.attempts == 0  # given back untried, for after the pause
    assert (later.next_attempt_at - clock.now()).total_seconds() == pytest.approx(7, abs=1)
    others = [i for chat, ids in queued.items() if chat != limited_chat for i in ids]
    assert all(got[i].state == "sent" for i in others)  # the other chats went on

    api.fail_next("sendMessage", 502)
    broken = queue_text(db, clock, next(chat for chat in queued if chat != limited_chat))
    await drain(app)
    with db.read() as s:
        row = s.get(Outbox, broken)
        assert row is not None and row.state == "pending" and row.attempts == 1
        assert (row.next_attempt_at - clock.now()).total_seconds() == pytest.approx(5, abs=1)


async def test_a_blocked_chat_fails_its_queue_without_more_calls(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    await drain(app)  # the sender's first claim is over: one claim takes all the rows below
    api.block(RESIDENT)
    ids = [queue_text(db, clock, RESIDENT) for _ in range(3)]
    start = len(api.calls)
    await drain(app)
    assert len(sends(api, start)) == 1
    assert {states(db)[i] for i in ids} == {"failed"}


# --- lifecycle and the rate limiter --------------------------------------------------------


async def test_the_sender_runs_in_the_background_and_flush_does_not_wait(
    app, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert sender_module.SENDER_TASK_NAME in names
    queue_text(db, clock, RESIDENT)
    start = len(api.calls)
    await sender_module.flush(app)
    assert sends(api, start) == []  # nothing sent inline
    assert await drain(app) == 1
    assert len(sends(api, start)) == 1


async def test_direct_replies_are_retried_after_a_429_but_outbox_sends_are_not() -> None:
    limiter = RetryingRateLimiter(overall_max_rate=0, group_max_rate=0)
    await limiter.initialize()
    calls: list[int] = []

    async def callback() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise RetryAfter(0)
        return {"ok": True}

    async def send() -> Any:
        return await limiter.process_request(callback, (), {}, "sendMessage", {"chat_id": 1}, None)

    assert await send() == {"ok": True} and len(calls) == 2  # a direct reply: retried

    calls.clear()

    async def from_outbox() -> Any:
        FROM_OUTBOX.set(True)
        return await send()

    with pytest.raises(RetryAfter):
        await asyncio.create_task(from_outbox())
    assert len(calls) == 1  # the outbox sender reschedules it itself
    await limiter.shutdown()


async def test_paced_sends_still_take_turns(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    """With budgets on (short windows here), a chat over its budget waits while the others go."""
    await sender_module.stop_sender(app)
    quick = (outbox_service.Window(1, 0.02),)
    paced = sender_module.Sender(app, budgets=outbox_service.Budgets(private=quick, group=quick))
    app.bot_data["outbox_sender"] = paced
    paced.start()
    for _ in range(6):
        queue_text(db, clock, GROUP)
    queue_text(db, clock, RESIDENT)
    start = len(api.calls)
    assert await drain(app) == 7
    order = [int(c.params["chat_id"]) for c in sends(api, start)]
    assert order.index(RESIDENT) <= 2 and order.count(GROUP) == 6


async def test_rows_held_behind_a_budget_keep_their_lease_and_go_back_at_stop(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    await sender_module.stop_sender(app)
    slow = (outbox_service.Window(1, 3600.0),)  # one send to the group, then a long wait
    paced = sender_module.Sender(app, budgets=outbox_service.Budgets(group=slow))
    paced.start()
    first, second = queue_text(db, clock, GROUP), queue_text(db, clock, GROUP)
    paced.wake()
    for _ in range(500):  # until the first is sent (the second waits for the budget)
        if states(db)[first] == "sent":
            break
        await asyncio.sleep(0.01)
    assert states(db) == {first: "sent", second: "sending"}
    clock.advance(outbox_service.LEASE * 0.6)  # past half the lease: the sender renews it
    paced.wake()

    def leased_until() -> Any:
        with db.read() as s:
            row = s.get(Outbox, second)
            assert row is not None
            return row.next_attempt_at

    for _ in range(500):
        if leased_until() > clock.now() + outbox_service.LEASE * 0.9:
            break
        await asyncio.sleep(0.01)
    assert leased_until() > clock.now() + outbox_service.LEASE * 0.9  # another sender keeps off
    await paced.stop()  # never tried: given back at once, the claim not counted
    with db.read() as s:
        row = s.get(Outbox, second)
        assert row is not None and (row.state, row.attempts) == ("pending", 0)
        assert row.next_attempt_at <= clock.now()


async def test_a_restarted_sender_sends_a_photo_telegram_already_has_by_its_kept_file_id(
    app, rt: Runtime, db: Database, clock: ManualClock, api: FakeBotAPI, chats: dict
) -> None:
    case_id = new_case(rt, db)
    queue_card(db, clock, case_id, ROOM)
    await drain(app)
    uploaded_as = api.calls_to("sendPhoto")[0].result["photo"][-1]["file_id"]
    with db.read() as s:
        kept = [m.jpeg_file_id for m in s.exec(select(CaseMedia).where(CaseMedia.case_id == case_id))]
    assert kept == [uploaded_as]
    app.bot_data[sender_module._FILE_IDS_KEY] = outbox_service.FileIds()  # what a new process starts with
    await sender_module.stop_sender(app)
    sender_module.start_sender(app)
    queue_card(db, clock, case_id, GROUP, purpose="team")
    await drain(app)
    again = api.calls_to("sendPhoto")[-1]
    assert again.ok and again.files == {} and again.params["photo"] == uploaded_as


def test_sends_that_finish_together_are_recorded_in_one_statement(
    rt: Runtime, db: Database, clock: ManualClock
) -> None:
    ids = [queue_text(db, clock, chat) for chat in (GROUP, RESIDENT, ROOM)]
    jobs = outbox_service.claim(rt)
    assert sorted(job.id for job in jobs) == ids
    with statements_of(db) as seen:
        outbox_service.delivered_all(rt, [outbox_service.Sent(job, 500 + job.id) for job in jobs])
    assert [sql.split()[0] for sql in seen if not sql.startswith("BEGIN")] == ["UPDATE"]
    with db.read() as s:
        recorded = {r.id: (r.state, r.message_id, r.sent_at) for r in s.exec(select(Outbox))}
    assert recorded == {i: ("sent", 500 + i, clock.now()) for i in ids}
