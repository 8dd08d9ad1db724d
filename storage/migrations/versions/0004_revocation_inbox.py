"""memberships can be revoked (active flag, when and why)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 05:30:00.000000

membership.active: only active rows give rights; /revoke, leaving a team's group and an
organisation re-import that drops the scope set it false (revoked_at, revoked_reason say
when and why). Existing rows stay active.

inbox_update: updates from Telegram stored (by update_id, idempotently) before their offset
is confirmed or the webhook answered; processed_at is set once handled.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbox_update',
    sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('processed_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('update_id')
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('revoked_at', storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revoked_reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    op.drop_table('inbox_update')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_column('revoked_reason')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('active')
