"""The direct SQLite backend writes what MLflow's client writes, and hands over where it must.

The same calls go through :class:`SqliteBackend` and through :class:`MlflowBackend` (MLflow's
own ``SqlAlchemyStore``) on two copies of one migrated database; every row of the tables a run
touches must come out the same, but for the ids and clock times each side makes itself.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nnexp import tracking
from nnexp.errors import TrackingError
from nnexp.tracking import sqlite_backend
from nnexp.tracking.mlflow_backend import MlflowBackend
from nnexp.tracking.records import MetricPoint
from nnexp.tracking.sqlite_backend import SqliteBackend


def open_with(client: str, tmp_path: Path, migrated_db: Path, monkeypatch, experiment="same"):
    folder = tmp_path / client / "mlruns"
    folder.mkdir(parents=True)
    shutil.copy(migrated_db, folder / "mlflow.db")
    monkeypatch.setenv("NNEXP_TRACKING_CLIENT", client)
    return tracking.open_store(f"sqlite:///{folder / 'mlflow.db'}", experiment)


# Points chosen to exercise MLflow's rules: NaN and infinities, a point logged twice, steps out
# of order and two points at one step (latest_metrics keeps the largest step, timestamp, value).
POINTS = [MetricPoint("loss", 0.9, 1_000, 1), MetricPoint("loss", 0.5, 1_001, 2),
          MetricPoint("loss", 0.7, 1_002, 1), MetricPoint("loss", 0.5, 1_001, 2),
          MetricPoint("acc", math.nan, 1_000, 1), MetricPoint("acc", 0.8, 1_000, 1),
          MetricPoint("big", math.inf, 1_000, 0), MetricPoint("small", -math.inf, 1_000, 0),
          MetricPoint("late", 1.0, 2_000, 3), MetricPoint("late", 2.0, 1_500, 3)]


def record_a_run(store, artifacts: Path) -> tuple[str, str]:
    backend = store.backend
    parent = backend.create_run(store.experiment_id, "parent", {"nnexp.sweep": "parent"})
    run = backend.create_run(store.experiment_id, "child", {"mlflow.parentRunId": parent, "k": "v"})
    backend.log_batch(run, params={"lr": "0.1", "model.hidden": "[16, 8]"})
    backend.log_batch(run, params={"lr": "0.1"})                      # the same value again: fine
    backend.log_batch(run, metrics=POINTS[:5])
    backend.log_batch(run, metrics=POINTS[3:], tags={"k": "w", "nnexp.stop_reason": "completed"})
    backend.log_batch(run, tags={"mlflow.runName": "renamed"})
    backend.log_artifacts(run, artifacts)
    backend.log_artifacts(run, artifacts, "model")
    backend.set_status(run, "FINISHED")
    backend.set_status(parent, "KILLED")
    backend.set_status(parent, "RUNNING", end=False)                  # a resumed sweep's parent
    return parent, run


def table_rows(db: Path, ids: dict[str, str]) -> dict[str, list]:
    """Every row of the run tables, run ids and the store's folder replaced by their role,
    clock times by a marker."""
    def norm(value):
        if isinstance(value, str):
            for role, run_id in ids.items():
                value = value.replace(run_id, role)
        return value

    out = {}
    with sqlite3.connect(db) as connection:
        for table, clock in (("runs", {"start_time", "end_time"}), ("tags", set()), ("params", set()),
                             ("metrics", set()), ("latest_metrics", set()),
                             ("experiments", {"creation_time", "last_update_time"})):
            cursor = connection.execute(f"select * from {table}")
            names = [d[0] for d in cursor.description]
            rows = [tuple((name, "<clock>" if name in clock and v is not None else norm(v))
                          for name, v in zip(names, row)) for row in cursor]
            out[table] = sorted(rows, key=repr)
    return out


def test_the_direct_writer_stores_the_same_rows_as_mlflow(tmp_path, migrated_db, monkeypatch):
    artifacts = tmp_path / "files"
    artifacts.mkdir()
    (artifacts / "config.yaml").write_text("lr: 0.1\n")
    direct = open_with("auto", tmp_path, migrated_db, monkeypatch)
    through_mlflow = open_with("mlflow", tmp_path, migrated_db, monkeypatch)
    assert isinstance(direct.backend, SqliteBackend) and isinstance(through_mlflow.backend, MlflowBackend)
    assert direct.experiment_id == through_mlflow.experiment_id

    results = {}
    for name, store in (("direct", direct), ("mlflow", through_mlflow)):
        parent, run = record_a_run(store, artifacts)
        db = tracking.store.sqlite_path(store.uri)
        rows = table_rows(db, {"<parent>": parent, "<run>": run, "<root>": str(db.parent)})
        found = [(r.run_name, r.status, dict(sorted(r.tags.items())) | {"mlflow.parentRunId": "<parent>"},
                  dict(sorted(r.params.items())), dict(sorted(r.metrics.items())))
                 for r in store.backend.find_runs([store.experiment_id], tags={"mlflow.parentRunId": parent})]
        history = store.backend.metric_history(run, "loss")
        files = sorted(str(p.relative_to(db.parent)).replace(run, "<run>")
                       for p in (db.parent / "artifacts").rglob("*") if p.is_file())
        results[name] = (rows, found, history, files)
    assert results["direct"][0] == results["mlflow"][0]
    assert repr(results["direct"][1:]) == repr(results["mlflow"][1:])   # repr: NaN == NaN
    rows, found, history, files = results["direct"]
    name, status, tags, params, metrics = found[0]
    assert (name, status, tags["k"], params["lr"]) == ("renamed", "FINISHED", "w", "0.1")
    # latest values by MLflow's rule: largest (step, timestamp, value); NaN counts as 0
    assert (metrics["loss"], metrics["acc"], metrics["late"]) == (0.5, 0.8, 1.0)
    assert metrics["big"] == 1.7976931348623157e308 and metrics["small"] == -1.7976931348623157e308
    assert history == [(1, 0.9), (1, 0.7), (2, 0.5)]
    assert files == ["artifacts/same/<run>/artifacts/config.yaml",
                     "artifacts/same/<run>/artifacts/model/config.yaml"]


def test_the_direct_writer_keeps_mlflow_rules(tmp_path, migrated_db, monkeypatch):
    store = open_with("auto", tmp_path, migrated_db, monkeypatch)
    run = store.backend.create_run(store.experiment_id, "r", {})
    store.backend.log_batch(run, params={"lr": "0.1"})
    with pytest.raises(TrackingError, match="params cannot change"):
        store.backend.log_batch(run, params={"lr": "0.2"}, metrics=[MetricPoint("x", 1.0, 1, 1)])
    assert store.backend.metric_history(run, "x") == []               # all or nothing
    with sqlite3.connect(store.backend.db) as connection:
        connection.execute("update runs set lifecycle_stage = 'deleted' where run_uuid = ?", (run,))
    with pytest.raises(TrackingError, match="deleted"):
        store.backend.log_batch(run, tags={"a": "b"})


def test_a_schema_it_does_not_know_is_written_through_mlflow(tmp_path, migrated_db, monkeypatch):
    folder = tmp_path / "mlruns"
    folder.mkdir()
    db = folder / "mlflow.db"
    shutil.copy(migrated_db, db)
    assert sqlite_backend.supports(db)
    with sqlite3.connect(db) as connection:             # a newer MLflow adds a column to runs
        connection.execute("alter table runs add column cost_center text")
    assert not sqlite_backend.supports(db)
    monkeypatch.delenv("NNEXP_TRACKING_CLIENT", raising=False)
    store = tracking.open_store(f"sqlite:///{db}", "moved-on")
    assert isinstance(store.backend, MlflowBackend)
    run = tracking.TrackedRun.start(store, "still-recorded")
    run.log_epoch(1, {"loss": 0.5})
    run.end("FINISHED")
    assert store.backend.find_runs([store.experiment_id])[0].status == "FINISHED"


def test_a_missing_or_new_database_is_not_written_directly(tmp_path):
    assert not sqlite_backend.supports(tmp_path / "absent.db")
    (tmp_path / "empty.db").touch()
    assert not sqlite_backend.supports(tmp_path / "empty.db")
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    assert not sqlite_backend.supports(tmp_path / "junk.db")


def test_a_wrong_client_choice_is_one_line(tracking_uri, monkeypatch):
    monkeypatch.setenv("NNEXP_TRACKING_CLIENT", "sqlalchemy")
    with pytest.raises(TrackingError, match=r"NNEXP_TRACKING_CLIENT='sqlalchemy' is not one of auto, mlflow"):
        tracking.open_store(tracking_uri, "x")


@pytest.mark.slow
def test_a_run_on_an_existing_store_never_imports_mlflow(tmp_path, migrated_db):
    """Without a LoggedModel (``tracking.log_model=false``, as sweep jobs may run) MLflow stays
    out of the run's process; logging the model needs MLflow's own model API."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('mlflow loaded:', 'mlflow' in sys.modules))\n"
             "sys.argv = ['nnexp', 'epochs=2', 'progress=false', 'tracking.log_model=false',"
             " 'hydra.run.dir=outputs/probe']\n"
             "from nnexp.__main__ import main\n"
             "main()\n")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "[FINISHED]" in result.stdout
    assert result.stdout.strip().endswith("mlflow loaded: False")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("breast_cancer").experiment_id])[0]
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize("client", ["auto", "mlflow"])
def test_a_deleted_experiment_is_refused_in_one_line(client, tracking_uri, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("NNEXP_TRACKING_CLIENT", client)
    store = tracking.open_store(tracking_uri, "binned")
    MlflowClient(tracking_uri).delete_experiment(store.experiment_id)
    with pytest.raises(TrackingError, match=r"experiment 'binned' is deleted in .*restore it in the MLflow UI"):
        tracking.open_store(tracking_uri, "binned")
