"""Create the tables of grants, tokens and the audit log; record who defined scheduled work.

On SQLite, triggers make the audit log append-only: an UPDATE or DELETE of its rows fails. Other
databases get no triggers; there, give the application's database role INSERT and SELECT on
``audit_log`` only.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TRIGGERS = {
    "audit_log_no_update": "UPDATE",
    "audit_log_no_delete": "DELETE",
    # INSERT OR REPLACE with an existing id would replace an entry without firing the DELETE
    # trigger (SQLite fires it only with recursive_triggers on).
    "audit_log_no_replace": "INSERT",
}
_CONDITIONS = {"audit_log_no_replace": "WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id) "}


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user", "role", "path", name="uq_grants_user_role_path"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("object_kind", sa.String(32), nullable=False),
        sa.Column("object", sa.String(600), nullable=False),
        sa.Column("namespace", sa.String(400), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    for table in ("alerts", "live_tables", "jobs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("defined_by", sa.String(200), nullable=True))

    if op.get_bind().dialect.name == "sqlite":
        for name, statement in _TRIGGERS.items():
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {statement} ON audit_log {_CONDITIONS.get(name, '')}"
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in ("jobs", "live_tables", "alerts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("defined_by")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("tokens")
    op.drop_table("grants")
