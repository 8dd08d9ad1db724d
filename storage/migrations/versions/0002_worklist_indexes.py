"""work list indexes: /tasks (mine, team, street) and /my walk an index in their order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000

Each list filters on one column (owner, team, street, reporter) and orders by
urgent DESC, created_at DESC, id DESC (/my: created_at DESC, id DESC). Without an index
in that order the database sorted every matching case of the team or street in a
temporary B-tree. The /tasks indexes are partial: they hold only the cases the list can
show, and the conditions are written out here as literals because SQLite uses a partial
index only when the query repeats the condition term for term (storage/worklists.py
builds its filters from the same states, in the same order, as storage/models.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "state IN ('reported', 'dispatched', 'claimed', 'returned', 'escalated', 'reopened', 'resolved')"
CLAIMABLE = "state IN ('dispatched', 'reopened') AND owner_user_id IS NULL"


def _where(sql: str) -> dict:
    return {"sqlite_where": sa.text(sql), "postgresql_where": sa.text(sql)}


def upgrade() -> None:
    op.create_index('ix_case_owner_open', 'cases', ['owner_user_id', 'urgent', 'created_at', 'id'], **_where(OPEN))
    op.create_index('ix_case_unit_claimable', 'cases', ['unit_id', 'urgent', 'created_at', 'id'], **_where(CLAIMABLE))
    op.create_index('ix_case_street_open', 'cases', ['street_id', 'urgent', 'created_at', 'id'], **_where(OPEN))
    op.create_index('ix_case_reporter_created', 'cases', ['reporter_user_id', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_case_reporter_created', table_name='cases')
    op.drop_index('ix_case_street_open', table_name='cases')
    op.drop_index('ix_case_unit_claimable', table_name='cases')
    op.drop_index('ix_case_owner_open', table_name='cases')
