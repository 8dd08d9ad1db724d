"""`griddesk run --http HOST:PORT`: polling and the HTTP app in one process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.http_fake_api import FakeBotHTTPServer
from tests.test_run_command import _env, _free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_run_with_http_polls_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    with FakeBotHTTPServer() as api:
        proc = subprocess.Popen(
            [sys.executable, "-m", "griddesk.cli", "run", "--http", f"127.0.0.1:{port}"],
            env=_env(tmp_path, api.base_url, "123456:fake"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            health = (0, "")
            while time.monotonic() < deadline and health[0] != 200 and proc.poll() is None:
                try:
                    health = _get(f"http://127.0.0.1:{port}/healthz")
                except urllib.error.URLError:
                    time.sleep(0.2)
            assert health[0] == 200 and json.loads(health[1]) == {"status": "ok"}
            ready = _get(f"http://127.0.0.1:{port}/readyz")
            assert ready[0] == 200, ready
            while time.monotonic() < deadline and api.methods().count("getUpdates") < 2:
                time.sleep(0.1)
            assert "griddesk_outbox_depth" in _get(f"http://127.0.0.1:{port}/metrics")[1]
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert api.methods().count("getUpdates") >= 2, out  # polling beside the HTTP app
        assert "Traceback" not in out, out


def test_run_with_http_takes_telegrams_webhook_on_our_route(tmp_path: Path) -> None:
    from tests.test_run_command import _post

    port = _free_port()
    with FakeBotHTTPServer() as api:
        env = _env(tmp_path, api.base_url, "123456:fake")
        env.update(GRIDDESK_WEBHOOK_SECRET="s3cret-token")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "griddesk.cli",
                "run",
                "--http",
                f"127.0.0.1:{port}",
                "--webhook",
                "https://bot.example.org/telegram/hook",
            ],
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
            while time.monotonic() < deadline and status != 200:
                try:
                    assert _post(url, {**update, "update_id": 0}, "wrong") == 403
                    status = _post(url, update, "s3cret-token")
                except urllib.error.URLError:
                    time.sleep(0.2)
            assert status == 200
            while time.monotonic() < deadline and not any(m == "sendMessage" for m, _ in api.params):
                time.sleep(0.1)
            sent = [p for m, p in api.params if m == "sendMessage"]
            assert sent and int(sent[0]["chat_id"]) == 4242 and "Hello, Li" in sent[0]["text"]
            assert "getUpdates" not in api.methods()  # webhook mode: no polling
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out
