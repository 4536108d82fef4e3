"""Names, generated data and result checks of the scenario that ``feast_comparison.py`` runs.

The feature rows and the spine are generated with numpy from a fixed seed. The checks raise
MismatchError, naming the column, the row or key, and both values, when Raise and Feast disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

GROUP_NAME = "user-signals"
KEY = "user_id"
EVENT_TIME = "ts"
SPINE_ROW = "spine_row"
SPINE_LABEL = "label"
STORED_FEATURES = {"clicks": "int64", "impressions": "int64"}
DERIVED_NAME = "ctr"
DERIVED_EXPRESSION = "clicks / NULLIF(impressions, 0)"
FEATURE_REFERENCES = [f"{GROUP_NAME}.clicks", f"{GROUP_NAME}.impressions", f"{GROUP_NAME}.{DERIVED_NAME}"]
# The Feast worker's references, repeated here for the report. _feast_side.py defines them.
FEAST_REFERENCES = ["user-signals:clicks", "user-signals:impressions", "user-signals-ctr:ctr"]
COMPARED_COLUMNS = ["clicks", "impressions", DERIVED_NAME]
CTR_TOLERANCE = 1e-9

SEED = 20261206
# A fixed start in the past, so that no event time is in the future when the benchmark runs.
START = np.datetime64("2025-01-01T00:00:00", "us")
DAYS = 90
US_PER_DAY = 86_400 * 10**6
TIMESTAMP = pa.timestamp("us", tz="UTC")
ROW_GROUP_ROWS = 131_072
UNKNOWN_ENTITY_SHARE = 0.01  # spine rows whose user_id has no feature rows
EARLY_SPINE_SHARE = 0.05  # the spine's time range starts this share of the feature range early
EXACT_TIME_SHARE = 0.01  # spine rows placed at exactly a feature row's user_id and event time
CHECK_KEYS = 100


class MismatchError(Exception):
    """Raise and Feast returned different values."""


# -- data -------------------------------------------------------------------------------------


def generate_features(entities: int, rows_per_entity: int, rng: np.random.Generator) -> pa.Table:
    """Return ``entities * rows_per_entity`` feature rows over DAYS days, roughly in time order.

    The time range is cut into ``rows_per_entity`` slots of equal length, and each entity has one
    row at a random microsecond of each slot, so no entity has two rows with the same event time.
    About 1 in 50 rows has 0 impressions, which makes ``ctr`` missing.
    """
    rows = entities * rows_per_entity
    slot_us = DAYS * US_PER_DAY // rows_per_entity
    user_id = np.concatenate([rng.permutation(entities) for _ in range(rows_per_entity)]).astype(np.int64)
    slot = np.repeat(np.arange(rows_per_entity, dtype=np.int64), entities)
    event_us = START.astype(np.int64) + slot * slot_us + rng.integers(0, slot_us, rows)
    impressions = rng.integers(0, 50, rows)
    clicks = rng.binomial(impressions, 0.05).astype(np.int64)
    return pa.table({KEY: user_id, EVENT_TIME: pa.array(event_us, TIMESTAMP), "clicks": clicks, "impressions": impressions})


def generate_spine(rows: int, features: pa.Table, entities: int, rng: np.random.Generator) -> pa.Table:
    """Return ``rows`` spine rows in random order: spine_row, user_id, ts and a 0/1 label.

    About 1% of the user ids have no feature rows and the timestamps start 5% of the time range
    before the first feature rows, so some rows match nothing. Another 1% of the rows copy the
    user id and event time of a random feature row, which tests that both sides include a
    feature row whose event time equals the spine row's timestamp.
    """
    span_us = DAYS * US_PER_DAY
    user_id = rng.integers(0, entities + math.ceil(entities * UNKNOWN_ENTITY_SHARE), rows).astype(np.int64)
    early_us = int(span_us * EARLY_SPINE_SHARE)
    event_us = START.astype(np.int64) + rng.integers(-early_us, span_us, rows)

    exact = rng.choice(rows, size=int(rows * EXACT_TIME_SHARE), replace=False)
    copied = rng.integers(0, features.num_rows, exact.size)
    user_id[exact] = features.column(KEY).to_numpy()[copied]
    event_us[exact] = features.column(EVENT_TIME).cast(pa.int64()).to_numpy()[copied]

    return pa.table(
        {
            SPINE_ROW: np.arange(rows, dtype=np.int64),
            KEY: user_id,
            EVENT_TIME: pa.array(event_us, TIMESTAMP),
            SPINE_LABEL: rng.integers(0, 2, rows),
        }
    )


def materialize_window(features: pa.Table) -> tuple[dt.datetime, dt.datetime]:
    """Return a [start, end] interval, in UTC, that contains every event time, one second wide on each side."""
    event_times = features.column(EVENT_TIME)
    start = pc.min(event_times).as_py() - dt.timedelta(seconds=1)
    end = pc.max(event_times).as_py() + dt.timedelta(seconds=1)
    return start, end


def online_check_keys(features: pa.Table, entities: int, rng: np.random.Generator) -> tuple[list[int], int]:
    """Return keys for the online check and how many of them have 0 impressions in their latest row.

    The keys are random known ones, then up to a fifth as many whose latest row has 0 impressions,
    then one unknown key.
    """
    frame = features.select([KEY, EVENT_TIME, "impressions"]).to_pandas()
    latest = frame.sort_values([KEY, EVENT_TIME]).groupby(KEY).tail(1)
    zero = latest.loc[latest["impressions"] == 0, KEY].to_numpy()[: CHECK_KEYS // 5]
    known = rng.choice(entities, size=min(entities, CHECK_KEYS), replace=False)
    return [int(key) for key in [*known, *zero, entities + 1]], len(zero)


# -- checks -----------------------------------------------------------------------------------


def compare_training(raise_frame: pd.DataFrame, feast_frame: pd.DataFrame) -> None:
    """Require the same spine rows and equal clicks, impressions and ctr, missing in the same rows."""
    raise_sorted = raise_frame.sort_values(SPINE_ROW).reset_index(drop=True)
    feast_sorted = feast_frame.sort_values(SPINE_ROW).reset_index(drop=True)
    if len(raise_sorted) != len(feast_sorted):
        raise MismatchError(f"Training data: Raise returned {len(raise_sorted):,} rows, Feast {len(feast_sorted):,}")
    if not np.array_equal(raise_sorted[SPINE_ROW].to_numpy(), feast_sorted[SPINE_ROW].to_numpy()):
        raise MismatchError("Training data: Raise and Feast returned different spine rows")

    for column in COMPARED_COLUMNS:
        raise_values = raise_sorted[column].to_numpy(dtype=np.float64, na_value=np.nan)
        feast_values = feast_sorted[column].to_numpy(dtype=np.float64, na_value=np.nan)
        tolerance = CTR_TOLERANCE if column == DERIVED_NAME else 0.0
        raise_missing = np.isnan(raise_values)
        differs = (raise_missing != np.isnan(feast_values)) | (
            ~raise_missing & ~(np.abs(raise_values - feast_values) <= tolerance)
        )
        if differs.any():
            first = int(np.flatnonzero(differs)[0])
            raise MismatchError(
                f"Training data: column {column!r} differs in {int(differs.sum()):,} rows, first at spine_row "
                f"{int(raise_sorted[SPINE_ROW][first])}: Raise {float(raise_values[first])}, Feast {float(feast_values[first])}"
            )


def _as_missing(value: Any) -> Any:
    """Return None for None and NaN, because Feast's pandas function yields NaN where Raise returns null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def compare_online(keys: list[int], raise_values: dict[str, list[Any]], feast_values: dict[str, list[Any]]) -> None:
    """Require equal online values for ``keys``, with ctr within CTR_TOLERANCE and missing values alike."""
    for side, values in (("Raise", raise_values), ("Feast", feast_values)):
        if values[KEY] != keys:
            raise MismatchError(f"Online lookup: {side} returned keys {values[KEY][:5]}... for {keys[:5]}...")

    for column in COMPARED_COLUMNS:
        tolerance = CTR_TOLERANCE if column == DERIVED_NAME else 0
        for key, raise_value, feast_value in zip(keys, raise_values[column], feast_values[column], strict=True):
            raise_value, feast_value = _as_missing(raise_value), _as_missing(feast_value)
            if raise_value is None or feast_value is None:
                equal = raise_value is None and feast_value is None
            else:
                equal = abs(raise_value - feast_value) <= tolerance
            if not equal:
                raise MismatchError(
                    f"Online lookup: {column!r} of user_id {key} is {raise_value!r} in Raise, {feast_value!r} in Feast"
                )
