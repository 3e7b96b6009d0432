"""index stories by first seen (clustering reads the newest stories per flagged item)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 19:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_stories_first_seen", "stories", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_stories_first_seen", table_name="stories")
