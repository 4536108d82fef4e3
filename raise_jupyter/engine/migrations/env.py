"""Alembic environment: runs migrations on the connection that the catalog passes in."""

from __future__ import annotations

from alembic import context

from raise_jupyter.engine.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
