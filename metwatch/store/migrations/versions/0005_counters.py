"""counters: a change counter of the stories, for clustering's optimistic writes

Every filing of a flagged item raises it, on the condition that it still holds
the value the clustering decision was made on; one row to check instead of the
newest stories' revisions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counters, [{"name": "stories", "value": 0}])


def downgrade() -> None:
    op.drop_table("counters")
