"""Every job ends its own run whatever happens to the driver (issue 13): signals to the driver
or its group, a SIGKILLed driver then resume, a closed stdout."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import default_db
from tests.reliability.helpers import (
    EPOCH_METRICS, LONG_RUN, alive, all_runs, client_for, history, isolated_env,
)

pytestmark = pytest.mark.slow

JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
POOL = ("hydra/launcher=pool", "hydra.launcher.n_jobs=2")
WITHIN = 10.0


def start(workdir, *args, **popen):
    return subprocess.Popen([sys.executable, "-m", "nnexp", "-m", *args], cwd=workdir,
                            env=isolated_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def wait_for_runs_training(db, process, n_runs: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nnexp ended early ({process.returncode}): {process.stderr.read()}")
        try:
            with sqlite3.connect(db, timeout=1) as connection:
                (count,) = connection.execute(
                    "select count(distinct run_uuid) from metrics where key = 'train_loss'").fetchone()
        except sqlite3.Error:
            count = 0
        if count >= n_runs:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n_runs} runs not training within {timeout} s")


def assert_all_killed(workdir, expected_children: int):
    client = client_for(workdir)
    runs = all_runs(client)
    (parent,) = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "KILLED"
    assert len(children) == expected_children
    for child in children:
        assert child.info.status == "KILLED", child.data.tags.get("nnexp.error")
        steps = {key: [s for s, _ in history(client, child.info.run_id, key)] for key in EPOCH_METRICS}
        k = len(steps["train_loss"])
        assert k >= 1 and all(logged == list(range(1, k + 1)) for logged in steps.values())
    return children


@pytest.mark.parametrize(("signum", "group", "status"), [
    (signal.SIGINT, True, 130), (signal.SIGTERM, False, 143), (signal.SIGHUP, False, 129),
], ids=["SIGINT-group", "SIGTERM-driver", "SIGHUP-driver"])
@pytest.mark.parametrize("launcher", [JOBLIB, POOL], ids=["joblib", "pool"])
def test_parallel_sweep_interrupted_ends_every_run_and_worker(migrated_store, signum, group, status,
                                                              launcher):
    process = start(migrated_store, "lr=0.1,0.01,0.001,0.0001", *LONG_RUN, *launcher, start_new_session=True)
    wait_for_runs_training(default_db(migrated_store), process, 2)
    pids = {int(r.data.tags["nnexp.pid"]) for r in all_runs(client_for(migrated_store))
            if "mlflow.parentRunId" in r.data.tags}
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < WITHIN
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    children = assert_all_killed(migrated_store, 2)   # the two started jobs; the others never began
    assert len(pids) == 2 and not any(alive(pid) for pid in pids), pids
    assert len({c.data.tags["nnexp.pid"] for c in children}) == 2


def test_basic_sweep_sigterm_ends_child_and_parent(migrated_store):
    process = start(migrated_store, "lr=0.1,0.01", *LONG_RUN)
    wait_for_runs_training(default_db(migrated_store), process, 1)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < WITHIN and process.returncode == 143, stderr
    assert_all_killed(migrated_store, 1)


def test_a_closed_stdout_changes_no_run(migrated_store):
    """``python -m nnexp -m ... | head -1``: the reader leaves after one line."""
    process = start(migrated_store, "lr=0.1,0.01,0.001", "data=spiral", "epochs=3", "progress=false",
                    "tracking.log_model=false")
    process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    process.wait(timeout=300)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr and "Logging error" not in stderr
    runs = all_runs(client_for(migrated_store))
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4


def test_resume_after_the_driver_was_sigkilled(migrated_store):
    quick_then_long = ("data=spiral", "data.n_per_class=3000", "early_stopping=off", "progress=false",
                       "tracking.log_model=false")
    args = ("epochs=2,300", "lr=0.01", *quick_then_long, "tracking.resume=true")
    process = start(migrated_store, *args)
    db = default_db(migrated_store)
    wait_for_runs_training(db, process, 2)      # job 0 done, job 1 training
    process.kill()
    process.communicate(timeout=30)
    process.stdout.close()
    process.stderr.close()
    client = client_for(migrated_store)
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("nnexp.sweep") == "parent"]
    finished = [r for r in all_runs(client) if r.info.status == "FINISHED"]
    assert len(finished) == 1

    again = subprocess.run([sys.executable, "-m", "nnexp", "-m", *args], cwd=migrated_store,
                           env=isolated_env(migrated_store), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    runs = all_runs(client)
    parents = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    assert [p.info.run_id for p in parents] == [parent.info.run_id]     # the same parent reopened
    reopened = parents[0]
    assert reopened.info.status == "FINISHED" and not reopened.data.tags.get("nnexp.error")
    assert reopened.data.metrics["sweep_skipped"] == 1 and reopened.data.metrics["sweep_finished"] == 1
    trained = [r for r in runs if r.data.params.get("epochs") == "2"]
    assert len(trained) == 1                                              # job 0 not trained again
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    best = min((c for c in children if c.info.status == "FINISHED"),
               key=lambda c: c.data.metrics["best_val_loss"])
    assert reopened.data.tags["nnexp.best_run_id"] == best.info.run_id   # best among all
