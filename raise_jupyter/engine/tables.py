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
