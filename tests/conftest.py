"""Shared fixtures: a migrated database with the sample organisation, a runtime with a
controllable clock, and the real Application wired to the fake Bot API.

Tests run on SQLite by default; set TEST_DATABASE_URL (never DATABASE_URL, so a real
database is never emptied by mistake) to run them on PostgreSQL.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from telegram.ext import Application

from bot.clock import ManualClock
from bot.errors import DomainError
from bot.org.org_file import DEFAULT_ORG_FILE, load_org_file
from bot.runtime import Runtime
from bot.settings import Settings
from griddesk.app import build_application
from handlers.outbox_sender import drain, stop_sender
from handlers.workers import shutdown_all as shutdown_workers
from storage.db import Database, truncate_all
from storage.migrate import upgrade
from storage.org_import import import_org
from tests.fakebot import FakeBotAPI, FakeTelegram, FakeUser

TEST_DB_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
ADMIN_ID = 900001
BOT_TOKEN = "123456:TEST-token"
# A Monday morning in Shanghai: inside working hours, far from holidays.
START = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


EXIT_GRACE_S = 120
_run_status = 0


def pytest_report_header() -> str:
    return f"GridDesk database: {TEST_DB_URL or 'SQLite (one file per test)'}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _run_status
    _run_status = int(exitstatus)
    shutdown_workers()  # their workers are processes: never left for interpreter exit to wait on


def pytest_unconfigure(config: pytest.Config) -> None:
    """At exit the interpreter waits for every thread concurrent.futures started; one stuck there
    once held a CI run to its time limit after every test had passed. If this process is still
    here EXIT_GRACE_S after the run, print every thread's stack (what to fix) and exit with the
    run's status."""

    def watchdog() -> None:
        time.sleep(EXIT_GRACE_S)
        sys.stderr.write(f"\n== pytest has not exited {EXIT_GRACE_S} s after the run; threads still running:\n")
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(_run_status)

    threading.Thread(target=watchdog, name="exit-watchdog", daemon=True).start()


def load_sample(db: Database) -> None:
    spec = load_org_file(DEFAULT_ORG_FILE)
    with db.session() as s:
        import_org(s, spec)


@pytest.fixture(autouse=True)
def _root_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that runs the `griddesk` command gets its logging set up (griddesk/logs.py
    configure: a handler on the stderr of that moment, a capture closed after the test): the
    root logger's handlers and level are put back after each test."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once per run: a SQLite template file to copy, or a PostgreSQL schema of
    this run's own (so two runs on one database never empty each other's tables)."""
    if TEST_DB_URL:
        schema = f"griddesk_test_{os.getpid()}"
        server = Database(TEST_DB_URL)
        with server.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = TEST_DB_URL + ("&" if "?" in TEST_DB_URL else "?") + f"options=-csearch_path%3D{schema}"
        db = Database(url)
        upgrade(db)
        db.dispose()
        yield url
        with server.engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        server.dispose()
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    load_sample(db)
    db.dispose()
    yield str(path)


@pytest.fixture
def db(_template: str, tmp_path: Path) -> Iterator[Database]:
    if TEST_DB_URL:
        database = Database(_template)
        truncate_all(database)
        load_sample(database)
    else:
        path = tmp_path / "griddesk.db"
        shutil.copy(_template, path)
        database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return Settings(
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        DATABASE_URL=db.url,
        GRIDDESK_MEDIA_DIR=str(tmp_path / "media"),
        GRIDDESK_ADMIN_IDS=str(ADMIN_ID),
        # PTB's limiter really sleeps (20 messages a minute per group); the fake has no limits
        GRIDDESK_RATE_LIMIT="false",
        _env_file=None,
    )


@pytest.fixture
def rt(settings: Settings, db: Database, clock: ManualClock) -> Runtime:
    return Runtime(settings=settings, db=db, clock=clock, bot_username="GridDeskTestBot")


@pytest.fixture
def api(clock: ManualClock) -> FakeBotAPI:
    return FakeBotAPI(now=clock.now)


@pytest.fixture
async def app(rt: Runtime, api: FakeBotAPI) -> AsyncIterator[Application]:
    application = build_application(rt, request=api)
    await application.initialize()
    await application.post_init(application)  # type: ignore[misc]
    yield application
    await stop_sender(application)  # what post_stop does in a running bot
    await application.shutdown()


def harness(app: Application, api: FakeBotAPI) -> FakeTelegram:
    """The fake Telegram driving `app`. A DomainError is how a rule says no; the error
    handler answers it politely. After each update the outbox is drained, so a test sees
    every message the update caused; the sender's own tasks (named griddesk-…) live on
    between updates and are not waited for."""

    async def after_update() -> None:
        await drain(app)

    return FakeTelegram(
        app,
        api,
        expected_errors=(DomainError,),
        after_update=after_update,
        ignore_task=lambda task: task.get_name().startswith("griddesk-"),
    )


@pytest.fixture
def tg(app: Application, api: FakeBotAPI) -> FakeTelegram:
    return harness(app, api)


@pytest.fixture
def admin(tg: FakeTelegram) -> FakeUser:
    return tg.user(ADMIN_ID, "管理员", username="boss", language_code="zh-hans")
