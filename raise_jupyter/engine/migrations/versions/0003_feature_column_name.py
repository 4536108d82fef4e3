"""Store each stored feature's column name in the Delta table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy the table, and on SQLite dropping the old
    # copy cascades deletes through the foreign keys.
    op.add_column("features", sa.Column("column_name", sa.String(160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("features") as batch:
        batch.drop_column("column_name")
