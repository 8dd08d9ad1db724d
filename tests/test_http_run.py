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
