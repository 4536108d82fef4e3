"""Add a time to live to feature groups.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy the table, and on SQLite dropping the old
    # copy cascades deletes through the foreign keys.
    op.add_column("feature_groups", sa.Column("ttl_us", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feature_groups") as batch:
        batch.drop_column("ttl_us")
