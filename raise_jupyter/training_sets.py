"""Records of training sets: which features and table versions each ``get_training_data`` read.

Every call adds one catalog row, so lineage can show which training sets used a feature even
after the feature or its group is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import as_utc, utcnow
from raise_jupyter.errors import DefinitionError

if TYPE_CHECKING:
    import pandas

    from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class GroupRead:
    """One group that a training set read, and the table version it read."""

    name: str
    id: int
    table_path: str
    version: int

    def to_spec(self) -> dict[str, object]:
        return {"name": self.name, "id": self.id, "table_path": self.table_path, "version": self.version}


def validate_name(name: object) -> str | None:
    """Return ``name`` stripped, or None; raise DefinitionError unless it is a short string."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        raise DefinitionError(
            f"name must be a non-empty string of at most {MAX_NAME_LENGTH} characters, such as 'churn-v2', got {name!r}."
        )
    return name.strip()


def record(
    store: FeatureStore, *, name: str | None, features: Sequence[str], groups: Sequence[GroupRead], spine_rows: int
) -> int | None:
    """Insert the record of one training set and return its id.

    A failed insert is logged and returns None, because the training data itself is complete.
    """
    try:
        with store._catalog.write() as conn:
            result = conn.execute(
                tables.training_sets.insert().values(
                    namespace=store.namespace,
                    name=name,
                    user=store.user[:200],
                    created_at=utcnow(),
                    features=list(features),
                    groups=[g.to_spec() for g in groups],
                    spine_rows=spine_rows,
                )
            )
    except sa.exc.SQLAlchemyError as error:
        logger.warning("Recording the training set %s in the catalog failed: %s", name or "(unnamed)", error)
        return None
    return int(result.inserted_primary_key[0])


def history(store: FeatureStore) -> pandas.DataFrame:
    """Return the recorded training sets of the store's namespace, newest first."""
    import pandas as pd

    records = tables.training_sets
    with store._catalog.read() as conn:
        rows = conn.execute(
            sa.select(records).where(records.c.namespace == store.namespace).order_by(records.c.id.desc())
        ).all()
    return pd.DataFrame(
        {
            "id": [row.id for row in rows],
            "name": [row.name for row in rows],
            "user": [row.user for row in rows],
            "created_at": [as_utc(row.created_at) for row in rows],
            "features": [list(row.features) for row in rows],
            "versions": [{read["name"]: read["version"] for read in row.groups} for row in rows],
            "spine_rows": [row.spine_rows for row in rows],
        }
    )
