"""fair share: indexes that let the run_part scheduler read each unfinished job's next fresh part, its
running parts and its latest part start without scanning the job's parts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 21:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_parts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_parts_job_id_status_attempts_index",
            ["job_id", "status", "attempts", "index"],
            unique=False,
        )
        batch_op.create_index("ix_job_parts_job_id_started_at", ["job_id", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("job_parts", schema=None) as batch_op:
        batch_op.drop_index("ix_job_parts_job_id_started_at")
        batch_op.drop_index("ix_job_parts_job_id_status_attempts_index")
