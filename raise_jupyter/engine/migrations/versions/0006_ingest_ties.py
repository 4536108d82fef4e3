"""Record whether each ingest batch has rows that share keys and event time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batches ingested before this revision keep NULL (not checked), so their groups keep the
    # HUGEINT sort key in training data.
    op.add_column("ingests", sa.Column("ties", sa.Boolean, nullable=True))
    op.add_column("ingests", sa.Column("tie_columns", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingests") as batch:
        batch.drop_column("tie_columns")
        batch.drop_column("ties")
