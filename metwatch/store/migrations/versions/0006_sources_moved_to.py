"""sources.moved_to: where a source has moved permanently (301/308)

metwatch polls the new address instead of being redirected on every poll,
until the rules file's address changes or the source starts failing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("moved_to", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("moved_to")
