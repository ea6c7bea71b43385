"""In-process: which failures are waited for, the bounded wait, and a run whose store refuses even
its final status (kept in a replay file, written by the next opening of the store)."""

from __future__ import annotations

import errno
import sqlite3

import pytest

from nnexp import tracking
from nnexp.errors import TrackingError
from nnexp.tracking import outage, replay


@pytest.mark.parametrize(("error", "cause"), [
    (sqlite3.OperationalError("database is locked"), "locked"),
    (sqlite3.OperationalError("database or disk is full"), "full"),
    (sqlite3.OperationalError("disk I/O error"), "io"),
    (OSError(errno.ENOSPC, "No space left on device"), "full"),
    (OSError("disk full"), None),                              # no errno: not known to be the disk
    (sqlite3.OperationalError("no such table: runs"), None),
    (ValueError("database is locked"), None),                  # not the store's error
])
def test_transient_causes(error, cause):
    assert outage.transient_cause(error) == cause


def test_the_wait_variable_is_checked(monkeypatch):
    monkeypatch.setenv(outage.WAIT_VARIABLE, "soon")
    with pytest.raises(TrackingError, match="NNEXP_STORE_WAIT_SECONDS='soon' is not a number"):
        outage.wait_seconds()
    monkeypatch.setenv(outage.WAIT_VARIABLE, "8")
    assert outage.wait_seconds() == 8 and outage.attempt_seconds() == 2


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_short_outage_is_waited_out_with_two_notes(monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(outage.time, "sleep", lambda seconds: setattr(clock, "now", clock.now + seconds))
    failures = iter([sqlite3.OperationalError("database is locked")] * 3)

    def write():
        error = next(failures, None)
        if error is not None:
            raise error

    assert outage.Retrier("sqlite:///x.db", wait=10, clock=clock).call(write) is True
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 2 and "takes no writes (database is locked)" in notes[0]
    assert "takes writes again after 3 s" in notes[1]


def test_past_the_wait_the_true_cause_is_raised(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(outage.time, "sleep", lambda seconds: setattr(clock, "now", clock.now + seconds))

    def locked():
        raise sqlite3.OperationalError("database is locked")

    retrier = outage.Retrier("sqlite:///x.db", wait=5, clock=clock)
    assert retrier.call(locked, block=False) is False          # training goes on
    with pytest.raises(outage.StoreUnavailable, match="database is locked by another process for 5 s"):
        retrier.call(locked)


def test_a_run_whose_store_refuses_its_end_is_replayed(tracking_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(outage.WAIT_VARIABLE, "0")
    store = tracking.open_store(tracking_uri, "outage")
    run = tracking.TrackedRun.start(store, "refused", flush_seconds=0)
    run.log_epoch(1, {"loss": 1.0})
    real = {name: getattr(run.backend, name) for name in ("log_batch", "set_status")}

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(run.backend, "log_batch", full)
    monkeypatch.setattr(run.backend, "set_status", full)
    run.log_metrics({"loss": 0.5}, step=2)
    with pytest.raises(outage.StoreUnavailable, match="could not be closed: its FAILED status and 1 unwritten"):
        run.end("FAILED", error="StoreUnavailable: full")
    (kept,) = replay.pending(store.uri)
    for name, method in real.items():
        monkeypatch.setattr(run.backend, name, method)

    assert replay.replay_pending(run.backend, store.uri) == 1
    assert replay.pending(store.uri) == [] and not kept.exists()
    (record,) = [r for r in run.backend.find_runs([store.experiment_id]) if r.run_id == run.run_id]
    assert record.status == "FAILED" and record.tags["nnexp.error"] == "StoreUnavailable: full"
    assert run.backend.metric_history(run.run_id, "loss") == [(1, 1.0), (2, 0.5)]
