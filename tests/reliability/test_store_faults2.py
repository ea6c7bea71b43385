"""The store stops taking writes mid-run, through the real command line: a full disk (a 5 MB
tmpfs), the write lock held by another process (``BEGIN IMMEDIATE`` in a child), a damaged
page. No run is left RUNNING, no metric point that reached nnexp is lost, the message says what
really happened, and what the store could not take is replayed by the next command."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    EPOCH_METRICS, QUICK, isolated_env, nnexp, wait_for_epochs,
)

pytestmark = pytest.mark.slow

# A run that trains for a while (about 13 ms per epoch here) and logs six metrics an epoch.
# (diagnostics off: their ~30 metrics an epoch would fill the 5 MB disk with the run's own rows,
# leaving no room for the replay once the filler is gone; the case is about the filler)
TRAINING = ("data=spiral", "data.n_per_class=3000", "early_stopping=off", "progress=false",
            "tracking.log_model=false", "diagnostics=off")
LOCKED_FOR = re.compile(r"database is locked by another process for (\d+) s")
LOCK_HOLDER = ("import sqlite3, sys, time\n"
               "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
               "c.execute('begin immediate'); print('locked', flush=True)\n"
               "time.sleep(float(sys.argv[2])); c.execute('commit')\n")


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MB tmpfs mounted at ``tmp_path/disk`` (root only), unmounted afterwards."""
    mount = shutil.which("mount")
    folder = tmp_path / "disk"
    folder.mkdir()
    if mount is None:
        pytest.skip("no mount command: cannot make a small file system for the full-disk cases")
    made = subprocess.run([mount, "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a 5 MB tmpfs here (needs root or CAP_SYS_ADMIN): {made.stderr.strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its file system is full; returns it."""
    filler = folder / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


def store_env(workdir: Path, db: Path, wait: float) -> dict[str, str]:
    return isolated_env(workdir, MLFLOW_TRACKING_URI=f"sqlite:///{db}", NNEXP_STORE_WAIT_SECONDS=str(wait))


def start(workdir: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnexp", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cleanup(workdir: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnexp.tracking", "cleanup"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)


def error_after_notes(stderr: str, *words: str) -> str:
    """The last stderr line is the one error (with ``words``); the lines before it, the outage's
    notes; no traceback, and not the failed ROLLBACK's message."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and "Traceback" not in stderr, stderr
    assert lines[-1].startswith("nnexp: error: "), stderr
    assert all(line.startswith("nnexp: note: ") for line in lines[:-1]), stderr
    assert "cannot rollback" not in stderr
    for word in words:
        assert word in lines[-1], lines[-1]
    return lines[-1]


def rows(db: Path, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql, args).fetchall()


def steps_of(db: Path, run_id: str) -> dict[str, list[int]]:
    return {key: [step for (step,) in rows(db, "select step from metrics where run_uuid = ? and key = ? "
                                               "order by step", run_id, key)] for key in EPOCH_METRICS}


def replay_files(workdir: Path) -> list[Path]:
    folder = workdir / "cache" / "replay"
    return sorted(folder.glob(".nnexp-replay-*.json")) if folder.is_dir() else []


def kept_train_epochs(kept: Path, run_id: str | None) -> set[int]:
    """The epochs of train_loss a replay file keeps for a FAILED run (``run_id`` if given)."""
    record = json.loads(kept.read_text())
    assert record["status"] == "FAILED" and record["run_id"] == (run_id or record["run_id"])
    return {step for key, _, _, step in record["metrics"] if key == "train_loss"}


def assert_every_epoch_once(db: Path, run_id: str, at_least: int) -> int:
    """Every epoch metric has steps 1..k, the same k for all, k >= ``at_least``; returns k."""
    steps = steps_of(db, run_id)
    k = len(steps["train_loss"])
    assert k >= at_least
    for key, logged in steps.items():
        assert logged == list(range(1, k + 1)), key
    return k


def test_full_disk_during_training_fails_the_run_and_replays_what_it_could_not_write(small_disk, tmp_path,
                                                                                       migrated_db):
    workdir = tmp_path / "work"
    workdir.mkdir()
    db = small_disk / "mlflow.db"
    shutil.copy(migrated_db, db)
    env = store_env(workdir, db, wait=3)
    process = start(workdir, env, *TRAINING, "epochs=100000")
    logged = wait_for_epochs(db, process)
    filler = fill(small_disk)
    _, stderr = process.communicate(timeout=300)

    assert process.returncode == 1, stderr
    assert "takes no writes (database or disk is full)" in stderr
    line = error_after_notes(stderr, "the disk holding the store is full", "written by the next nnexp command")
    ((run_id, status),) = rows(db, "select run_uuid, status from runs")
    stored = len(steps_of(db, run_id)["train_loss"])
    (kept,) = replay_files(workdir)
    assert str(kept) in line
    kept_epochs = kept_train_epochs(kept, run_id)

    filler.unlink()   # space again: the next command on the store writes what was kept
    result = cleanup(workdir, env)
    assert result.returncode == 0, result.stderr
    assert f"the FAILED status of run {run_id}" in result.stdout
    assert replay_files(workdir) == []
    k = assert_every_epoch_once(db, run_id, at_least=max(logged, stored))
    assert k == len(kept_epochs | set(range(1, stored + 1)))   # nothing kept was dropped
    assert rows(db, "select status from runs") == [("FAILED",)]
    (error,) = rows(db, "select value from tags where run_uuid = ? and key = 'nnexp.error'", run_id)
    assert "the disk holding the store is full" in error[0]
    assert status in ("RUNNING", "FAILED")   # RUNNING only until the replay (the status did not fit)


def test_full_disk_before_the_run_exists_is_one_line_and_creates_nothing(small_disk, tmp_path, migrated_db):
    workdir = tmp_path / "work"
    workdir.mkdir()
    db = small_disk / "mlflow.db"
    shutil.copy(migrated_db, db)
    env = store_env(workdir, db, wait=2)
    earlier = subprocess.run([sys.executable, "-m", "nnexp", *QUICK], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=300)
    assert earlier.returncode == 0, earlier.stderr
    fill(small_disk)
    before = db.read_bytes()
    result = nnexp(*QUICK, cwd=workdir, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}",
                                             "NNEXP_STORE_WAIT_SECONDS": "2"})
    assert result.returncode == 1, result.stderr
    error_after_notes(result.stderr, "the disk holding the store is full", "no run was created")
    assert "OperationalError" not in result.stderr
    assert db.read_bytes() == before
    assert rows(db, "select status from runs") == [("FINISHED",)]
    assert replay_files(workdir) == []


def hold_lock(db: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_lock_held_for_a_while_is_waited_out_and_the_run_finishes(migrated_store):
    workdir = migrated_store
    db = workdir / "mlruns" / "mlflow.db"
    env = store_env(workdir, db, wait=8)   # each attempt waits 2 s for the lock
    process = start(workdir, env, *TRAINING, "epochs=800")
    wait_for_epochs(db, process)
    holder = hold_lock(db, 5)
    stdout, stderr = process.communicate(timeout=300)
    holder.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "[FINISHED]" in stdout
    assert "takes no writes (database is locked)" in stderr and "takes writes again" in stderr
    assert all(line.startswith("nnexp: note: ") for line in stderr.splitlines() if line.strip()), stderr
    ((run_id, status),) = rows(db, "select run_uuid, status from runs")
    assert status == "FINISHED"
    assert assert_every_epoch_once(db, run_id, at_least=800) == 800


def test_a_lock_held_past_the_wait_fails_the_run_with_the_true_cause(migrated_store):
    workdir = migrated_store
    db = workdir / "mlruns" / "mlflow.db"
    env = store_env(workdir, db, wait=3)
    process = start(workdir, env, *TRAINING, "epochs=100000")
    logged = wait_for_epochs(db, process)
    holder = hold_lock(db, 600)
    try:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, stderr
        line = error_after_notes(stderr, "could not be closed", "written by the next nnexp command")
        assert int(LOCKED_FOR.search(line).group(1)) >= 3, line
        (kept,) = replay_files(workdir)
        assert str(kept) in line
        kept_epochs = kept_train_epochs(kept, run_id=None)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    ((run_id, status),) = rows(db, "select run_uuid, status from runs")
    assert status == "RUNNING"   # the lock let nothing in; the replay file holds the ending
    stored = len(steps_of(db, run_id)["train_loss"])

    # the next run on this store writes it first, then runs as usual
    result = nnexp(*QUICK, "data=spiral", cwd=workdir, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
    assert result.returncode == 0, result.stderr
    assert f"the FAILED status of run {run_id}" in result.stdout
    assert replay_files(workdir) == []
    k = assert_every_epoch_once(db, run_id, at_least=max(logged, stored))
    assert k == len(kept_epochs | set(range(1, stored + 1))) and kept_epochs   # the kept points arrived
    assert sorted(status for (status,) in rows(db, "select status from runs")) == ["FAILED", "FINISHED"]
    (error,) = rows(db, "select value from tags where run_uuid = ? and key = 'nnexp.error'", run_id)
    assert LOCKED_FOR.search(error[0]), error[0]   # the true cause, not the stale-run note
    assert "ended without closing" not in error[0]


def test_a_damaged_metrics_page_is_named_and_no_run_starts(earlier_store, tmp_path):
    """A corrupt page in the metrics table (which opening the store does not read): refused before
    a run exists, naming the file and SQLite's recovery; the file is left byte for byte."""
    source, _ = earlier_store
    workdir = tmp_path / "work"
    shutil.copytree(source / "mlruns", workdir / "mlruns")
    db = workdir / "mlruns" / "mlflow.db"
    ((page_size,),) = rows(db, "pragma page_size")
    ((root,),) = rows(db, "select rootpage from sqlite_master where name = 'metrics'")
    with open(db, "r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(b"\xff" * 64)
    before = db.read_bytes()
    for result in (nnexp(*QUICK, cwd=workdir),
                   subprocess.run([sys.executable, "-m", "nnexp.tracking", "cleanup"], cwd=workdir,
                                  env=isolated_env(workdir), capture_output=True, text=True, timeout=120)):
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        for word in (str(db), "is damaged", ".recover", "recovered.db"):
            assert word in lines[0], lines[0]
    assert db.read_bytes() == before
    assert rows(db, "select status from runs") == [("FINISHED",)]


def test_a_lock_held_during_a_sweep_costs_time_not_results(migrated_store):
    """A lock held while a sweep's jobs run is waited out: every run FINISHED, every job's
    record on the parent final. (The lock mostly meets the runs' own writes here; the retry of
    a job's record is tested directly in tests/sweep/test_job_records.py.)"""
    workdir = migrated_store
    db = workdir / "mlruns" / "mlflow.db"
    env = store_env(workdir, db, wait=15)   # each attempt waits up to 3.75 s for the lock
    process = start(workdir, env, "-m", *TRAINING, "data.n_per_class=300", "epochs=60", "seed=0,1,2,3,4,5")
    wait_for_epochs(db, process)
    holder = hold_lock(db, 6)
    stdout, stderr = process.communicate(timeout=300)
    holder.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "6 jobs: 6 finished" in stdout, stdout + stderr
    assert "takes no writes (database is locked)" in stderr and "Traceback" not in stderr
    assert rows(db, "select count(*) from runs where status != 'FINISHED'") == [(0,)]
    records = [json.loads(value) for (value,) in rows(db, "select value from tags where key like 'nnexp.job.%'")]
    assert sorted(r["job"] for r in records) == list(range(6)) and {r["status"] for r in records} == {"FINISHED"}
