"""sources.link_selector, gap_after, gap_alerted_at: a source's selector; gaps' spacing

``link_selector`` mirrors the rules file's, like ``url`` and ``kind``: when one of
them changes, the source is read differently, so its validators and last success
are forgotten (its next poll reads the page afresh and is no gap). Page sources
with a selector are read afresh once after this upgrade, for that reason.
``gap_after``: seconds between the poll that found every entry new and the good
poll before it; ``gap_alerted_at``: when admins were last told of a gap of the
source (gaps after failures or downtime are recorded without telling them).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("gap_after", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("gap_alerted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("link_selector", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("link_selector")
        batch.drop_column("gap_alerted_at")
        batch.drop_column("gap_after")
