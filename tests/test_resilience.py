"""Telegram's and the database's trouble: direct replies retried through 5xx and timeouts,
the poller lock surviving a terminated connection (never two pollers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlmodel import Session, col, select
from telegram.ext import Application

from bot import notify
from bot.i18n import t
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk.app import build_application
from handlers.outbox_sender import drain, stop_sender
from storage.db import Database, PollerLock
from storage.models import Outbox, ReportDraft
from tests.conftest import harness
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser
from tests.flows import grid_centre
from tests.images import make_jpeg


@pytest.fixture
async def limited_app(rt: Runtime, settings: Settings, api: FakeBotAPI) -> AsyncIterator[Application]:
    """The production set-up: PTB's rate limiter with our retries."""
    rt.settings = settings.model_copy(update={"rate_limit": True})
    application = build_application(rt, request=api)
    await application.initialize()
    await application.post_init(application)  # type: ignore[misc]
    yield application
    await stop_sender(application)
    await application.shutdown()


async def test_direct_replies_are_retried_through_5xx_and_timeouts(limited_app: Application, api: FakeBotAPI) -> None:
    tg = harness(limited_app, api)
    user = tg.user(8201, "居民", language_code="zh-hans")
    api.fail_next("sendMessage", 502)
    api.fail_next("sendMessage", timeout=True)
    turn = await user.send("/help")
    assert turn.texts and "/report" in turn.texts[-1]
    statuses = [c.status for c in api.calls if c.method == "sendMessage"]
    assert statuses[-3:] == [502, 0, 200]


async def test_a_bad_request_is_not_retried(limited_app: Application, api: FakeBotAPI) -> None:
    tg = harness(limited_app, api)
    user = tg.user(8202, "居民", language_code="zh-hans")
    tg.raise_errors = False
    api.fail_next("sendMessage", 400, "Bad Request: injected")
    await user.send("/help")
    assert [c.status for c in api.calls if c.method == "sendMessage"][:1] == [400]


def _terminate(db: Database, lock: PollerLock) -> None:
    pid = lock._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    lock._conn.commit()
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        conn.commit()


def test_poller_lock_survives_terminated_connections(db: Database) -> None:
    if db.sqlite:
        pytest.skip("the poller lock is PostgreSQL's (SQLite is one process)")
    active, standby = PollerLock(Database(db.url)), PollerLock(Database(db.url))
    try:
        assert active.try_acquire() and active.still_held()
        assert not standby.try_acquire()
        _terminate(db, standby)  # the standby's connection dies: it keeps standing by
        assert not standby.try_acquire()  # active still holds it
        _terminate(db, active)  # the active process's lock connection dies
        assert not active.still_held()  # it notices (and stops polling)
        assert standby.try_acquire()  # the standby takes over
        assert not active.try_acquire()  # reconnects, and now stands by: never two pollers
    finally:
        active.release()
        standby.release()
        active.db.dispose()
        standby.db.dispose()


def test_statements_stay_prepared_across_units_of_work(db: Database) -> None:
    """On PostgreSQL a statement run often is prepared once per connection and then only
    bound: a unit of work that ended by a rollback (the pool's, after a read) made psycopg
    forget them all, so every statement was parsed and planned again."""
    if db.sqlite:
        pytest.skip("prepared statements are PostgreSQL's")
    fresh = Database(db.url)
    query = select(ReportDraft).where(col(ReportDraft.user_id) == 1)
    try:
        for _ in range(3):
            with fresh.read() as s:
                s.exec(query).all()
            with fresh.session() as s:
                s.exec(query).all()
        with fresh.read() as s:
            prepared = s.connection().exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ("%FROM reportdraft%",)
            )
            assert len(prepared.all()) == 1
    finally:
        fresh.dispose()


def test_reads_on_postgresql_open_no_transaction(db: Database) -> None:
    """A read's statements each see the latest commit, as at READ COMMITTED inside a
    transaction, without the BEGIN and COMMIT round trips; writes keep their transaction."""
    if db.sqlite:
        pytest.skip("SQLite's read transaction is one snapshot, and costs no round trip")
    own_transaction = "SELECT now() = statement_timestamp() FROM pg_sleep(0.01)"
    with db.read() as s:
        s.connection().exec_driver_sql("SELECT 1")
        assert s.connection().exec_driver_sql(own_transaction).scalar() is True
    with db.session() as s:
        s.connection().exec_driver_sql("SELECT 1")
        assert s.connection().exec_driver_sql(own_transaction).scalar() is False


