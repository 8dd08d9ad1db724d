"""PostgreSQL: /find's searched text in a table of its own, off the `cases` row

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 17:00:00.000000

Every move of a case (claim, dispatch, resolve…) writes its row anew, and PostgreSQL adds the
new row version to every index of the table whose columns the move changes or not: so each
move also paid for the four GIN indexes of /find's text (pg_trgm on code, address and
description; characters and pairs), recomputing the text's grams each time, and left them
bloated. The text now lives in `case_search_text`, copied by a trigger that fires only when
the text itself changes; the indexes are on it (storage/search_index.py). SQLite's FTS5 index
is kept in step only when the text changes already: nothing changes there.

Copying the text reads every case once and builds the four indexes anew, as 0009 did.
"""

from collections.abc import Sequence

from alembic import op

from storage import search_index

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        search_index.uninstall(conn)
        search_index.install(conn)


def downgrade() -> None:
    # Without its index 0010's code finds the same cases by scanning them (as it does when
    # pg_trgm is missing); upgrading again builds the index anew.
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        search_index.uninstall(conn)
