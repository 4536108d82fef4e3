"""Benchmark online lookups: one key and 100 keys, in process and over HTTP.

Run ``python bench/online_lookups.py --output BENCHMARKS.md``. The group has 100,000 entities,
three stored features and a derived one (``ctr``, computed at lookup). Baselines from the same
run: a plain ``sqlite3`` SELECT of the same row(s) from the same online.db file, which shows what
Raise adds on top of the storage.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from _common import render_run_header, verdict, write_section

from raise_jupyter import FeatureStore

SECTION_TITLE = "Online lookups"
NAMESPACE = "bench/online"
FEATURES = ["signals.clicks", "signals.impressions", "signals.ctr"]
IN_PROCESS_P99_TARGET_MS = 0.5
HTTP_P99_TARGET_MS = 5.0


def build_store(root: Path, entities: int) -> FeatureStore:
    fs = FeatureStore(NAMESPACE, root=root)
    group = fs.create_feature_group("signals", keys="user_id", event_time="ts", online=True)
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "clicks": "int64", "impressions": "int64", "score": "float64"})
    group.create_feature("ctr", dtype="float64", derived_from="clicks / NULLIF(impressions, 0)")
    rng = np.random.default_rng(7)
    group.ingest(
        pa.table(
            {
                "user_id": pa.array(np.arange(entities, dtype=np.int64)),
                "ts": pa.array(np.full(entities, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
                "clicks": pa.array(rng.integers(0, 100, entities)),
                "impressions": pa.array(rng.integers(1, 1000, entities)),
                "score": pa.array(rng.random(entities)),
            }
        )
    )
    return fs


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.array(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def measure(operation, keys: list[list[int]], warmup: int) -> list[float]:
    for batch in keys[:warmup]:
        operation(batch)
    samples = []
    for batch in keys[warmup:]:
        started = time.perf_counter()
        operation(batch)
        samples.append(time.perf_counter() - started)
    return samples


def raw_sqlite(root: Path, group_id: int):
    con = sqlite3.connect(root / "online.db")
    sql = f'SELECT "__event_us", "clicks", "impressions" FROM "group_{group_id}" WHERE "user_id" = ?'

    def lookup(batch: list[int]) -> list[object]:
        return [con.execute(sql, (key,)).fetchone() for key in batch]

    return lookup


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "raise_jupyter.cli", "--root", str(root), "serve", NAMESPACE, "--port", str(port)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            connection.getresponse().read()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("raise serve did not start")


def http_lookup(port: int, token: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def lookup(batch: list[int]) -> list[object]:
        body = json.dumps({"features": FEATURES, "entities": {"user_id": batch}})
        connection.request("POST", "/v1/online-features", body, headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(payload)
        return payload["results"]

    return lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000, help="entities in the online group (default: 100,000)")
    parser.add_argument("--lookups", type=int, default=5_000, help="timed lookups per case (default: 5,000)")
    parser.add_argument("--output", type=Path, default=None, help="Markdown file whose section is replaced (default: print only)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="raise-online-bench-"))
    fs = build_store(root, args.entities)
    group_id = fs.get_feature_group("signals")._id
    token = fs.create_token(fs.user).token
    rng = np.random.default_rng(11)
    warmup = 200
    cases = {"1 key": 1, "100 keys": 100}

    check = fs.get_online_features(FEATURES, {"user_id": [5]}).to_arrow().to_pylist()[0]
    assert check["status"] == "found"
    assert check["ctr"] == check["clicks"] / check["impressions"]

    results: dict[str, dict[str, tuple[float, float]]] = {}
    process, port = start_server(root)
    try:
        for case, size in cases.items():
            keys = [rng.integers(0, args.entities, size).tolist() for _ in range(args.lookups + warmup)]
            python_side = lambda batch: fs.get_online_features(FEATURES, {"user_id": batch})  # noqa: E731
            results[case] = {
                "raise, in process": percentiles(measure(python_side, keys, warmup)),
                "raise, HTTP": percentiles(measure(http_lookup(port, token), keys, warmup)),
                "sqlite3 SELECT (baseline)": percentiles(measure(raw_sqlite(root, group_id), keys, warmup)),
            }
            print(case, results[case], file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=10)

    command = "python bench/online_lookups.py " + " ".join(sys.argv[1:])
    lines = render_run_header(SECTION_TITLE, command.strip())
    lines += [
        "",
        f"{args.entities:,} entities in an online group (SQLite online store), features "
        f"{', '.join(FEATURES)}; `ctr = clicks / NULLIF(impressions, 0)` is derived and computed at "
        f"lookup. {args.lookups:,} timed lookups of random keys per case after {warmup} warm-up ones. "
        "HTTP goes through `raise serve` (uvicorn) on 127.0.0.1 over one keep-alive connection from "
        "`http.client`. The baseline reads the same rows from the same online.db with `sqlite3` and "
        "computes nothing.",
        "",
        "| case | side | p50 ms | p99 ms |",
        "|---|---|---:|---:|",
    ]
    for case, sides in results.items():
        for side, (p50, p99) in sides.items():
            lines.append(f"| {case} | {side} | {p50:.3f} | {p99:.3f} |")
    one_key = results["1 key"]
    lines += [
        "",
        f"One-key lookup with a derived feature, in process: p99 {one_key['raise, in process'][1]:.3f} ms "
        f"(target under {IN_PROCESS_P99_TARGET_MS} ms: {verdict(one_key['raise, in process'][1] < IN_PROCESS_P99_TARGET_MS)}). "
        f"Over HTTP: p99 {one_key['raise, HTTP'][1]:.3f} ms (target under {HTTP_P99_TARGET_MS} ms: "
        f"{verdict(one_key['raise, HTTP'][1] < HTTP_P99_TARGET_MS)}).",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.output is not None:
        write_section(args.output, SECTION_TITLE, section)


if __name__ == "__main__":
    main()
