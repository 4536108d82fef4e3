"""Record the first table version whose column belongs to each stored feature.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy the table, and on SQLite dropping the old
    # copy cascades deletes through the foreign keys.
    op.add_column("features", sa.Column("since_version", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("features") as batch:
        batch.drop_column("since_version")
