"""Fault tests against a real `griddesk run` subprocess and an HTTP Bot API that misbehaves
(tests/fault_api.py): kill -9 during concurrent reporters, and a proxy injecting 502s,
dropped connections and lost answers. Reporters are threads playing a resident's whole
report (photo with a description, location, category, submit) and waiting for their code.

The counts each test measures are printed (pytest -s shows them) and asserted.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.i18n import t
from bot.outbox import backoff_seconds
from storage.db import Database, PollerLock
from storage.models import Case, Chat, InboxUpdate, Outbox, Unit
from tests.fault_api import TOKEN, FaultBotAPI
from tests.flows import grid_centre
from tests.images import make_jpeg

GRID = "33010200100101"
ROOM = -100_990_001
CODE = re.compile(r"[A-Z]{2,}-\d{6}-\d{4}")
ACK = re.compile(r"已登记为<b>([A-Z]{2,}-\d{6}-\d{4})</b>")  # report.submitted_to_*
BUSY = t("zh_CN", "error.busy")
SUBMIT = {t("zh_CN", "report.btn_submit"), t("zh_CN", "report.btn_submit_new")}
STEP_WAIT_S = 12.0  # a real person asks again when nothing happens for this long
JPEG = make_jpeg(800, 600)
_user_message_ids = itertools.count(1_000_000)


def _env(tmp_path: Path, api: FaultBotAPI, db: Database, *, rate_limit: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDDESK_", "TELEGRAM_")) and k != "DATABASE_URL"}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=api.base_url,
        TELEGRAM_FILE_BASE_URL=api.base_url.replace("/bot", "/file/bot"),
        DATABASE_URL=db.url,
        GRIDDESK_MEDIA_DIR=str(tmp_path / "media"),
        GRIDDESK_RATE_LIMIT="true" if rate_limit else "false",
        GRIDDESK_RESIDENT_REPORTS_PER_HOUR="100",
    )
    return env


class Bot:
    """`griddesk run` in its own process group (its photo workers die with it)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd, self.log = env, cwd, cwd / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 (the child owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "griddesk.cli", "run"],
            env=self.env,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Reporter:
    api: FaultBotAPI
    uid: int
    lat: float
    lon: float
    code: str | None = None
    asked_again: int = 0
    steps: list[int] = field(default_factory=list)  # update ids pushed
    error: str | None = None
    stage: str = ""

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.uid, "is_bot": False, "first_name": f"居民{self.uid}", "language_code": "zh-hans"}

    def _push(self, **content: Any) -> None:
        chat = {"id": self.uid, "type": "private", "first_name": f"居民{self.uid}"}
        message = {"message_id": next(_user_message_ids), "date": int(time.time()), "chat": chat, "from": self.user}
        self.steps.append(self.api.push({"message": {**message, **content}}))

    def _press(self, message: dict[str, Any], data: str) -> None:
        message = {k: v for k, v in message.items() if k != "reply_markup"}  # as Telegram shows it
        query = {"id": uuid.uuid4().hex, "from": self.user, "chat_instance": "1", "message": message, "data": data}
        self.steps.append(self.api.push({"callback_query": query}))

    def _button(self, wanted: Any) -> tuple[dict[str, Any], str] | None:
        for message in reversed(self.api.to_chat(self.uid)):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if wanted(button.get("text", "")) and "callback_data" in button:
                        return message, button["callback_data"]
        return None

    def _code(self) -> str | None:
        for message in self.api.to_chat(self.uid):
            found = ACK.search(message.get("text") or "")
            if found:
                return found.group(1)
        return None

    def _busy(self) -> int:
        return sum(1 for m in self.api.to_chat(self.uid) if m.get("text") == BUSY)

    def _wait(self, check: Any, again: Any, deadline: float) -> Any:
        asked, busy = time.monotonic(), self._busy()
        while time.monotonic() < deadline:
            if self._busy() > busy:  # "busy, please try again": a person does just that
                busy = self._busy()
                self.asked_again += 1
                again()
                asked = time.monotonic()
                continue
            found = check()
            if found:
                return found
            if time.monotonic() - asked > STEP_WAIT_S:
                self.asked_again += 1
                again()
                asked = time.monotonic()
            time.sleep(0.05)
        raise TimeoutError(f"reporter {self.uid} stuck")

    def run(self, deadline: float) -> None:
        try:
            file_id = f"ph-{self.uid}"
            self.api.add_file(file_id, JPEG)
            photo = [
                {"file_id": file_id, "file_unique_id": file_id, "width": 800, "height": 600, "file_size": len(JPEG)}
            ]

            def send_photo() -> None:
                self._push(photo=photo, caption="违章搭建彩钢棚，占用消防通道")

            def send_location() -> None:
                self._push(location={"latitude": self.lat, "longitude": self.lon})

            self.stage = "photo"
            send_photo()
            self._wait(lambda: any(m.get("text") != BUSY for m in self.api.to_chat(self.uid)), send_photo, deadline)
            self.stage = "location"
            send_location()
            category = self._wait(lambda: self._button(lambda text: "违法建设" in text), send_location, deadline)
            self.stage = "category"
            self._press(*category)
            submit = self._wait(
                lambda: self._button(lambda text: text in SUBMIT), lambda: self._press(*category), deadline
            )
            self.stage = "submit"
            self._press(*submit)
            self.code = self._wait(self._code, lambda: self._press(*submit), deadline)
        except Exception as exc:  # reported by the test
            self.error = f"{type(exc).__name__}: {exc}"


