"""What every service needs: settings, database, clock. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock
from bot.settings import Settings
from storage.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=Clock)
    bot_username: str = ""
    # Read-mostly things built from the organisation (the grid index): dropped on re-import.
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every runtime keeps the desk's per-case figures with its database's units of work, so
        # no way of changing a case (bot, CLI, HTTP API, tests, benchmarks) can leave them behind.
        from bot.desk import figures  # imported here: the figures themselves need a Runtime

        figures.keep_up(self)

    def deep_link(self, payload: str) -> str:
        return f"https://t.me/{self.bot_username}?start={payload}"
