"""`griddesk demo`: the whole loop on the built-in simulator, in both languages, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from griddesk.cli import main as cli_main
from griddesk.demo import MILESTONES, run_demo
from storage.db import Database
from tests.conftest import TEST_DB_URL


@pytest.fixture
def demo_db(db: Database) -> Iterator[str | None]:
    """The test's PostgreSQL database (emptied, sample org only), or None: a temporary SQLite file."""
    yield db.url if TEST_DB_URL else None


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
async def test_the_demo_plays_the_whole_loop(lang: str, tmp_path: Path, demo_db: str | None) -> None:
    lines: list[str] = []
    result = await run_demo(lang=lang, out_dir=tmp_path / "out", database_url=demo_db, echo=lines.append)
    assert result.milestones == list(MILESTONES)
    text = "\n".join(lines)
    assert lines == result.transcript
    code, second = result.case_codes
    zh = lang == "zh_CN"
    # the loop's milestones, as the people saw them
    for needle in (
        [
            "欢迎，刘网格",
            "✅ 已登记为",
            "已派遣至",
            "您已认领",
            "已由",
            "已就案件",
            "已报到",
            "已安排执法人员明日到场",
            "请核查",
            "已结案",
            "评价二维码",
            "感谢您的评价",
            "已用去 50%",
            "督办",
            "满意率 100%",
        ]
        if zh
        else [
            "Welcome, Liu",
            "dispatched to",
            "You now own",
            "already claimed by",
            "Reported in on",
            "Our inspectors will be on site tomorrow",
            "Please check whether",
            "is closed",
            "Thank you for your rating",
            "50%",
            "Supervis",
            "satisf",
        ]
    ):
        assert needle in text, needle
    assert code in text and second in text
    # the images the bot sent are in the folder it names: cards (JPEG) and the QR code (PNG)
    assert str(tmp_path / "out") in lines[-1]
    files = sorted((tmp_path / "out").iterdir())
    assert files == sorted(result.images) and len(files) >= 10
    assert any(f.suffix == ".png" for f in files) and all(f.stat().st_size > 0 for f in files)
    # how much a report costs the worker: two messages (photo, location), two taps at least
    report = result.effort["刘网格 @ demo.s_report" if zh else "Liu @ demo.s_report"]
    assert report["messages"] == 2 and report["taps"] >= 2


async def test_interactive_the_newcomer_is_the_worker(tmp_path: Path, demo_db: str | None) -> None:
    typed = iter(["/photo 小区门口私搭乱建", "/location", "hello?", "99", "/auto", "1"])
    prompts: list[str] = []

    async def read_line(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    lines: list[str] = []
    result = await run_demo(
        lang="zh_CN", out_dir=tmp_path, database_url=demo_db, interactive=True, echo=lines.append, read_line=read_line
    )
    text = "\n".join(lines)
    assert "刘网格 ▸ 📷 “小区门口私搭乱建”" in text and "没有这个按钮" in text
    assert prompts and all(p == "刘网格> " for p in prompts)
    assert result.milestones == list(MILESTONES)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert cli_main(["demo", "--lang", "en", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "The figures" in out and f"are in {tmp_path}" in out
