"""/find's text index: SQLite FTS5 (trigram) and PostgreSQL pg_trgm GIN indexes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:00:00.000000

Codes, addresses and descriptions searched by substring (Chinese has no word boundaries)
without scanning the scope's cases. Optional on both databases: when the FTS5 trigram
tokenizer or the pg_trgm extension is not available, nothing is created and /find scans as
before (storage/search_index.py).
"""

from collections.abc import Sequence

from alembic import op

from storage import search_index

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    search_index.install(op.get_bind())


def downgrade() -> None:
    search_index.uninstall(op.get_bind())
