"""What every service needs: settings, database, clock. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.clock import Clock
from bot.settings import Settings
from storage.db import Database


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=Clock)
    bot_username: str = ""

    def deep_link(self, payload: str) -> str:
        return f"https://t.me/{self.bot_username}?start={payload}"
