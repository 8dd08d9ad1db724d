"""Alembic, driven from code: `griddesk db upgrade` and the upgrade on start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def autogenerate(db: Database, message: str) -> None:
    """For developers: write a new migration from the difference to the models."""
    cfg = alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
