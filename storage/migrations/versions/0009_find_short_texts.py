"""/find's text index answers texts of one or two characters

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 11:30:00.000000

Most Chinese words are two characters, one shorter than a trigram, so 0007's index could not
answer them and /find scanned the scope's cases. SQLite: the FTS5 table is built again over a
view that ends each field with two terminators, so every occurrence of a one- or two-character
text starts a trigram, and its terms are readable (fts5vocab). PostgreSQL: a GIN index over
each case's characters and pairs of characters (storage/search_index.py).

Building the index again reads every case once (on PostgreSQL the new index; on SQLite the
whole FTS table): minutes at a million cases.
"""

from collections.abc import Sequence

from alembic import op

from storage import search_index

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    search_index.uninstall(conn)
    search_index.install(conn)


def downgrade() -> None:
    # 0008's code reads the new shape as it read the old one (a phrase of three characters or
    # more, the LIKE on PostgreSQL); 0007's downgrade takes all of it away
    pass
