"""Helpers for the fault-injection suite: the real command line run with every side path
(cache, data, outputs) kept under its working folder, snapshots of what MLflow holds, and
the checks every fault case makes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import default_db


# Metric keys every training run logs once per epoch.
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")
# The fault cases below train with diagnostics off: they are about runs, stores and signals,
# and the two figures a run with diagnostics draws (~0.5 s) added minutes to CI. The default
# (diagnostics on) is what tests/report and tests/test_app.py run.
# A run long enough to be interrupted mid-training (a few ms per epoch, 10,000 epochs).
LONG_RUN = ("data=spiral", "data.n_per_class=3000", "epochs=10000", "early_stopping=off",
            "progress=false", "tracking.log_model=false", "diagnostics=off")
# A run that finishes in about a second of training.
QUICK = ("epochs=3", "early_stopping=off", "progress=false", "tracking.log_model=false",
         "diagnostics=off")


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess: no tracking URI, a private cache, no proxies, quiet MLflow."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "NNEXP_DEBUG", "HYDRA_FULL_ERROR")
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(NNEXP_CACHE_DIR=str(tmp_path / "cache"), NNEXP_DATA_DIR=str(tmp_path / "no-data"),
               MLFLOW_DISABLE_TELEMETRY="true", NO_PROXY="127.0.0.1,localhost")
    env.update(extra)
    return env


def nnexp(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m nnexp *args`` in ``cwd`` with :func:`isolated_env` (plus ``env``)."""
    full = isolated_env(cwd, **(env or {}))
    return subprocess.run([sys.executable, "-m", "nnexp", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=timeout)


def client_for(workdir: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{default_db(workdir)}")


def all_runs(client) -> list:
    ids = [e.experiment_id for e in client.search_experiments(view_type=3)]
    return client.search_runs(ids, max_results=5000, run_view_type=3) if ids else []


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def stderr_lines(stderr: str) -> list[str]:
    """The non-empty lines a command wrote on standard error."""
    return [line for line in stderr.splitlines() if line.strip()]


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single non-empty stderr line of a failed command (asserted to be the only one)."""
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("nnexp: error"), lines[0]
    return lines[0]


@dataclass(frozen=True)
class Snapshot:
    """What MLflow holds about the earlier run, to prove later commands left it alone."""

    run_id: str
    experiment: str
    status: str
    metrics: dict
    curves: dict
    n_runs: int


def snapshot(workdir: Path, run_id: str) -> Snapshot:
    client = client_for(workdir)
    run = client.get_run(run_id)
    return Snapshot(run_id, client.get_experiment(run.info.experiment_id).name, run.info.status,
                    dict(run.data.metrics),
                    {key: history(client, run_id, key) for key in EPOCH_METRICS if key != "epoch_seconds"},
                    len(all_runs(client)))


# The switches of a short run, for commands that must be refused before anything trains (early
# stopping left on: one bad-input case needs it)
SHORT_RUN = ("epochs=3", "progress=false", "tracking.log_model=false")


def assert_refused(workdir: Path, before: Snapshot, *args: str) -> str:
    """``python -m nnexp SHORT_RUN args`` exits 2 with one error line and leaves the store as
    :func:`assert_untouched` checks; returns the line for the caller's own assertions."""
    result = nnexp(*SHORT_RUN, *args, cwd=workdir)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert_untouched(workdir, before)
    return line


def assert_untouched(workdir: Path, before: Snapshot) -> None:
    """The earlier run is still there, FINISHED, with the same numbers; no run was added, and
    nothing is RUNNING."""
    after = snapshot(workdir, before.run_id)
    assert after == before
    assert [r.info.run_id for r in all_runs(client_for(workdir))] == [before.run_id]


def wait_for_epochs(db: Path, process: subprocess.Popen, n: int = 1, timeout: float = 120) -> int:
    """Poll the SQLite file until some run has logged ``n`` epochs of train_loss; returns how
    many it has. Fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nnexp ended early ({process.returncode}): {process.stderr.read()}")
        try:
            with sqlite3.connect(db, timeout=1) as connection:
                (count,) = connection.execute(
                    "select count(*) from metrics where key = 'train_loss'").fetchone()
        except sqlite3.Error:
            count = 0
        if count >= n:
            return count
        time.sleep(0.05)
    raise AssertionError(f"no {n} epochs logged within {timeout} s")


def proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name, which may hold spaces):
    [0] state, [2] process group, [3] session, [16] nice; None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None
            and int(stat[2]) == pgid and stat[0] != "Z"]


def model_helper_pids(driver: int) -> list[int]:
    """Live model helpers (nnexp/tracking/model_helper.py) of the run or sweep whose driver is
    process ``driver``: found by the driver's pid, the helper's last argument, which still names the
    driver after the helper has been reparented (a zombie has no command line left)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"nnexp.tracking.model_helper" in args and str(driver).encode() in args:
                found.append(int(entry.name))
    return found
