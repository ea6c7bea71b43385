"""A 4-job sweep on a one-node SLURM cluster (Debian's slurm 22.05 + munge), one job scancel'd.

The cluster runs in a private network namespace (``unshare -n``; Slurm will not bind a
loopback-only host, so ``lo`` gets an extra address there, see ``slurm_node.sh``). The store is
an absolute SQLite path, as on a shared filesystem. The cancelled job must end KILLED and the
driver must not hang waiting for it (submitit polls ``sacct``, absent without accounting).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.infra.services import private_network_problem, stop

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def _skip_reason() -> str | None:
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return "hydra-submitit-launcher not installed (pip install -e '.[slurm]')"
    return private_network_problem("Slurm will not bind a loopback-only host",
                                   ("slurmctld", "slurmd", "munged", "sbatch", "nsenter"),
                                   "apt-get install slurmctld slurmd slurm-client munge iproute2")


def _in_namespace(pid: int, folder: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *argv], env=env,
                          capture_output=True, text=True, timeout=30)


def _start_sweep(tmp_path, migrated_db, *sweep: str):
    """The one-node cluster and a 4-job sweep in it: ``(driver, folder, uri, log)``."""
    folder = Path(tempfile.mkdtemp(prefix="nnexp-slurm-", dir="/tmp"))
    folder.chmod(0o755)
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["unshare", "-n", "bash", str(HERE / "slurm_node.sh"), str(folder), sys.executable, "-m",
            "nnexp", "-m", "hydra/launcher=slurm", "hydra.launcher.timeout_min=10", "data=spiral",
            *sweep, "early_stopping=off", "progress=false", f"tracking.uri={uri}",
            "tracking.experiment=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "SLURM_CONF": str(folder / "slurm.conf")}
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    return driver, folder, uri, log


def _children(uri: str) -> tuple[list, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("slurm")
    runs = client.search_runs([experiment.experiment_id])
    return runs, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _training(db: Path, job: int) -> bool:
    """Whether the run of sweep job ``job`` has logged an epoch."""
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as connection:
            (count,) = connection.execute(
                "select count(*) from metrics m join tags t on t.run_uuid = m.run_uuid "
                "where t.key = 'nnexp.job' and t.value = ? and m.key = 'train_loss'", (str(job),)).fetchone()
    except sqlite3.Error:
        return False
    return count > 0


def test_slurm_sweep_runs_every_job(tmp_path, migrated_db):
    """A 4-job sweep through hydra/launcher=slurm: four nested FINISHED children, exit 0."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    driver, folder, uri, log = _start_sweep(tmp_path, migrated_db, "epochs=5", "seed=0,1,2,3")
    try:
        status = driver.wait(timeout=240)
    finally:
        stop(driver)
        shutil.rmtree(folder, ignore_errors=True)
    assert status == 0, log.read_text()[-3000:]
    runs, children = _children(uri)
    assert len(children) == 4, log.read_text()[-3000:]
    assert {r.info.status for r in runs} == {"FINISHED"}, log.read_text()[-3000:]


def test_slurm_sweep_with_a_cancelled_job(tmp_path, migrated_db):
    """scancel of a running job: its child ends KILLED, the other three finish, the parent gets
    its summary and the driver returns (the job's SIGTERM makes it return, so submitit writes
    the result file the driver waits on; this cluster has no sacct to ask)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # job 0 trains for as long as it takes to cancel it; jobs 1-3 finish in a second or two
    driver, folder, uri, log = _start_sweep(tmp_path, migrated_db, "seed=0", "epochs=1000000,5,6,7")
    try:
        deadline, victim = time.monotonic() + 120, None
        while time.monotonic() < deadline and not (victim and _training(tmp_path / "mlflow.db", job=0)):
            time.sleep(1)
            assert driver.poll() is None, log.read_text()[-3000:]
            jobs = _in_namespace(driver.pid, folder, "squeue", "-h", "-o", "%i %t").stdout.split()
            victim = next((i for i, t in zip(jobs[::2], jobs[1::2]) if i.endswith("_0") and t == "R"), None)
        assert victim and _training(tmp_path / "mlflow.db", job=0), log.read_text()[-3000:]
        cancelled = _in_namespace(driver.pid, folder, "scancel", victim)
        assert cancelled.returncode == 0, cancelled.stderr
        status = driver.wait(timeout=120)  # no hang
    finally:
        stop(driver)
        shutil.rmtree(folder, ignore_errors=True)
    runs, children = _children(uri)
    assert len(children) == 4, log.read_text()[-3000:]
    assert sorted(r.info.status for r in children) == ["FINISHED"] * 3 + ["KILLED"], log.read_text()[-3000:]
    assert "RUNNING" not in {r.info.status for r in runs}
    parent = next(r for r in runs if r.data.tags.get("nnexp.sweep") == "parent")
    assert parent.info.status == "FINISHED", log.read_text()[-3000:]
    assert parent.data.metrics["sweep_jobs"] == 4 and parent.data.metrics["sweep_killed"] == 1
    assert parent.data.metrics["sweep_finished"] + parent.data.metrics.get("sweep_early_stopped", 0) == 3
    assert status == 0, log.read_text()[-3000:]
    killed = next(r for r in children if r.info.status == "KILLED")
    assert killed.data.tags["nnexp.job"] == "0"
    assert killed.data.tags["nnexp.stop_reason"] == "killed"
    assert killed.data.metrics.get("train_loss") is not None   # the epochs it logged are kept
