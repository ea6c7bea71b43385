"""Faults inside the tracking layer, in-process: writes cut short, a store that fails while a run
ends, signals while a run is being closed, and the creation lock's fast path."""

from __future__ import annotations

import os
import signal

import pytest

from nnexp import tracking
from nnexp.tracking import store as store_module


@pytest.fixture(params=["auto", "mlflow"])
def store(request, tracking_uri, monkeypatch):
    """The store written directly (auto) and through MLflow's client: the same faults for both."""
    monkeypatch.setenv("NNEXP_TRACKING_CLIENT", request.param)
    return tracking.open_store(tracking_uri, "faults")


def mlflow_run(run):
    """The run as MLflow itself reads it back."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(run.store.uri).get_run(run.run_id)


def steps(run, key="loss"):
    from mlflow.tracking import MlflowClient

    return [m.step for m in MlflowClient(run.store.uri).get_metric_history(run.run_id, key)]


def test_points_of_a_write_cut_short_are_written_at_the_end(store, monkeypatch):
    """Ctrl-C arriving while a batch of metrics is written: the points stay queued and
    ``end()`` writes them (MLflow drops any that had in fact been written)."""
    run = tracking.TrackedRun.start(store, "cut-short", flush_seconds=0)
    real_log_batch = run.backend.log_batch
    calls = []

    def interrupted_once(run_id, metrics=(), **kwargs):
        calls.append(len(metrics))
        if len(calls) == 2 and metrics:
            real_log_batch(run_id, metrics=metrics[:1], **kwargs)  # half of it lands...
            raise KeyboardInterrupt                                # ...then Ctrl-C
        return real_log_batch(run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(run.backend, "log_batch", interrupted_once)
    run.log_epoch(1, {"loss": 1.0, "acc": 0.5})
    with pytest.raises(KeyboardInterrupt):
        run.log_epoch(2, {"loss": 0.5, "acc": 0.7})
    run.end("KILLED", error="interrupted by SIGINT (Ctrl-C)")
    assert steps(run) == [1, 2] and steps(run, "acc") == [1, 2]   # each point once
    assert mlflow_run(run).info.status == "KILLED"


def test_a_run_whose_metrics_cannot_be_written_is_failed_not_finished(store, monkeypatch):
    run = tracking.TrackedRun.start(store, "store-fails")
    run.log_epoch(1, {"loss": 1.0})
    real_log_batch = run.backend.log_batch

    def failing(run_id, metrics=(), **kwargs):
        if metrics:
            raise OSError("disk full")
        return real_log_batch(run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(run.backend, "log_batch", failing)
    with pytest.raises(OSError, match="disk full"):
        run.end("FINISHED")
    info = mlflow_run(run)
    assert info.info.status == "FAILED"
    assert "metrics could not be written: disk full" in info.data.tags["nnexp.error"]
    run.end("FAILED")  # a second end is a no-op


def test_signals_arriving_while_a_run_is_closed_do_not_leave_it_running(store, monkeypatch):
    run = tracking.TrackedRun.start(store, "closing")
    run.log_epoch(1, {"loss": 1.0})
    real_set_status = run.backend.set_status

    def set_status_under_fire(run_id, status, end=True):
        os.kill(os.getpid(), signal.SIGINT)     # ignored while the run is closed
        os.kill(os.getpid(), signal.SIGTERM)
        real_set_status(run_id, status, end)

    monkeypatch.setattr(run.backend, "set_status", set_status_under_fire)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    run.end("KILLED", error="interrupted")
    assert mlflow_run(run).info.status == "KILLED"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # restored
    assert steps(run) == [1]


def test_an_existing_experiment_is_opened_without_the_creation_lock(tracking_uri, monkeypatch):
    taken = []
    real_lock = store_module._creation_lock
    monkeypatch.setattr(store_module, "_creation_lock", lambda db: taken.append(db) or real_lock(db))
    first = tracking.open_store(tracking_uri, "locked-once")
    again = tracking.open_store(tracking_uri, "locked-once")
    assert first.experiment_id == again.experiment_id
    db = store_module.sqlite_path(tracking_uri)
    assert taken == [db]                           # only while the experiment was made
    assert not db.with_name("mlflow.db.lock").exists()   # removed by its holder (issue 12)
