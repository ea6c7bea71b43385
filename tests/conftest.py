"""Shared fixtures: an isolated MLflow store per test, Hydra composition, the real data folder.

Opening a new SQLite store runs MLflow's schema migrations (seconds), so one database is
migrated per test session and copied for each test that needs a store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow SQLite database (made once per session)."""
    folder = tmp_path_factory.mktemp("mlflow-template")
    db = folder / "mlflow.db"
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def tracking_uri(tmp_path, migrated_db, monkeypatch) -> str:
    """``MLFLOW_TRACKING_URI`` pointing at a fresh copy of the migrated database in tmp_path."""
    store = tmp_path / "mlruns"
    store.mkdir()
    shutil.copy(migrated_db, store / "mlflow.db")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return uri


@pytest.fixture
def compose():
    """``compose(*overrides)`` → the resolved config dict, as the command line would build it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    def make(*overrides: str) -> dict:
        with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
        return OmegaConf.to_container(cfg, resolve=True)

    return make


def default_db(cwd: Path) -> Path:
    """The store a run in ``cwd`` uses with nothing set: MLflow's default ``mlflow.db``, or an
    earlier nnexp's ``mlruns/mlflow.db`` while only that exists."""
    db = Path(cwd) / "mlflow.db"
    legacy = Path(cwd) / "mlruns" / "mlflow.db"
    return legacy if not db.exists() and legacy.is_file() else db


def shared_data_dir() -> Path | None:
    """The real data sets (MNIST, Fashion-MNIST, WDBC): $NNEXP_TEST_DATA_DIR or ../shared/data."""
    candidate = os.environ.get("NNEXP_TEST_DATA_DIR") or REPO.parent / "shared" / "data"
    path = Path(candidate)
    return path if path.is_dir() else None


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300,
            check: bool = False, module: str = "nnexp") -> subprocess.CompletedProcess:
    """``python -m nnexp *args`` (or another ``module``) in a subprocess, with Hydra's outputs
    kept under ``cwd``."""
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result
