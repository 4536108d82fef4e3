"""Create the tables of alerts, live tables, the scheduler's tasks and the notification outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(400), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_alerts_group_id"), nullable=False),
        sa.Column("analysis", sa.JSON, nullable=False),
        sa.Column("condition", sa.JSON, nullable=False),
        sa.Column("notify", sa.JSON, nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("on_ingest", sa.Boolean, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("last_values", sa.JSON, nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("namespace", "name", name="uq_alerts_namespace_name"),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE", name="fk_alert_events_alert_id"), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("previous_state", sa.String(16), nullable=True),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("table_version", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "live_tables",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("namespace", sa.String(400), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("group_id", sa.Integer, sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_live_tables_group_id"), nullable=False),
        sa.Column("analysis", sa.JSON, nullable=False),
        sa.Column("refresh", sa.String(200), nullable=False),
        sa.Column("current_path", sa.String(600), nullable=True),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("table_version", sa.BigInteger, nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("namespace", "name", name="uq_live_tables_namespace_name"),
    )
    op.create_table(
        "live_refreshes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("live_table_id", sa.Integer, sa.ForeignKey("live_tables.id", ondelete="CASCADE", name="fk_live_refreshes_live_table_id"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=True),
        sa.Column("path", sa.String(600), nullable=True),
        sa.Column("table_version", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target_id", sa.Integer, nullable=False),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("runs", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
        sa.UniqueConstraint("kind", "target_id", name="uq_tasks_kind_target_id"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(1000), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("tasks")
    op.drop_table("live_refreshes")
    op.drop_table("live_tables")
    op.drop_table("alert_events")
    op.drop_table("alerts")
