"""items.link: the link subscribers are shown, as the outlet published it

``url`` is the canonical link: it identifies the article (the same story in two
feeds) but is rewritten for that (query strings re-encoded, AMP hosts folded),
and a rewritten link can break on the outlet's site. ``link`` keeps the link as
published, less its tracking parameters and fragment. Rows stored before have
none: they show ``url``, as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("link", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not recreated: on SQLite a rebuilt items table would be refused while
    # matches and story_items point at it (SQLite has DROP COLUMN since 3.35).
    with op.batch_alter_table("items", recreate="never") as batch:
        batch.drop_column("link")
