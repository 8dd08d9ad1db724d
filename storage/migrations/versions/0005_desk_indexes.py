"""the desk's index: a street's cases by the time they were received

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 05:40:00.000000

ix_case_street_created (street_id, created_at, id) serves the desk's figures, export and map of
a street over a period (issue 11) and Open311's GET requests (issue 13), in their order: a
range scan instead of a walk of the whole created_at index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_case_street_created', ['street_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_case_street_created')