def test_a_read_that_writes_is_refused(db: Database) -> None:
    """Database.read is for reads: on PostgreSQL each of its statements commits at once, so
    a write there would escape its unit of work. It is refused on both databases, untouched."""
    with pytest.raises(RuntimeError, match="may not write"), db.read() as s:
        s.add(ReportDraft(user_id=1, step="location"))
        s.flush()
    with db.read() as s:
        assert s.exec(select(ReportDraft)).all() == []


async def test_a_row_refused_for_good_alerts_the_admins(
    app: Application, tg: FakeTelegram, admin: FakeUser, rt: Runtime, api: FakeBotAPI
) -> None:
    group = tg.group(-100820, "某群", admins=[admin], bot_status="administrator")
    with rt.db.session() as s:
        notify.text_to_user(s, telegram_id=group.id, key="chat.lost", now=rt.clock.now(), unit="x", title="t", open=1)
    api.fail_next("sendMessage", 400, "Bad Request: can't parse entities")
    await drain(app)
    with rt.db.read() as s:
        states = {r.chat_id: r.state for r in s.exec(select(Outbox))}
    assert states[group.id] == "failed"
    assert "无法送达" in (admin.last_text() or "") and str(group.id) in (admin.last_text() or "")


async def test_sqlite_locked_by_another_writer_says_busy_and_keeps_the_step(
    tg: FakeTelegram, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds SQLite's lock past our busy wait (scaled: 0.3 s for 10 s)."""
    if not db.sqlite:
        pytest.skip("SQLite's lock")
    import sqlite3

    import storage.db

    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    db.engine.dispose()  # new connections wait 0.3 s
    user = tg.user(8301, "居民", language_code="zh-hans")
    turn = await user.send("/report")
    assert "问题在哪里" in turn.texts[0]
    lat, lon = grid_centre(db, "33010200100101")
    tg.raise_errors = False  # the error handler answers it; the test looks at the answer
    other = sqlite3.connect(db.url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        turn = await user.send_location(lat, lon)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert turn.texts == [t("zh_CN", "error.busy")]
    assert not turn.errors or all("locked" in str(e) for e in turn.errors)
    turn = await user.send_location(lat, lon)  # the step was kept: the same location, again
    assert "照片" in turn.texts[0]


def test_sqlite_writers_of_one_process_queue_in_it_and_give_up_as_sqlite_would(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This process's writers wait for each other in a queue of ours (no busy-handler
    sleeps); one kept waiting past the busy timeout fails as SQLite would, "locked"."""
    if not db.sqlite:
        pytest.skip("SQLite's lock")
    import threading

    from sqlalchemy.exc import OperationalError

    import storage.db
    from storage.models import User

    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    holding, done = threading.Event(), threading.Event()

    def first_writer() -> None:
        with db.session() as s:
            s.add(User(telegram_id=8303, first_name="A"))
            s.flush()
            holding.set()
            done.wait(5)

    thread = threading.Thread(target=first_writer)
    thread.start()
    try:
        assert holding.wait(5)
        with pytest.raises(OperationalError, match="locked"), db.session() as s:
            s.add(User(telegram_id=8304, first_name="B"))
        with db.read() as s:  # readers do not queue (WAL)
            assert s.exec(select(User).where(User.telegram_id == 8303)).first() is None
    finally:
        done.set()
        thread.join()
    with db.session() as s:  # the queue moves on
        s.add(User(telegram_id=8304, first_name="B"))
    with db.read() as s:
        assert {u.telegram_id for u in s.exec(select(User).where(col(User.telegram_id).in_([8303, 8304])))} == {
            8303,
            8304,
        }


async def test_nul_and_lone_surrogates_are_cleaned_on_the_way_in(rt: Runtime, db: Database) -> None:
    from storage.models import User

    with db.session() as s:
        s.add(User(telegram_id=8302, first_name="A\x00B\ud800C", created_at=rt.clock.now(), updated_at=rt.clock.now()))
    with db.session() as s:
        user = s.exec(select(User).where(User.telegram_id == 8302)).one()
    assert user.first_name == "ABC"


async def test_a_full_disk_is_one_alert_not_a_traceback_per_photo(
    tg: FakeTelegram, admin: FakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import handlers.media

    async def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(handlers.media, "decode_photo", full)
    user = tg.user(8303, "居民", language_code="zh-hans")
    await user.send("/report")
    for _ in range(3):
        turn = await user.send_photo(make_jpeg())
        assert user.last_text() == t("zh_CN", "photo.storage_full")
        assert turn.errors == []
    alerts = [text for text in admin.texts() if "磁盘已满" in text]
    assert len(alerts) == 1


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://griddesk:s3cret@db:5432/griddesk", "postgresql://griddesk:***@db:5432/griddesk"),
        ("postgresql://griddesk@db/griddesk?password=s3cret", "postgresql://griddesk:***@db/griddesk"),
        (
            "postgresql://griddesk@db/griddesk?sslmode=require&password=s3cret",
            "postgresql://griddesk:***@db/griddesk?sslmode=require",
        ),
        ("postgresql://db/griddesk?password=s3cret", "postgresql://***@db/griddesk"),
        ("sqlite:///griddesk.db", "sqlite:///griddesk.db"),
    ],
)
def test_database_password_is_masked(url: str, shown: str) -> None:
    from storage.db import mask_secrets, mask_url

    assert mask_url(url) == shown
    if "s3cret" in url:
        assert "s3cret" not in mask_secrets(f"cannot connect to {url}: password s3cret refused", url)


def test_database_password_is_masked_in_logs_and_startup_errors(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from griddesk.startup import MaskDatabasePassword, StartupError, open_database

    url = "postgresql://griddesk@127.0.0.1:1/griddesk?password=s3cret&connect_timeout=1"
    settings = Settings(TELEGRAM_BOT_TOKEN="1:x", DATABASE_URL=url, _env_file=None)
    with pytest.raises(StartupError) as caught:
        open_database(settings)
    assert "s3cret" not in str(caught.value) and "griddesk:***@" in str(caught.value)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "connecting to %s", (url,), None)
    MaskDatabasePassword(url).filter(record)
    assert "s3cret" not in record.getMessage() and "***" in record.getMessage()


async def test_a_file_path_naming_a_local_file_is_refused(
    tg: FakeTelegram, api: FakeBotAPI, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tg.user(8304, "居民", language_code="zh-hans")
    await user.send("/report")
    original = api._api_getFile

    def local_path(call):
        answer = original(call)
        answer["file_path"] = "/etc/hostname"  # a forged (or misconfigured) Bot API
        return answer

    monkeypatch.setattr(api, "_api_getFile", local_path)
    await user.send_photo(make_jpeg())
    assert user.last_text() == t("zh_CN", "photo.not_image")


async def test_a_photo_the_database_did_not_keep_is_never_acknowledged(
    tg: FakeTelegram, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops as the photo is saved: the reporter hears "busy", not "photo
    received" (they would go on to the location step with a draft that has no photo)."""
    from sqlalchemy.exc import OperationalError

    from bot.intake import drafts

    real_save = drafts.save_in
    failures: list[dict[str, object]] = []

    def save_fails_once(s: Session, rt: Runtime, draft: drafts.Draft) -> bool:
        if draft.photos and not failures:
            failures.append(draft.photos[-1])
            raise OperationalError("UPDATE drafts", {}, Exception("server closed the connection unexpectedly"))
        return real_save(s, rt, draft)

    monkeypatch.setattr(drafts, "save_in", save_fails_once)
    user = tg.user(8302, "居民", language_code="zh-hans")
    await user.send("/report")
    tg.raise_errors = False  # the error handler answers it; the test looks at the answer
    turn = await user.send_photo(make_jpeg(), caption="")
    assert failures
    assert turn.texts == [t("zh_CN", "error.busy")]
    turn = await user.send_photo(make_jpeg(), caption="")
    assert "已收到 1 张照片" in turn.texts[0]
    with db.read() as s:
        (row,) = s.exec(select(ReportDraft)).all()
        assert len(row.data["photos"]) == 1
