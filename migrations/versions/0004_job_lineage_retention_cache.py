"""job lineage, retention and the result cache: retry children, train-then-predict waits, delete_after
on files and jobs, and the per-tenant cache of earlier results

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("retry_of", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("waits_for_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("delete_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_parent_job_id"), ["parent_job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_waits_for_job_id"), ["waits_for_job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_delete_after"), ["delete_after"], unique=False)
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delete_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_files_delete_after"), ["delete_after"], unique=False)

    op.create_table(
        "result_cache",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("result_cache")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_delete_after"))
        batch_op.drop_column("delete_after")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_delete_after"))
        batch_op.drop_index(batch_op.f("ix_jobs_waits_for_job_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_parent_job_id"))
        batch_op.drop_column("delete_after")
        batch_op.drop_column("waits_for_job_id")
        batch_op.drop_column("retry_of")
        batch_op.drop_column("parent_job_id")
