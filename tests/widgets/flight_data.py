"""Synthetic flights for the widget tests: known nulls and skewed carriers."""

from __future__ import annotations

import numpy as np
import pandas as pd

FLIGHT_ROWS = 300
CARRIERS = ["UA", "AA", "DL", "B6", "WN", "EV"]


def flight_rows(start: int, count: int, *, seed: int = 7) -> pd.DataFrame:
    """Return ``count`` flights with ids from ``start``, with nulls in dep_delay and carrier.

    Every 17th delay and every 23rd carrier is null. Carriers are drawn with unequal weights,
    so value counts have a clear order.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(start, start + count)
    delay = pd.array(np.round(rng.normal(12.0, 30.0, count), 1), dtype="Float64")
    delay[ids % 17 == 0] = pd.NA
    carrier = pd.array(rng.choice(CARRIERS, count, p=[0.35, 0.25, 0.2, 0.1, 0.07, 0.03]), dtype="string")
    carrier[ids % 23 == 0] = pd.NA
    return pd.DataFrame(
        {
            "flight_id": ids,
            "sched_dep": pd.date_range("2024-03-01", periods=count, freq="7min", tz="UTC") + pd.Timedelta(minutes=7 * start),
            "dep_delay": delay,
            "carrier": carrier,
            "distance": rng.integers(100, 3000, count),
            "cancelled": ids % 11 == 0,
        }
    )
