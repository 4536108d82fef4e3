"""Jobs with SQL and Python transforms: runs, progress, cancel, failures, incremental schedules."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from raise_jupyter import ConflictError, DefinitionError, FeatureStore, NotFoundError, scheduler
from raise_jupyter.engine import tables
from raise_jupyter.engine.catalog import utcnow
from raise_jupyter.jobs import FeatureGroupSource, Target
from raise_jupyter.store import open_catalog
from raise_jupyter.transforms import embedding_inference, python_transform, sql_transform

LENGTH_SQL = 'SELECT user_id, ts, length(bio) AS bio_length FROM "user-profiles"'


def bio_length(batch: pd.DataFrame) -> pd.DataFrame:
    """A module-level transform, importable by worker processes."""
    return batch.assign(bio_length=batch["bio"].str.len())[["user_id", "ts", "bio_length"]]


def slow_length(batch: pd.DataFrame) -> pd.DataFrame:
    time.sleep(0.3)
    return bio_length(batch)


def broken(batch: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("the model exploded")


@pytest.fixture
def profiles(fs: FeatureStore):
    group = fs.create_feature_group("user-profiles", keys="user_id", event_time="ts")
    group.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "bio": "string", "age": "int64"})
    return group


def add_profiles(group, ids: list[int], day: int = 1) -> None:
    group.ingest({
        "user_id": ids,
        "ts": [dt.datetime(2024, 1, day, tzinfo=dt.timezone.utc)] * len(ids),
        "bio": ["x" * (i % 7 + 1) for i in ids],
        "age": [30] * len(ids),
    })


def lengths(fs: FeatureStore) -> dict[int, int]:
    frame = fs.get_feature_group("profile-stats").to_pandas()
    return dict(zip(frame["user_id"], frame["bio_length"]))


def test_sql_job_creates_target(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1, 2, 3])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"))

    run = job.run().wait(60)

    assert run.status == "succeeded", run.error
    assert lengths(fs) == {1: 2, 2: 3, 3: 4}
    target = fs.get_feature_group("profile-stats")
    assert target.keys == ["user_id"]
    assert target.event_time == "ts"
    assert run.progress.rows_done == 3


def test_runs_are_incremental_and_upsert(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1, 2])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], python_transform(bio_length), Target("profile-stats"))
    first = job.run().wait(60)
    add_profiles(profiles, [3])
    second = job.run().wait(60)
    full = job.run(full=True).wait(60)

    assert [first.progress.rows_total, second.progress.rows_total, full.progress.rows_total] == [2, 1, 3]
    assert fs.get_feature_group("profile-stats").count() == 3  # the full run replaced, not duplicated
    assert lengths(fs) == {1: 2, 2: 3, 3: 4}
    assert job.runs()["mode"].tolist() == ["full", "incremental", "incremental"]


def test_append_target_keeps_every_row(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1, 2])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats", mode="append"))

    job.run().wait(60)
    job.run(full=True).wait(60)

    assert fs.get_feature_group("profile-stats").count() == 4


def test_cancel_leaves_target_unchanged(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, list(range(40)))
    job = fs.create_job(
        "bio-stats", [FeatureGroupSource("user-profiles")], python_transform(slow_length, batch_rows=2), Target("profile-stats")
    )

    run = job.run()
    deadline = time.monotonic() + 30
    while run.progress.rows_done == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    run.cancel().wait(30)

    assert run.status == "cancelled"
    assert time.monotonic() - started < 2  # within about one batch of 0.3 s
    assert "profile-stats" not in [g.name for g in fs.list_feature_groups()]
    assert job.runs()["status"].tolist() == ["cancelled"]


def test_failing_transform_recorded(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], python_transform(broken), Target("profile-stats"))

    run = job.run().wait(60)

    assert run.status == "failed"
    assert "ValueError: the model exploded" in run.error
    assert "Traceback" in run.error
    assert "the model exploded" in job.runs()["error"].tolist()[0]


def test_progress_reported_every_second(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, list(range(12)))
    job = fs.create_job(
        "bio-stats", [FeatureGroupSource("user-profiles")], python_transform(slow_length, batch_rows=1), Target("profile-stats")
    )
    runs = tables.job_runs

    run = job.run()
    stamps = []
    while run.status == "running":
        with open_catalog(fs.root).read() as conn:
            stamps.append(conn.execute(sa.select(runs.c.updated_at, runs.c.rows_done).where(runs.c.id == run.id)).one())
        time.sleep(0.1)
    run.wait(30)

    changes = sorted({stamp for stamp, _ in stamps})
    gaps = [(b - a).total_seconds() for a, b in zip(changes, changes[1:])]
    assert run.status == "succeeded"
    assert len(changes) >= 3
    assert max(gaps) <= 1.0
    assert [done for _, done in stamps] == sorted(done for _, done in stamps)


def test_checks_at_creation(fs: FeatureStore, profiles) -> None:
    source = [FeatureGroupSource("user-profiles")]
    with pytest.raises(NotFoundError, match=r"input_column 'bio_text' is not read from group 'user-profiles'\. Columns: user_id, ts, bio, age"):
        fs.create_job("embed", source, embedding_inference("/nonexistent/model", "bio_text", "bio_embedding"), Target("t"))
    with pytest.raises(DefinitionError, match=r"input_column 'age' has dtype int64; embedding_inference needs a string column"):
        fs.create_job("embed", source, embedding_inference("/nonexistent/model", "age", "age_embedding"), Target("t"))
    with pytest.raises(NotFoundError, match="Feature group 'no-such-group' does not exist"):
        fs.create_job("gone", [FeatureGroupSource("no-such-group")], sql_transform(LENGTH_SQL), Target("t"))
    with pytest.raises(DefinitionError, match=r"The sql_transform query is invalid: .*boi"):
        fs.create_job("bad-sql", source, sql_transform('SELECT user_id, ts, length(boi) AS n FROM "user-profiles"'), Target("t"))
    with pytest.raises(DefinitionError, match=r"must return the key and event time columns \['ts'\]"):
        fs.create_job("no-ts", source, sql_transform('SELECT user_id, length(bio) AS n FROM "user-profiles"'), Target("t"))

    assert fs.list_jobs() == []


def test_checks_again_before_running(fs: FeatureStore, profiles) -> None:
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"))
    profiles.delete_feature("bio")

    with pytest.raises(DefinitionError, match=r"The sql_transform query is invalid: .*\"bio\" not found"):
        job.run()
    assert len(job.runs()) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "Bio Stats"}, "Job name 'Bio Stats' is invalid"),
        ({"sources": ["user-profiles"]}, "sources must be a list of FeatureGroupSource"),
        ({"transform": "length(bio)"}, "transform must come from embedding_inference"),
        ({"target": 3}, "target must be a Target"),
        ({"schedule": "sometimes"}, "sometimes"),
        ({"transform": python_transform(lambda b: b), "schedule": "hourly"}, "cannot import a function defined in a notebook"),
    ],
)
def test_bad_job_definitions(fs: FeatureStore, profiles, arguments: dict, message: str) -> None:
    values = {"name": "bio-stats", "sources": [FeatureGroupSource("user-profiles")], "transform": sql_transform(LENGTH_SQL), "target": Target("profile-stats")}
    values.update(arguments)

    with pytest.raises(DefinitionError, match=message):
        fs.create_job(**values)
    assert fs.list_jobs() == []


def test_recreate_identical_job_is_noop(fs: FeatureStore, profiles) -> None:
    first = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"))
    second = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"))

    assert first._id == second._id
    with pytest.raises(ConflictError, match="Job 'bio-stats' exists with a different target"):
        fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("other"))


def test_scheduled_job_processes_only_new_rows(fs: FeatureStore, profiles) -> None:
    job = fs.create_job(
        "bio-stats", [FeatureGroupSource("user-profiles")], python_transform(bio_length), Target("profile-stats"), schedule="hourly"
    )
    add_profiles(profiles, [1, 2])
    catalog = open_catalog(fs.root)

    first = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=1, minutes=1))
    add_profiles(profiles, [3], day=2)
    second = scheduler.run_due(fs.root, owner="test", now=utcnow() + dt.timedelta(hours=2, minutes=1))

    history = job.runs()
    assert (first, second) == (1, 1)
    assert history["rows_total"].tolist() == [1, 2]
    assert history["due_at"].notna().all()
    assert lengths(fs) == {1: 2, 2: 3, 3: 4}
    assert scheduler.task_info(catalog, "job", job._id)["last_status"] == "succeeded"


def test_delete_job_removes_schedule(fs: FeatureStore, profiles) -> None:
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"), schedule="daily")

    job.delete()

    assert fs.list_jobs() == []
    assert scheduler.task_info(open_catalog(fs.root), "job", job._id) is None


def _delete_group_in_catalog(fs: FeatureStore, name: str) -> None:
    """Delete a group that a job reads, as a store written by an older release may have.

    ``fs.delete_feature_group`` rejects that now unless cascade=True, which deletes the job too.
    """
    catalog = open_catalog(fs.root)
    with catalog.write() as conn:
        record = catalog.get_group(conn, fs.namespace, name)
        catalog.delete_group(conn, record.id)


def test_recreated_source_group_is_read_again(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1, 2])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], python_transform(bio_length), Target("profile-stats"))
    job.run().wait(60)
    _delete_group_in_catalog(fs, "user-profiles")
    again = fs.create_feature_group("user-profiles", keys="user_id", event_time="ts")
    again.create_features_from_schema({"user_id": "int64", "ts": "timestamp", "bio": "string", "age": "int64"})
    add_profiles(again, [7])

    run = job.run().wait(60)

    assert run.progress.rows_total == 1
    assert lengths(fs)[7] == 1


def test_second_run_refused_while_running(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, list(range(10)))
    job = fs.create_job(
        "bio-stats", [FeatureGroupSource("user-profiles")], python_transform(slow_length, batch_rows=1), Target("profile-stats", mode="append")
    )

    first = job.run()
    with pytest.raises(ConflictError, match=r"Job 'bio-stats' is already running \(run \d+\); wait for it or cancel it"):
        job.run()
    first.cancel().wait(30)

    assert job.run(full=True).wait(60).status == "succeeded"
    assert fs.get_feature_group("profile-stats").count() == 10


def test_run_of_dead_process_marked_failed(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1])
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"))
    long_ago = utcnow() - dt.timedelta(minutes=5)
    with open_catalog(fs.root).write() as conn:
        conn.execute(tables.job_runs.insert().values(job_id=job._id, status="running", mode="full", started_at=long_ago, updated_at=long_ago))

    run = job.run().wait(60)

    history = job.runs()
    assert run.status == "succeeded"
    assert history["status"].tolist() == ["succeeded", "failed"]
    assert "abandoned" in history["error"].tolist()[1]


def test_redefined_job_starts_over(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1, 2, 3])
    source = FeatureGroupSource("user-profiles", where="user_id >= 3")
    fs.create_job("bio-stats", [source], sql_transform(LENGTH_SQL), Target("profile-stats")).run().wait(60)

    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], sql_transform(LENGTH_SQL), Target("profile-stats"), replace=True)
    run = job.run().wait(60)

    assert run.progress.rows_total == 3
    assert sorted(lengths(fs)) == [1, 2, 3]


def test_upsert_keeps_latest_duplicate_source_row(fs: FeatureStore, profiles) -> None:
    add_profiles(profiles, [1])
    profiles.ingest({"user_id": [1], "ts": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)], "bio": ["longer bio"], "age": [31]})
    job = fs.create_job("bio-stats", [FeatureGroupSource("user-profiles")], python_transform(bio_length), Target("profile-stats"))

    run = job.run().wait(60)

    assert run.status == "succeeded", run.error
    assert lengths(fs) == {1: len("longer bio")}


def test_process_exit_cancels_running_job(tmp_path) -> None:
    """A script that ends while its job runs exits normally and records the run as cancelled."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "exit_early.py"
    script.write_text(textwrap.dedent(f'''
        import time
        import pandas as pd
        from raise_jupyter import FeatureGroupSource, FeatureStore, Target, python_transform

        def slow(batch):
            time.sleep(0.2)
            return batch[["user_id", "ts"]].assign(double=batch["clicks"] * 2)

        fs = FeatureStore("acme/exit", root={str(tmp_path / "store")!r})
        events = fs.create_feature_group("events", keys="user_id", event_time="ts")
        events.create_features_from_schema({{"user_id": "int64", "ts": "timestamp", "clicks": "int64"}})
        events.ingest(pd.DataFrame({{"user_id": range(100), "ts": pd.Timestamp("2026-01-01", tz="UTC"), "clicks": range(100)}}))
        job = fs.create_job("slow", sources=[FeatureGroupSource("events")], transform=python_transform(slow, batch_rows=5),
                            target=Target("doubled"))
        job.run()
        time.sleep(0.5)
    '''))

    finished = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr[-2000:]
    runs = FeatureStore("acme/exit", root=tmp_path / "store").get_job("slow").runs()
    assert runs["status"].tolist() == ["cancelled"]
