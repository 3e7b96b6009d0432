"""sources.gap_at, gap_entries: the last poll that found every entry new

Older items may have left the feed unseen between that poll and the one before;
`metwatch sources` and the admins are told, so they can poll it more often.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("gap_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("gap_entries", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("gap_entries")
        batch.drop_column("gap_at")
