"""Launcher presets, the store-reach warning and the SLURM pre-launch check (fast)."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from nnexp import launchers
from nnexp.tracking.store import resolve_uri
from tests.conftest import run_cli

RAY = launchers.REMOTE_LAUNCHERS[0]
SLURM = launchers.SLURM_LAUNCHER
JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@pytest.mark.parametrize("uri, local", [
    (None, True), ("sqlite:///mlflow.db", True), ("sqlite:///mlruns/mlflow.db", True),
    ("sqlite:////shared/team/mlflow.db", False), ("http://127.0.0.1:5000", False),
    ("postgresql://u:p@db/mlflow", False)])
def test_local_only_store(uri, local):
    assert launchers.local_only_store(uri) is local


def test_warning_only_for_remote_launcher_and_local_store():
    line = launchers.reach_warning("ray_cluster", RAY, "sqlite:///mlflow.db")
    assert "hydra/launcher=ray_cluster" in line and "sqlite:///mlflow.db" in line
    assert "tracking.uri=http://" in line and "sqlite:////" in line and "\n" not in line
    assert launchers.reach_warning("slurm", SLURM, None) is not None
    assert launchers.reach_warning("joblib", JOBLIB, "sqlite:///mlflow.db") is None
    assert launchers.reach_warning("ray", RAY, "http://10.0.0.5:5000") is None
    assert launchers.reach_warning("slurm", SLURM, "sqlite:////nfs/mlflow.db") is None


@pytest.mark.parametrize("uri", ["postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow",
                                 "postgresql+psycopg://u:p@db/mlflow", "mysql+pymysql://u:p@db/m"])
def test_driver_schemes_are_tracking_uris(uri):
    assert resolve_uri(uri) == uri


def test_unknown_scheme_with_driver_still_refused():
    from nnexp.errors import TrackingError

    with pytest.raises(TrackingError, match="not a tracking URI"):
        resolve_uri("postgres+psycopg://db/mlflow")


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
                    reason="hydra-ray-launcher not installed (pip install -e '.[ray]')")
def test_ray_cluster_preset(compose, monkeypatch):
    from hydra import compose as hydra_compose, initialize_config_module
    from omegaconf import OmegaConf

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=ray_cluster"], return_hydra_config=True)
    init = OmegaConf.to_container(cfg.hydra.launcher.ray.init, resolve=True)
    assert cfg.hydra.launcher._target_ == RAY
    assert init == {"address": "10.0.0.5:6379", "object_store_memory": None}


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher not installed (pip install -e '.[slurm]')")
def test_slurm_preset_and_refusal_without_slurm(tmp_path, tracking_uri):
    """Without sbatch/srun: one line, exit 2, before the sweep's parent run or folder exists."""
    python_only = os.path.dirname(sys.executable)
    result = run_cli("-m", "hydra/launcher=slurm", "data=xor", "epochs=1", "lr=0.1,0.2",
                     cwd=tmp_path, env={"PATH": python_only})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["nnexp: error: hydra/launcher=slurm needs SLURM's sbatch and srun on PATH "
                     "(run on a SLURM login node, or use hydra/launcher=submitit_local)"]
    assert "Traceback" not in result.stdout and not (tmp_path / "multirun").exists()
    from mlflow.tracking import MlflowClient

    assert not MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()])


def test_ray_is_kept_from_folding_the_job_lines(monkeypatch):
    import re

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    environ: dict[str, str] = {}
    launchers.keep_job_lines(RAY, environ)
    pattern = re.compile(environ["RAY_DEDUP_LOGS_ALLOW_REGEX"])
    assert pattern.search("job 3 (seed=3 data=xor): test_acc=0.9 test_loss=0.2 best_epoch=5/5 (completed)")
    assert pattern.search("nnexp: job 12 (lr=-1) failed: optimizer.lr must be a finite number > 0")
    assert not pattern.search("sweep: 8 jobs: 8 finished")
    mine = {"RAY_DEDUP_LOGS_ALLOW_REGEX": "mine"}
    launchers.keep_job_lines(RAY, mine)
    assert mine == {"RAY_DEDUP_LOGS_ALLOW_REGEX": "mine"}          # the user's own value stays
    other: dict[str, str] = {}
    launchers.keep_job_lines(JOBLIB, other)
    assert other == {}
