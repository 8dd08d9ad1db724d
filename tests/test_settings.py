"""Settings: defaults, parsing, and one clear sentence for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import DEFAULT_ORG_FILE, SettingsError, load_settings
from griddesk.cli import main

ENV_VARS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "TELEGRAM_FILE_BASE_URL",
    "DATABASE_URL",
    "GRIDDESK_ORG_FILE",
    "GRIDDESK_MEDIA_DIR",
    "GRIDDESK_ADMIN_IDS",
    "GRIDDESK_TIMEZONE",
    "GRIDDESK_DEFAULT_LANGUAGE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env, and the default SQLite file lands here


def test_defaults() -> None:
    s = load_settings()
    assert s.telegram_api_base_url == "https://api.telegram.org/bot"
    assert s.telegram_file_base_url == "https://api.telegram.org/file/bot"
    assert s.database_url == "sqlite:///griddesk.db"
    assert s.org_file == DEFAULT_ORG_FILE and s.org_file.is_file()
    assert s.timezone == "Asia/Shanghai"
    assert s.default_language == "zh_CN"
    assert s.admin_ids == frozenset()


def test_values_from_environment_and_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GRIDDESK_DEFAULT_LANGUAGE=en\nGRIDDESK_ADMIN_IDS=5\n", encoding="utf-8")
    monkeypatch.setenv("GRIDDESK_ADMIN_IDS", "11, 22,33")
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081/bot")
    s = load_settings()
    assert s.admin_ids == frozenset({11, 22, 33})  # the environment beats .env
    assert s.default_language == "en"  # .env fills what the environment does not set
    assert s.telegram_api_base_url == "http://127.0.0.1:8081/bot"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GRIDDESK_ADMIN_IDS", "12,alice", "GRIDDESK_ADMIN_IDS"),
        ("GRIDDESK_TIMEZONE", "Mars/Olympus", "GRIDDESK_TIMEZONE"),
        ("GRIDDESK_DEFAULT_LANGUAGE", "fr", "GRIDDESK_DEFAULT_LANGUAGE"),
        ("TELEGRAM_API_BASE_URL", "api.telegram.org/bot", "TELEGRAM_API_BASE_URL"),
    ],
)
def test_malformed_setting_is_one_sentence(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert says in message and "set" in message
    assert "\n" not in message and "Traceback" not in message


def test_missing_token() -> None:
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN is not set"):
        load_settings().require_token()


def test_malformed_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not-a-token")
    with pytest.raises(SettingsError, match="malformed"):
        load_settings().require_token()


def test_run_without_token_exits_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("griddesk: TELEGRAM_BOT_TOKEN is not set")
    assert len(err.splitlines()) == 1


def test_run_with_bad_setting_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GRIDDESK_ADMIN_IDS", "boss")
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "GRIDDESK_ADMIN_IDS" in err and len(err.splitlines()) == 1


def test_unreachable_database(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Port 9 (discard) on loopback: nothing listens there.
    monkeypatch.setenv("DATABASE_URL", "postgresql://griddesk:secret@127.0.0.1:9/nowhere")
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "Cannot reach the database at DATABASE_URL" in err
    assert "secret" not in err  # the password is never printed
    assert "Traceback" not in err


def test_missing_org_file(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("GRIDDESK_ORG_FILE", str(tmp_path / "nope.yaml"))
    assert main(["run"]) == 2
    assert "GRIDDESK_ORG_FILE" in capsys.readouterr().err


def test_db_upgrade_creates_the_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/fresh.db")
    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0  # twice is harmless


def test_only_one_process_polls(db) -> None:
    from storage.db import Database, PollerLock

    first, second = PollerLock(db), PollerLock(Database(db.url))
    try:
        assert first.try_acquire()
        # On PostgreSQL a second process stands by; SQLite has only ever one process.
        assert second.try_acquire() is db.sqlite
        first.release()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()
