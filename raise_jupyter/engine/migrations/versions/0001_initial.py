"""Create feature groups, features and ingests.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(400), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("keys", sa.JSON, nullable=True),
        sa.Column("event_time", sa.String(128), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("table_path", sa.String(600), nullable=False),
        sa.Column("next_batch", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("namespace", "name", name="uq_feature_groups_namespace_name"),
    )
    op.create_table(
        "features",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_features_group_id"),
            nullable=False,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("dtype", sa.String(64), nullable=False),
        sa.Column("derived_from", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("group_id", "name", name="uq_features_group_id_name"),
    )
    op.create_table(
        "ingests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_ingests_group_id"),
            nullable=False,
        ),
        sa.Column("batch", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("table_version", sa.BigInteger, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("group_id", "batch", name="uq_ingests_group_id_batch"),
    )


def downgrade() -> None:
    op.drop_table("ingests")
    op.drop_table("features")
    op.drop_table("feature_groups")
