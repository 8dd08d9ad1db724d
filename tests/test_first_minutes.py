"""The first minutes of a real deployment: what `griddesk run` and `griddesk org` say, what
they never do to an operator's organisation, and the business events in the log."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlmodel import select

from bot.org.org_file import DEFAULT_ORG_FILE, parse_org_text
from bot.settings import Settings
from griddesk.cli import main as cli_main
from griddesk.logs import JsonFormatter
from griddesk.startup import StartupError, load_org, prepare
from storage.db import Database
from storage.events import business_event
from storage.models import District, Street
from storage.org_import import OrgReplaceRefused, import_org


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDDESK_", "TELEGRAM_")) and k != "DATABASE_URL"}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path}/run.db", GRIDDESK_MEDIA_DIR=str(tmp_path / "media"), **extra)
    return env


def test_run_without_admins_and_without_a_route_says_what_to_do(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "griddesk.cli", "run"],
        env=_env(
            tmp_path,
            TELEGRAM_BOT_TOKEN="123456:fake",
            # nothing listens on port 9 of loopback: no route to the Bot API
            TELEGRAM_API_BASE_URL="http://127.0.0.1:9/bot",
            TELEGRAM_FILE_BASE_URL="http://127.0.0.1:9/file/bot",
            GRIDDESK_BOT_API_WAIT_S="2",  # give up after two tries (the default keeps trying)
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "GRIDDESK_ADMIN_IDS is not set: nobody can administer this bot" in err and "@userinfobot" in err
    assert "Could not reach the Bot API at http://127.0.0.1:9/bot" in err
    assert "HTTPS_PROXY" in err and "ALL_PROXY" in err and "self-hosted Bot API server" in err
    assert "Traceback" not in err


def other_district() -> str:
    """The sample with another district code (and its streets, communities, grids renumbered)."""
    data = yaml.safe_load(DEFAULT_ORG_FILE.read_text(encoding="utf-8"))
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return text.replace("330102", "330105").replace("上城区", "拱墅区").replace("Shangcheng", "Gongshu")


def _settings(db: Database, tmp_path: Path, org_file: Path | None = None) -> Settings:
    values = {"DATABASE_URL": db.url, "GRIDDESK_MEDIA_DIR": str(tmp_path / "m"), "_env_file": None}
    if org_file is not None:
        values["GRIDDESK_ORG_FILE"] = str(org_file)
    return Settings(**values)  # type: ignore[arg-type]


def test_run_never_replaces_the_operators_organisation(db: Database, tmp_path: Path) -> None:
    # The operator imported their own district (replacing the sample, explicitly).
    mine = tmp_path / "mine.yaml"
    mine.write_text(other_district(), encoding="utf-8")
    spec = parse_org_text(mine.read_text(encoding="utf-8"), str(mine))
    with db.session() as s, pytest.raises(OrgReplaceRefused) as refused:
        import_org(s, spec)
    assert "330105" in str(refused.value) and "--replace" in str(refused.value) and "330102" in str(refused.value)
    with db.session() as s:
        import_org(s, spec, replace=True)

    def active_districts() -> set[str]:
        with db.session() as s:
            return {
                d.code
                for d in s.exec(select(District))
                if s.exec(select(Street).where(Street.district_id == d.id, Street.active)).first()
            }

    assert active_districts() == {"330105"}
    # `griddesk run` without GRIDDESK_ORG_FILE: the sample is not imported over it
    rt = prepare(_settings(db, tmp_path))
    assert active_districts() == {"330105"}
    assert load_org(rt) is None
    rt.db.dispose()
    # the sample named explicitly, or any other district's file: refused, nothing changed
    other = tmp_path / "sample.yaml"
    other.write_text(DEFAULT_ORG_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(StartupError, match="--replace"):
        prepare(_settings(db, tmp_path, other))
    assert active_districts() == {"330105"}
    # the operator's own file again: imported (unchanged)
    rt = prepare(_settings(db, tmp_path, mine))
    assert active_districts() == {"330105"}
    rt.db.dispose()


def test_org_import_needs_replace_and_check_prints_a_summary(
    db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("GRIDDESK_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.chdir(tmp_path)  # no .env here
    mine = tmp_path / "mine.yaml"
    mine.write_text(other_district(), encoding="utf-8")
    assert cli_main(["org", "import", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "would deactivate" in err and "--replace" in err
    assert cli_main(["org", "import", str(mine), "--replace"]) == 0
    assert cli_main(["org", "check", str(DEFAULT_ORG_FILE)]) == 0
    out = capsys.readouterr().out
    assert "street 330102001 清波街道 / Qingbo Subdistrict (abbr QB): 3 communities, 8 grids" in out
    assert "command room QB-CMD  清波街道综合信息指挥室" in out and "team QB-ZF  清波街道综合执法平台" in out
    assert "categories: 39" in out and "departments: HOUSING" in out


def test_business_events_are_logged_once_committed(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="griddesk.events")
    with db.session() as s:
        business_event(s, "case.claimed", case="QB-1", case_id=1, actor=7)
        assert not caplog.records  # not before the commit
    with pytest.raises(RuntimeError), db.session() as s:
        business_event(s, "case.closed", case="QB-2")
        raise RuntimeError("rolled back")
    assert [r.getMessage() for r in caplog.records] == ["case.claimed case=QB-1 case_id=1 actor=7"]
    line = json.loads(JsonFormatter().format(caplog.records[0]))
    assert line["event"] == "case.claimed" and line["case"] == "QB-1" and line["actor"] == 7
    assert line["level"] == "INFO" and line["logger"] == "griddesk.events"


async def test_one_log_line_per_business_event_of_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, db: Database
) -> None:
    from griddesk.demo import run_demo
    from tests.conftest import TEST_DB_URL

    caplog.set_level(logging.INFO)
    await run_demo(lang="en", out_dir=tmp_path, database_url=db.url if TEST_DB_URL else None, echo=lambda _: None)
    events = [r.event for r in caplog.records if r.name == "griddesk.events"]  # type: ignore[attr-defined]
    for name in (
        "case.reported",
        "case.dispatched",
        "case.claimed",
        "case.escalated",
        "case.reported_in",
        "case.resolved",
        "case.closed",
        "rating.received",
        "case.reminded",
        "case.supervised",
    ):
        assert name in events, (name, events)
    assert events.count("case.claimed") == 2  # the race's losers leave no line; the second case's claim
    assert not [
        r for r in caplog.records if r.name.startswith(("apscheduler", "handlers.jobs")) and r.levelno >= logging.INFO
    ]
