"""The catalog database: migrations, WAL mode and stores made by other releases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from raise_jupyter import FeatureStore, StoreError
from raise_jupyter.engine import catalog as catalog_module
from raise_jupyter.engine.tables import metadata


def test_revision_constant_is_head() -> None:
    assert catalog_module.CATALOG_REVISION == catalog_module.head_revision()


def test_migrations_match_tables(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    catalog_module.upgrade_catalog(engine, "head")

    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)

    assert differences == []


def test_new_store_uses_wal(root: Path) -> None:
    FeatureStore("acme", root=root)

    with sqlite3.connect(root / "catalog.db") as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_from_older_release_opens(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    engine = sa.create_engine(f"sqlite:///{root / 'catalog.db'}")
    catalog_module.upgrade_catalog(engine, "0001")

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO feature_groups (id, namespace, name, tags, table_path, next_batch, created_at, updated_at) "
                "VALUES (1, 'acme', 'signals', '{}', 'tables/acme/signals', 1, '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO features (group_id, name, dtype, tags, position, created_at, updated_at) "
                "VALUES (1, 'clicks', 'int64', '{}', 0, '2026-01-01', '2026-01-01')"
            )
        )
    engine.dispose()

    fs = FeatureStore("acme", root=root)
    group = fs.get_feature_group("signals")

    assert [f.name for f in group.features] == ["clicks"]
    with sqlite3.connect(root / "catalog.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == catalog_module.CATALOG_REVISION


def test_store_from_newer_release_rejected(tmp_path: Path) -> None:
    root = tmp_path / "new"
    root.mkdir()
    with sqlite3.connect(root / "catalog.db") as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")

    with pytest.raises(StoreError, match=r"schema revision '9999', made by a newer release.*pip install -U raise-jupyter"):
        FeatureStore("acme", root=root)
