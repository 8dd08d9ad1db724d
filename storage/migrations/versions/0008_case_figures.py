"""The desk's figures kept per case: case_figures and case_department_figures

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00.000000

Indexes: the rows are keyed (and on SQLite stored, WITHOUT ROWID) by (created_at, case_id), so
a period is one stretch of the table; (street_id | unit_id | grid_id, created_at) for the
scopes; partial (created_at, handling_hours) and (street_id, created_at, handling_hours) for
the 90th percentile of the handling time.

One row per case with its contribution to the assessment figures (issue 11), kept in the
transaction of every change to the case, so a scope's figures are a GROUP BY over a narrow
table. The rows are derived by the figures' rules (bot/desk/figures.py), which a migration
does not import: an existing database is filled by `griddesk figures rebuild`, which
`griddesk db upgrade` runs when cases have no figures yet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.desk_figures import drop_stale_triggers, install_stale_triggers
from storage.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = (
    "received", "dispatched", "response_due", "claimed_in_time", "closed", "closed_on_time",
    "overdue_at_closure", "verified_first_time", "reopened", "overdue_now", "ratable_closed",
    "rated_closed", "ratings", "satisfied", "whistles", "reported_in",
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "case_figures",
        sa.Column("created_at", UTCDateTime(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("street_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("grid_id", sa.Integer(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("owner_user_id", sa.Integer(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS[:3]],
        sa.Column("response_due_after", UTCDateTime(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS[3:10]],
        sa.Column("overdue_after", UTCDateTime(), nullable=True),
        sa.Column("handling_hours", sa.Float(), nullable=True),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS[10:]],
        sa.Column("report_in_hours", sa.Float(), nullable=False),
        sqlite_with_rowid=False,  # stored in the order received (see storage/models.py)
    )
    op.create_index("ix_case_figures_case", "case_figures", ["case_id"], unique=True)
    op.create_index("ix_case_figures_street_created", "case_figures", ["street_id", "created_at"])
    op.create_index("ix_case_figures_unit_created", "case_figures", ["unit_id", "created_at"])
    op.create_index("ix_case_figures_grid_created", "case_figures", ["grid_id", "created_at"])
    hours = sa.text("handling_hours IS NOT NULL")
    op.create_index(
        "ix_case_figures_hours", "case_figures", ["created_at", "handling_hours"],
        sqlite_where=hours, postgresql_where=hours,
    )  # fmt: skip
    op.create_index(
        "ix_case_figures_street_hours", "case_figures", ["street_id", "created_at", "handling_hours"],
        sqlite_where=hours, postgresql_where=hours,
    )  # fmt: skip
    op.create_table(
        "case_department_figures",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True, autoincrement=False),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("unit.id"), primary_key=True, autoincrement=False),
        sa.Column("whistles", sa.Integer(), nullable=False),
        sa.Column("reported_in", sa.Integer(), nullable=False),
        sa.Column("report_in_hours", sa.Float(), nullable=False),
    )
    op.create_index("ix_case_department_figures_unit_id", "case_department_figures", ["unit_id"])
    op.create_table(
        "figures_stale",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
    )
    install_stale_triggers(op.get_bind())


def downgrade() -> None:
    drop_stale_triggers(op.get_bind())
    op.drop_table("figures_stale")
    op.drop_index("ix_case_department_figures_unit_id", table_name="case_department_figures")
    op.drop_table("case_department_figures")
    for name in ("street_hours", "hours", "grid_created", "unit_created", "street_created", "case"):
        op.drop_index(f"ix_case_figures_{name}", table_name="case_figures")
    op.drop_table("case_figures")