def _start_reporters(
    api: FaultBotAPI, db: Database, count: int, first_uid: int, timeout: float
) -> tuple[list[Reporter], list[threading.Thread]]:
    lat, lon = grid_centre(db, GRID)
    reporters = [Reporter(api, first_uid + i, lat + i * 1e-6, lon) for i in range(count)]
    deadline = time.monotonic() + timeout
    threads = [threading.Thread(target=r.run, args=(deadline,), daemon=True) for r in reporters]
    for thread in threads:
        thread.start()
    return reporters, threads


def _join(threads: list[threading.Thread], timeout: float) -> None:
    for thread in threads:
        thread.join(timeout)


def _bind_command_room(db: Database) -> None:
    with db.session() as s:
        room = s.exec(select(Unit).where(Unit.code == "QB-CMD")).one()
        s.add(Chat(telegram_id=ROOM, title="清波指挥中心", type="supergroup", unit_id=room.id))


def _wait_until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _inbox(db: Database) -> dict[int, bool]:
    with Session(db.engine) as s:
        return {r.update_id: r.processed_at is not None for r in s.exec(select(InboxUpdate))}


def _cases(db: Database) -> set[str]:
    with Session(db.engine) as s:
        return {c.code for c in s.exec(select(Case))}


def _said_twice(api: FaultBotAPI, reporters: list[Reporter]) -> dict[int, int]:
    """Per reporter, the bot's messages that repeat the one before them word for word (an
    update processed again after a kill would answer again), beyond the times the reporter
    asked again (a step sent again is answered again)."""
    out = {}
    for r in reporters:
        texts = [m.get("text") or m.get("caption") or "" for m in api.to_chat(r.uid)]
        repeated = sum(1 for a, b in itertools.pairwise(texts) if a == b and a != BUSY)
        if repeated > r.asked_again:
            out[r.uid] = repeated - r.asked_again
    return out


def _codes_delivered(api: FaultBotAPI, reporters: list[Reporter]) -> dict[int, int]:
    """How many messages carrying their code each reporter received."""
    return {r.uid: sum(1 for m in api.to_chat(r.uid) if r.code and r.code in (m.get("text") or "")) for r in reporters}


