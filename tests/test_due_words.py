"""Due times in words where near, on cards and in reminder notices ("今天 15:34",
"明天 09:05"); farther off the date stays ("11-26 09:30"). Cards carry day words only (they
are re-rendered on each change, so "剩 N 小时" would go stale there)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cases.timewords import when_words
from griddesk.demo import run_demo
from storage.db import Database
from tests.conftest import TEST_DB_URL

TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def demo_db(db: Database) -> Iterator[str | None]:
    yield db.url if TEST_DB_URL else None


async def test_cards_and_reminders_say_near_due_times_in_words(tmp_path: Path, demo_db: str | None) -> None:
    lines: list[str] = []
    await run_demo(lang="zh_CN", out_dir=tmp_path / "out", database_url=demo_db, echo=lines.append)
    text = "\n".join(lines)
    # the first case is due the same afternoon, the second the next morning (the demo's clock)
    assert "⏳ 时限：今天 15:34" in text
    assert "⏳ 时限：明天 09:05" in text
    assert "⏳ 时限：11-2" not in text  # no bare date for a near due time on any card
    # reminders rendered when sent: "tomorrow" at 16:35 on the 23rd, "today" when overdue on the 24th
    assert "请在明天 09:05前办结" in text  # no spaces around the time words in Chinese
    assert "已超过时限（今天 09:05）" in text


async def test_english_and_far_due_times(tmp_path: Path, demo_db: str | None) -> None:
    lines: list[str] = []
    await run_demo(lang="en", out_dir=tmp_path / "out", database_url=demo_db, echo=lines.append)
    text = "\n".join(lines)
    assert "today 15:34" in text and "tomorrow 09:05" in text
    now = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)
    assert when_words("zh_CN", now + timedelta(days=3), now, TZ) == "11-26 09:30"
    assert when_words("zh_CN", now + timedelta(days=1), now, TZ) == "明天 09:30"
