"""`griddesk run` end to end, as a separate process against a Bot API on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.http_fake_api import FakeBotHTTPServer


def _env(tmp_path: Path, base_url: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDDESK_", "TELEGRAM_")) and k != "DATABASE_URL"}
    env.update(
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_BASE_URL=base_url,
        TELEGRAM_FILE_BASE_URL=base_url.replace("/bot", "/file/bot"),
        DATABASE_URL=f"sqlite:///{tmp_path}/run.db",
        GRIDDESK_MEDIA_DIR=str(tmp_path / "media"),
    )
    return env


def test_run_reaches_getme_and_polls(tmp_path: Path) -> None:
    with FakeBotHTTPServer() as api:
        proc = subprocess.Popen(
            [sys.executable, "-m", "griddesk.cli", "run"],
            env=_env(tmp_path, api.base_url, "123456:fake"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and api.methods().count("getUpdates") < 2:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        methods = api.methods()
        assert "getMe" in methods, out
        assert "setMyCommands" in methods, out
        assert methods.count("getUpdates") >= 2, out  # it is polling
        assert methods.index("getMe") < methods.index("getUpdates")
        assert "Traceback" not in out, out
    assert (tmp_path / "run.db").exists()  # migrated and the sample imported on start


def test_run_with_refused_token_says_so(tmp_path: Path) -> None:
    with FakeBotHTTPServer() as api:
        proc = subprocess.run(
            [sys.executable, "-m", "griddesk.cli", "run"],
            env=_env(tmp_path, api.base_url, "999:wrong"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict, secret: str) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_run_with_a_webhook(tmp_path: Path) -> None:
    port = _free_port()
    with FakeBotHTTPServer() as api:
        env = _env(tmp_path, api.base_url, "123456:fake")
        env.update(
            GRIDDESK_WEBHOOK_LISTEN="127.0.0.1", GRIDDESK_WEBHOOK_PORT=str(port), GRIDDESK_WEBHOOK_SECRET="s3cret-token"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "griddesk.cli", "run", "--webhook", "https://bot.example.org/telegram/hook"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "setWebhook" not in api.methods() and proc.poll() is None:
                time.sleep(0.1)
            hook = next(p for m, p in api.params if m == "setWebhook")
            assert hook["url"] == "https://bot.example.org/telegram/hook" and hook["secret_token"] == "s3cret-token"
            update = {
                "update_id": 1,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "text": "/start",
                    "chat": {"id": 4242, "type": "private", "first_name": "Li"},
                    "from": {"id": 4242, "is_bot": False, "first_name": "Li", "language_code": "en"},
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                },
            }
            url = f"http://127.0.0.1:{port}/telegram/hook"
            status = 0
            while time.monotonic() < deadline and status != 200:  # the server may still be starting
                try:
                    status = _post(url, {**update, "update_id": 0}, "wrong")
                    assert status == 403  # a post without the secret is refused
                    status = _post(url, update, "s3cret-token")
                except urllib.error.URLError:
                    time.sleep(0.2)
            assert status == 200
            while time.monotonic() < deadline and not any(m == "sendMessage" for m, _ in api.params):
                time.sleep(0.1)
            sent = [p for m, p in api.params if m == "sendMessage"]
            assert sent and int(sent[0]["chat_id"]) == 4242 and "Hello, Li" in sent[0]["text"]
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out
    import sqlite3

    with sqlite3.connect(tmp_path / "run.db") as conn:  # the webhook's update went through the inbox
        assert conn.execute("SELECT update_id, processed_at IS NOT NULL FROM inbox_update").fetchall() == [(1, 1)]


def test_a_ready_process_freezes_its_start_up_heap() -> None:
    """`griddesk run` settles its heap once ready (griddesk/app.py settle_heap): the start-up
    objects leave the collector's walks, the young generation is collected less often. In a
    process of its own: the test process's heap is not to be frozen."""
    probe = (
        "import gc, json; from griddesk.app import GC_YOUNG_THRESHOLD, settle_heap; "
        "before = gc.get_freeze_count(); settle_heap(); "
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0], GC_YOUNG_THRESHOLD]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    before, after, young, wanted = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 0 and after > 10_000  # the modules' objects at least
    assert young == wanted > 700
