"""/queue's indexes: a team's open cases in the list's order, open cases by due time, and the
cases awaiting verification

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 11:30:00.000000

At a million cases a team's /queue sorted every open case of the team (150 ms on SQLite), and
the overdue, due-today and awaiting-verification filters walked every open case of the street
or team to find a few (100-200 ms). Partial indexes, their conditions written out as literals
(SQLite uses a partial index only when the query repeats its condition term for term:
storage/desk_queue.py builds its filters from the same constants as storage/models.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state IN ('reported', 'dispatched', 'claimed', 'returned', 'escalated', 'reopened', 'resolved')"
RESOLVED = "state = 'resolved'"
INDEXES = (
    ("ix_case_unit_open", ["unit_id", "urgent", "created_at", "id"], OPEN),
    ("ix_case_street_due", ["street_id", "due_at"], OPEN),
    ("ix_case_unit_due", ["unit_id", "due_at"], OPEN),
    ("ix_case_street_resolved", ["street_id", "urgent", "created_at", "id"], RESOLVED),
    ("ix_case_unit_resolved", ["unit_id", "urgent", "created_at", "id"], RESOLVED),
)


def upgrade() -> None:
    for name, columns, where in INDEXES:
        op.create_index(name, "cases", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))
    conn = op.get_bind()
    if (
        conn.dialect.name == "sqlite"
        and conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first()
    ):
        # An analyzed database: an index without statistics looks to SQLite's planner as if an
        # equality found ten rows, and it would read a street's every open case by due time
        # and sort them, instead of walking ix_case_street_open in the list's order.
        for name, _columns, _where in INDEXES:
            conn.exec_driver_sql(f"ANALYZE {name}")


def downgrade() -> None:
    for name, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name="cases")
