"""hydra/launcher=pool (nnexp.sweep.pool): a worker that dies costs only its own job (issue 13:
"SIGKILL of one worker: that job is recorded FAILED, the other jobs still run, and the parent's
summary counts it"), and what joblib does in the same case."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from nnexp.sweep import pool
from tests.conftest import default_db
from tests.reliability.helpers import alive, all_runs, client_for, isolated_env
from tests.sweep.test_sweep_interrupts import wait_for_runs_training

pytestmark = pytest.mark.slow

# four jobs of a few seconds each on two workers
JOBS = ("lr=0.1,0.01,0.001,0.0001", "data=spiral", "data.n_per_class=3000", "epochs=400",
        "early_stopping=off", "progress=false", "tracking.log_model=false")


def square(x):
    return x * x


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_run_tasks_replaces_a_dead_worker_and_runs_every_other_task():
    seen = []
    results = pool.run_tasks([(square, (2,)), (die, ()), (square, (3,)), (square, (4,))], 2,
                             on_lost=lambda index, lost: seen.append((index, lost.exitcode)))
    assert results[0] == 4 and results[2:] == [9, 16]
    assert isinstance(results[1], pool.Lost) and results[1].cause == "killed by SIGKILL"
    assert seen == [(1, -signal.SIGKILL)]
    assert pool.live_worker_pids() == []


def fail():
    raise ValueError("a task that raises")


def test_a_task_that_raises_raises_in_the_driver_and_no_worker_is_left():
    with pytest.raises(ValueError, match="a task that raises"):
        pool.run_tasks([(square, (2,)), (fail, ())], 2)
    assert pool.live_worker_pids() == []


def start(workdir, *args):
    return subprocess.Popen([sys.executable, "-m", "nnexp", "-m", *args], cwd=workdir,
                            env=isolated_env(workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_one_training_worker(db) -> int:
    """SIGKILL the process of one training child (its nnexp.pid tag); returns that pid."""
    with sqlite3.connect(db, timeout=5) as connection:
        (pid,) = connection.execute(
            "select t.value from runs r join tags t on t.run_uuid = r.run_uuid "
            "where t.key = 'nnexp.pid' and r.status = 'RUNNING' and exists (select 1 from tags p "
            "where p.run_uuid = r.run_uuid and p.key = 'mlflow.parentRunId') limit 1").fetchone()
    os.kill(int(pid), signal.SIGKILL)
    return int(pid)


def test_pool_sweep_goes_on_when_a_worker_is_sigkilled(migrated_store):
    process = start(migrated_store, *JOBS, "hydra/launcher=pool", "hydra.launcher.n_jobs=2")
    wait_for_runs_training(default_db(migrated_store), process, 2)
    victim = kill_one_training_worker(default_db(migrated_store))
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr               # one job failed, the rest finished
    assert "Traceback" not in stderr
    assert f"its worker process {victim} killed by SIGKILL; the other jobs go on" in stderr
    assert "sweep: 4 jobs: 3 finished, 1 failed" in stdout
    runs = all_runs(client_for(migrated_store))
    (parent,) = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep_finished"] == 3 and parent.data.metrics["sweep_failed"] == 1
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED", "FINISHED", "FINISHED"]
    (failed,) = [c for c in children if c.info.status == "FAILED"]
    assert failed.data.tags["nnexp.pid"] == str(victim)
    workers = {int(c.data.tags["nnexp.pid"]) for c in children}
    time.sleep(0.5)
    assert not any(alive(pid) for pid in workers)         # the replacement worker left too


def test_joblib_sweep_with_a_sigkilled_worker_leaves_no_run_running(migrated_store):
    """joblib (loky) stops the whole sweep when a worker dies; nnexp ends every orphaned run
    FAILED and says which launcher carries on instead."""
    process = start(migrated_store, *JOBS, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    wait_for_runs_training(default_db(migrated_store), process, 2)
    kill_one_training_worker(default_db(migrated_store))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    (line,) = [x for x in stderr.splitlines() if x.startswith("nnexp: error")]
    assert "a joblib worker process died" in line and "hydra/launcher=pool" in line
    runs = all_runs(client_for(migrated_store))
    assert "RUNNING" not in {r.info.status for r in runs}
    (parent,) = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    assert parent.info.status == "FAILED"


def _kept_data_and_pid():
    from nnexp.data import kept

    return sorted(kept._kept), os.getpid()


def test_prestarted_workers_are_taken_over_with_the_data_they_loaded():
    """A sweep starts its pool's workers before Hydra composes its jobs, and they load the jobs'
    data set meanwhile (nnexp.sweep.workers.prepare_worker); run_tasks then uses them."""
    data = {"data": {"name": "digits", "scaling": "minmax", "val_fraction": 0.2, "test_fraction": 0.2,
                     "limit": None}, "dtype": "float32", "seed": 0, "model": {"output": "softmax"}}
    pool.prestart(2, figures=False, data=data)
    started = set(pool.live_worker_pids())
    assert len(started) == 2
    results = pool.run_tasks([(_kept_data_and_pid, ())] * 4, 2)
    assert {pid for _, pid in results} <= started
    assert all(kinds == ["scaled", "source"] for kinds, _ in results)   # digits: pixels 0-16, minmax
