"""SQLAlchemy table definitions of the catalog.

The migrations under ``migrations/versions`` create these tables; a test compares the two so
they cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

feature_groups = sa.Table(
    "feature_groups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("namespace", sa.String(400), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("keys", sa.JSON, nullable=True),
    sa.Column("event_time", sa.String(128), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("tags", sa.JSON, nullable=False),
    # Table location relative to the store root, so a store can be moved as a whole.
    sa.Column("table_path", sa.String(600), nullable=False),
    # Next ingest batch number; each ingest takes one, which orders rows by ingestion.
    sa.Column("next_batch", sa.BigInteger, nullable=False),
    # How long a row's values stay valid after its event time, in microseconds; NULL is forever.
    sa.Column("ttl_us", sa.BigInteger, nullable=True),
    # Whether every ingest also writes each key's latest values to the online store.
    sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("namespace", "name", name="uq_feature_groups_namespace_name"),
)

features = sa.Table(
    "features",
    metadata,
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
    # First table version whose column of this name belongs to this feature. Reads of older
    # versions show NULL, because the column may have held a deleted feature's values then.
    sa.Column("since_version", sa.BigInteger, nullable=True),
    # Column of the Delta table that contains a stored feature's values. NULL means the
    # feature's name. A feature created again, or with a new dtype, gets a fresh column, because
    # the table never drops a column that may contain an earlier feature's values.
    sa.Column("column_name", sa.String(160), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("group_id", "name", name="uq_features_group_id_name"),
)

ingests = sa.Table(
    "ingests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_ingests_group_id"),
        nullable=False,
    ),
    sa.Column("batch", sa.BigInteger, nullable=False),
    # "pending" while the Delta commit runs, then "committed" or "failed". A process killed
    # mid-ingest leaves "pending"; the Delta log, not this row, decides what readers see.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("table_version", sa.BigInteger, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # Whether two rows of the batch share keys and event time (NULL: not checked), and the
    # columns checked. Training data uses a faster sort key when no batch has such ties.
    sa.Column("ties", sa.Boolean, nullable=True),
    sa.Column("tie_columns", sa.JSON, nullable=True),
    sa.UniqueConstraint("group_id", "batch", name="uq_ingests_group_id_batch"),
)

# -- analytics, alerts, live tables, scheduler and outbox (revision 0007) ------------------------

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("namespace", sa.String(400), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_alerts_group_id"),
        nullable=False,
    ),
    # Aggregation.to_spec(), Condition.to_spec() and the list of notify targets, as JSON.
    sa.Column("analysis", sa.JSON, nullable=False),
    sa.Column("condition", sa.JSON, nullable=False),
    sa.Column("notify", sa.JSON, nullable=False),
    sa.Column("schedule", sa.String(200), nullable=False),
    sa.Column("on_ingest", sa.Boolean, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    # "ok", "firing" or "no_data"; NULL before the first evaluation.
    sa.Column("state", sa.String(16), nullable=True),
    # Metric values of the last evaluation per series, for CHANGED_BY.
    sa.Column("last_values", sa.JSON, nullable=True),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # User who last defined it; its scheduled runs act as this user (revision 0009).
    sa.Column("defined_by", sa.String(200), nullable=True),
    sa.UniqueConstraint("namespace", "name", name="uq_alerts_namespace_name"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "alert_id",
        sa.Integer,
        sa.ForeignKey("alerts.id", ondelete="CASCADE", name="fk_alert_events_alert_id"),
        nullable=False,
    ),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("previous_state", sa.String(16), nullable=True),
    sa.Column("values", sa.JSON, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("table_version", sa.BigInteger, nullable=True),
)

live_tables = sa.Table(
    "live_tables",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("namespace", sa.String(400), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column(
        "group_id",
        sa.Integer,
        sa.ForeignKey("feature_groups.id", ondelete="CASCADE", name="fk_live_tables_group_id"),
        nullable=False,
    ),
    sa.Column("analysis", sa.JSON, nullable=False),
    sa.Column("refresh", sa.String(200), nullable=False),
    # Parquet file of the current result, relative to the store root; NULL before the first
    # refresh. A refresh writes a new file, then points this column at it in one transaction.
    sa.Column("current_path", sa.String(600), nullable=True),
    sa.Column("rows", sa.BigInteger, nullable=True),
    sa.Column("table_version", sa.BigInteger, nullable=True),
    sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # User who last defined it; its scheduled runs act as this user (revision 0009).
    sa.Column("defined_by", sa.String(200), nullable=True),
    sa.UniqueConstraint("namespace", "name", name="uq_live_tables_namespace_name"),
)

live_refreshes = sa.Table(
    "live_refreshes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "live_table_id",
        sa.Integer,
        sa.ForeignKey("live_tables.id", ondelete="CASCADE", name="fk_live_refreshes_live_table_id"),
        nullable=False,
    ),
    # The scheduled time this refresh ran for; NULL for a refresh started by hand.
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    # "running", "succeeded", "failed", or "superseded" when a refresh of a newer table version
    # finished first and this result was dropped.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=True),
    sa.Column("path", sa.String(600), nullable=True),
    sa.Column("table_version", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String(200), nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # What runs: "alert" or "live_table", and the id of that alert or live table.
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("target_id", sa.Integer, nullable=False),
    # "hourly", "daily", "every 30s" or a five-field cron string.
    sa.Column("schedule", sa.String(200), nullable=False),
    sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    # A worker that claims a due task holds this lease and renews it while the task runs. Once
    # the lease has expired because its worker died, another worker may claim the task.
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
    # "succeeded" or "failed".
    sa.Column("last_status", sa.String(16), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("runs", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
    sa.UniqueConstraint("kind", "target_id", name="uq_tasks_kind_target_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # "email", "webhook" or "log", and the address, URL or "log".
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("target", sa.String(1000), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    # Extra fields of the message, such as the alert name and state, as JSON.
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    # A sender claims a message with a lease, so that two processes never send it both.
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
)

# -- inference and transform jobs (revision 0008) ------------------------------------------------

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("namespace", sa.String(400), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    # FeatureGroupSource, transform and Target specs, as JSON.
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("transform", sa.JSON, nullable=False),
    sa.Column("target", sa.JSON, nullable=False),
    # A normalized Schedule string; NULL for jobs that run only when asked.
    sa.Column("schedule", sa.String(200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # User who last defined it; its scheduled runs act as this user (revision 0009).
    sa.Column("defined_by", sa.String(200), nullable=True),
    sa.UniqueConstraint("namespace", "name", name="uq_jobs_namespace_name"),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "job_id",
        sa.Integer,
        sa.ForeignKey("jobs.id", ondelete="CASCADE", name="fk_job_runs_job_id"),
        nullable=False,
    ),
    # "running", "succeeded", "failed" or "cancelled".
    sa.Column("status", sa.String(16), nullable=False),
    # "full" or "incremental" (only source rows written since the last successful run).
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("rows_total", sa.BigInteger, nullable=True),
    sa.Column("rows_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("device", sa.String(64), nullable=True),
    # Highest _raise_seq read from each source group, by the group's table path; the next
    # incremental run reads only rows above it.
    sa.Column("source_positions", sa.JSON, nullable=True),
    sa.Column("target_version", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# -- access control, tokens and the audit log (revision 0009) -----------------------------------

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user", sa.String(200), nullable=False),
    # "viewer", "editor" or "owner".
    sa.Column("role", sa.String(16), nullable=False),
    # Namespace path the role applies to, with every path below it; "" is the whole store.
    sa.Column("path", sa.String(400), nullable=False),
    sa.Column("granted_by", sa.String(200), nullable=False),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("user", "role", "path", name="uq_grants_user_role_path"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user", sa.String(200), nullable=False),
    # SHA-256 of the token, hex; the token itself is shown once and never stored.
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("token_hash", name="uq_tokens_token_hash"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    # "define", "update", "delete", "ingest", "grant", "job_run", "alert_state", ... and "read"
    # for denied reads; see access.py for the full list.
    sa.Column("action", sa.String(32), nullable=False),
    # "feature_group", "feature", "alert", "live_table", "job", "grant", "token" or "namespace".
    sa.Column("object_kind", sa.String(32), nullable=False),
    sa.Column("object", sa.String(600), nullable=False),
    # Namespace the object belongs to; "" for objects of the whole store, such as tokens.
    sa.Column("namespace", sa.String(400), nullable=False),
    # "ok", "denied" or "failed".
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_audit_log_at", "at"),
)

# -- lineage (revision 0010) ---------------------------------------------------------------------

# One row per get_training_data call. Rows are history: deleting a group or feature keeps them.
training_sets = sa.Table(
    "training_sets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("namespace", sa.String(400), nullable=False),
    # The name passed as get_training_data(name=...); NULL when none was given.
    sa.Column("name", sa.String(200), nullable=True),
    # The FeatureStore user (RAISE_USER, else the login name), as given: not authenticated.
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The requested features as "group.feature", with "group.*" expanded.
    sa.Column("features", sa.JSON, nullable=False),
    # One entry per group read: {"name", "id", "table_path", "version"}. The table path
    # distinguishes a group from a later group of the same name, because SQLite reuses deleted ids.
    sa.Column("groups", sa.JSON, nullable=False),
    sa.Column("spine_rows", sa.BigInteger, nullable=False),
    sa.Index("ix_training_sets_namespace", "namespace"),
)
