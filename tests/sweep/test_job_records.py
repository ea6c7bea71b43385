"""A job's record on its parent (nnexp.job.<n>, nnexp/sweep/job.py) waits out a store that takes
no writes for a while, as a run's own writes do, and each process opens the sweep's store once."""

from __future__ import annotations

import json
import sqlite3

import pytest

from nnexp import tracking
from nnexp.sweep import job
from nnexp.sweep.context import JobContext
from nnexp.tracking import outage


@pytest.fixture
def sweep_store(tracking_uri, monkeypatch):
    monkeypatch.setattr(job, "_opened", {})
    store = tracking.open_store(tracking_uri, "records")
    parent = tracking.TrackedRun.start(store, "parent")
    context = JobContext.for_driver(parent.run_id, "records", tracking_uri, "inv1", data_root=None)
    return store, parent, context


def test_a_record_waits_for_a_locked_store(sweep_store, monkeypatch, capsys):
    store, parent, context = sweep_store
    monkeypatch.setenv(outage.WAIT_VARIABLE, "30")
    monkeypatch.setattr(outage, "RETRY_PAUSE", 0.01)
    real, refusals = store.backend.log_batch, []

    def locked_twice(*args, **kwargs):
        if len(refusals) < 2:
            refusals.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(store.backend, "log_batch", locked_twice)
    job.record_job(store, context, 3, {"job": 3, "status": "FINISHED"})
    (me,) = [r for r in store.backend.find_runs([store.experiment_id]) if r.run_id == parent.run_id]
    assert json.loads(me.tags["nnexp.job.3"])["status"] == "FINISHED" and len(refusals) == 2
    assert "takes no writes (database is locked)" in capsys.readouterr().err


def test_past_the_wait_a_record_names_the_true_cause(sweep_store, monkeypatch):
    store, _, context = sweep_store
    monkeypatch.setenv(outage.WAIT_VARIABLE, "0")

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store.backend, "log_batch", full)
    with pytest.raises(outage.StoreUnavailable, match="the disk holding the store is full"):
        job.record_job(store, context, 0, {"job": 0, "status": "RUNNING"})


def test_a_process_opens_the_sweeps_store_once(sweep_store, monkeypatch):
    _, _, context = sweep_store
    opened = []
    real = tracking.open_store
    monkeypatch.setattr(tracking, "open_store", lambda *args: opened.append(args) or real(*args))
    first, again = job.store_of(context), job.store_of(context)
    assert first is again and len(opened) == 1
