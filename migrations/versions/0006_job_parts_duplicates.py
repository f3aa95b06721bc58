"""duplicate ids: job_parts.duplicates, the file indexes of a part's records whose id an earlier record
of the file has (they become duplicate_id error lines)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_parts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicates", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_parts", schema=None) as batch_op:
        batch_op.drop_column("duplicates")