def test_kill_9_three_times_during_20_reporters(db: Database, tmp_path: Path) -> None:
    _bind_command_room(db)
    with FaultBotAPI() as api:
        bot = Bot(_env(tmp_path, api, db, rate_limit=False), tmp_path)
        bot.start()
        try:
            assert _wait_until(lambda: "getUpdates" in bot.output() or api.requests > 3, 30), bot.output()
            reporters, threads = _start_reporters(api, db, 20, 9500, timeout=50)
            kills = 0
            for gap in (1.0, 1.5, 1.5):  # into the reports: photos, locations, submits in flight
                time.sleep(gap)
                bot.kill9()
                kills += 1
                bot.start()
            _join(threads, 55)
            pushed = api.pushed_ids()
            assert _wait_until(lambda: all(_inbox(db).get(i) for i in pushed), 20)
        finally:
            bot.stop()
        stuck = [(r.uid, r.stage, r.error) for r in reporters if r.code is None]
        acknowledged = {r.code for r in reporters if r.code}
        lost_reports = acknowledged - _cases(db)
        inbox = _inbox(db)
        lost_updates = [i for i in pushed if not inbox.get(i)]
        repeats = {uid: n - 1 for uid, n in _codes_delivered(api, reporters).items() if n > 1}
        twice = _said_twice(api, reporters)
        log = bot.output()
        resumed = sum(int(n) for n in re.findall(r"processing (\d+) update\(s\) stored before a restart", log))
        rows_back = sum(int(n) for n in re.findall(r"(\d+) outbox row\(s\) held by a stopped process", log))
        print(
            f"\nkill -9 x{kills}: reporters {len(reporters)}, acknowledged {len(acknowledged)}, "
            f"lost acknowledged {len(lost_reports)}, cases {len(_cases(db))}, updates {len(pushed)}, lost updates {len(lost_updates)}, "
            f"acknowledgements repeated {sum(repeats.values())}, other private messages repeated {sum(twice.values())}, "
            f"steps asked again {sum(r.asked_again for r in reporters)}, "
            f"updates stored but unfinished at a kill and processed after restart {resumed}, "
            f"outbox rows taken back from a killed sender {rows_back}"
        )
        assert kills == 3
        assert not stuck, (stuck, bot.output()[-3000:])
        assert len(acknowledged) == len(reporters)  # each a case of its own
        assert len(_cases(db)) == len(reporters)  # an update run again after a kill made no second case
        assert not lost_reports and not lost_updates
        # The code is written into the summary the reporter pressed Submit on: an edit sent
        # again after a kill (delivered but not yet recorded) changes nothing Telegram shows.
        assert not repeats, repeats
        # An update is marked processed in the transaction of its change: one whose change was
        # committed never runs again (its reply, if the kill came first, is lost and the step
        # asked again), so no reply is said twice.
        assert not twice, twice


@pytest.mark.parametrize("rate", [0.15])
def test_faulty_proxy_every_reporter_gets_their_code(db: Database, tmp_path: Path, rate: float) -> None:
    _bind_command_room(db)
    with FaultBotAPI(fault_rate=rate, seed=7, faulty=lambda method: method != "getMe") as api:
        bot = Bot(_env(tmp_path, api, db, rate_limit=False), tmp_path)
        bot.start()
        try:
            assert _wait_until(lambda: api.requests > 3, 30), bot.output()
            reporters, threads = _start_reporters(api, db, 20, 9600, timeout=50)
            _join(threads, 55)
            pushed = api.pushed_ids()
            assert _wait_until(lambda: all(_inbox(db).get(i) for i in pushed), 20)
            codes = _cases(db)
            with Session(db.engine) as s:
                case_ids = {c.id for c in s.exec(select(Case))}
            # A card whose sends met faults waits out the outbox's backoff (5 s, 10 s, 20 s…):
            # five in a row (one run in several hundred at 15 %) are waited for.
            patience = sum(backoff_seconds(attempt) for attempt in range(1, 6))
            assert _wait_until(lambda: _room_cards(api) >= len(case_ids), patience), (_room_cards(api), len(case_ids))
        finally:
            bot.stop()
        stuck = [(r.uid, r.stage, r.error) for r in reporters if r.code is None]
        with Session(db.engine) as s:
            failed = [(r.kind, r.error) for r in s.exec(select(Outbox).where(Outbox.state == "failed"))]
        print(
            f"\nfault proxy {rate:.0%}: requests {api.requests}, faults {api.faults}, reporters {len(reporters)}, "
            f"got their code {sum(1 for r in reporters if r.code)}, cases {len(codes)}, cards in the room "
            f"{_room_cards(api)}, steps asked again {sum(r.asked_again for r in reporters)}, failed rows {len(failed)}"
        )
        assert not stuck, (stuck, bot.output()[-3000:])
        assert {r.code for r in reporters} <= codes
        assert not failed, failed


def _room_cards(api: FaultBotAPI) -> int:
    """Distinct cases with a card in the command room."""
    found = set()
    for message in api.to_chat(ROOM):
        code = CODE.search(message.get("caption") or message.get("text") or "")
        if code:
            found.add(code.group(0))
    return len(found)


