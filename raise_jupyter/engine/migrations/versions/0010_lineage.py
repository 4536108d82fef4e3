"""Create the table of training sets, the lineage record of get_training_data calls.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_sets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(400), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("spine_rows", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_training_sets_namespace", "training_sets", ["namespace"])


def downgrade() -> None:
    op.drop_index("ix_training_sets_namespace", table_name="training_sets")
    op.drop_table("training_sets")
