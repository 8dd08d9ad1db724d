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

    def deep_link(self, payload: str) -> str:
        return f"https://t.me/{self.bot_username}?start={payload}"
