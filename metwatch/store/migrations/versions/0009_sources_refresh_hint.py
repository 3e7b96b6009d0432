"""sources.refresh_hint, held_until: a feed's ttl and a site's Retry-After, kept

``refresh_hint``: the feed's own ttl, kept for the polls answered 304.
A feed's ``<ttl>`` or ``sy:updatePeriod`` is in its body; a 304 brings none, so
without it a feed that asks to be read hourly was polled at the interval again
after its first 304. Starts empty: the next full body of each source fills it.
``held_until``: the Retry-After of a source's last failed poll; a new address on
the same site is not polled before it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("refresh_hint", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("held_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("held_until")
        batch.drop_column("refresh_hint")
