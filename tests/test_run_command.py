"""`griddesk run` end to end, as a separate process against a Bot API on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
            [sys.executable, "-m", "bot.cli", "run"],
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
            [sys.executable, "-m", "bot.cli", "run"],
            env=_env(tmp_path, api.base_url, "999:wrong"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr
