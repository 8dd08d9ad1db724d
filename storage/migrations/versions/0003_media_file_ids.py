"""media file ids kept; the reporter index that another index already covers dropped

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 23:30:00.000000

casemedia.jpeg_file_id keeps the file_id Telegram gave our normalized JPEG the first time a
card uploaded it, so cards in other chats and after a restart send the photo by id.
ix_cases_reporter_user_id is a prefix of ix_case_reporter_created (0002): one index less to
write on every new case.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('casemedia', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jpeg_file_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_reporter_user_id')


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_reporter_user_id', ['reporter_user_id'], unique=False)
    with op.batch_alter_table('casemedia', schema=None) as batch_op:
        batch_op.drop_column('jpeg_file_id')