def test_postgresql_connections_terminated_during_20_reporters(db: Database, tmp_path: Path) -> None:
    """Every connection of the bot terminated three times (its poller lock's too): the
    reporters still get their codes, no update is lost, and one process polls at a time."""
    if db.sqlite:
        pytest.skip("PostgreSQL's connections")
    _bind_command_room(db)

    def terminate() -> int:
        with db.engine.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'griddesk-fault-bot'"
            ).scalar()
            conn.commit()
            return int(killed or 0)

    with FaultBotAPI() as api:
        env = _env(tmp_path, api, db, rate_limit=False)
        env["PGAPPNAME"] = "griddesk-fault-bot"  # only the bot's connections are terminated
        bot = Bot(env, tmp_path)
        bot.start()
        try:
            assert _wait_until(lambda: api.requests > 3, 30), bot.output()
            # A lost poller lock means standing by and taking over again after the old holder's
            # next check (griddesk/app.py LOCK_CHECK_S): people wait longer here than elsewhere.
            reporters, threads = _start_reporters(api, db, 20, 9700, timeout=100)
            terminated = 0
            for gap in (1.0, 1.5, 1.5):
                time.sleep(gap)
                terminated += terminate()
            _join(threads, 105)
            pushed = api.pushed_ids()
            assert _wait_until(lambda: all(_inbox(db).get(i) for i in pushed), 20)
        finally:
            bot.stop()
        stuck = [(r.uid, r.stage, r.error) for r in reporters if r.code is None]
        log = bot.output()
        print(
            f"\nPostgreSQL connections terminated: {terminated} in 3 rounds; reporters {len(reporters)}, "
            f"got their code {sum(1 for r in reporters if r.code)}, steps asked again "
            f"{sum(r.asked_again for r in reporters)}, 'busy' answers {log.count('database busy while handling')}, "
            f"poller lock lost {log.count('poller lock was lost')}"
        )
        seen = {uid: [m.get("text") or m.get("caption") for m in api.to_chat(uid)][-6:] for uid, _, _ in stuck}
        assert not stuck, (stuck, seen, log[-3000:])
        assert {r.code for r in reporters} <= _cases(db)
        assert "Conflict" not in log  # never two pollers


def test_the_active_process_loses_its_lock_connection_and_never_polls_beside_the_standby(
    db: Database, tmp_path: Path
) -> None:
    """Two `griddesk run` processes, one polling and one standing by; the poller lock's
    connection of the active one is terminated. Whoever polls next, never two at once
    (the fake answers a second concurrent getUpdates with 409 Conflict, as Telegram does),
    and reports keep being served."""
    if db.sqlite:
        pytest.skip("PostgreSQL's advisory lock")
    _bind_command_room(db)

    def lock_holder() -> int | None:
        with db.engine.connect() as conn:
            return conn.exec_driver_sql(
                f"SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = {PollerLock.KEY}"
            ).scalar()

    with FaultBotAPI() as api:
        bots = []
        for name in ("active", "standby"):
            (tmp_path / name).mkdir()
            bots.append(Bot(_env(tmp_path, api, db, rate_limit=False), tmp_path / name))
        active, standby = bots
        try:
            active.start()
            assert _wait_until(lambda: "starting long polling" in active.output(), 60), active.output()
            standby.start()
            assert _wait_until(lambda: "standing by" in standby.output(), 60), standby.output()
            before, threads = _start_reporters(api, db, 3, 9800, timeout=40)
            _join(threads, 45)
            holder = lock_holder()
            assert holder is not None
            with db.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({holder})")
                conn.commit()
            assert _wait_until(lambda: "poller lock was lost" in active.output(), 30), active.output()
            after, threads = _start_reporters(api, db, 3, 9810, timeout=60)
            _join(threads, 65)
        finally:
            for bot in bots:
                bot.stop()
        logs = active.output() + standby.output()
        print(
            f"\nlock connection of the active process terminated: conflicts {api.conflicts}, "
            f"took over: {'standby' if 'taking over' in standby.output() else 'the same process'}"
        )
        stuck = [(r.uid, r.stage, r.error) for r in before + after if r.code is None]
        assert stuck == [], (stuck, active.output()[-2500:], standby.output()[-1500:])
        assert api.conflicts == 0 and "Conflict" not in logs  # never two pollers
