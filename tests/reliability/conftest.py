"""Fixtures for the fault-injection suite: a store holding one earlier run (made once per
session by the real command line, copied for each test) and a migrated empty store."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.reliability.helpers import QUICK, Snapshot, all_runs, client_for, nnexp, snapshot


@pytest.fixture(scope="session")
def earlier_store(tmp_path_factory, migrated_db) -> tuple[Path, str]:
    """A working directory whose ``mlruns/`` holds one FINISHED run made by the real command
    line (3 epochs on breast_cancer); returns ``(folder, run_id)``. Made once per session."""
    folder = tmp_path_factory.mktemp("earlier-store")
    (folder / "mlruns").mkdir()
    shutil.copy(migrated_db, folder / "mlruns" / "mlflow.db")
    result = nnexp(*QUICK, cwd=folder)
    assert result.returncode == 0, result.stderr
    (run,) = all_runs(client_for(folder))
    assert run.info.status == "FINISHED"
    return folder, run.info.run_id


@pytest.fixture
def with_earlier_run(earlier_store, tmp_path) -> tuple[Path, Snapshot]:
    """A fresh working directory holding a copy of :func:`earlier_store`'s ``mlruns/`` (and
    nothing else); returns ``(workdir, snapshot of the earlier run)``."""
    source, run_id = earlier_store
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copytree(source / "mlruns", workdir / "mlruns")
    # the copy's experiments keep their artifacts in the copy, not in the session's folder
    old, new = (folder.resolve().as_uri() for folder in (source / "mlruns", workdir / "mlruns"))
    with contextlib.closing(sqlite3.connect(workdir / "mlruns" / "mlflow.db")) as connection, connection:
        connection.execute("update experiments set artifact_location = replace(artifact_location, ?, ?)",
                           (old, new))
    return workdir, snapshot(workdir, run_id)


@pytest.fixture
def migrated_store(tmp_path, migrated_db) -> Path:
    """A working directory with an empty, migrated ``mlruns/mlflow.db`` (no run yet)."""
    workdir = tmp_path / "work"
    (workdir / "mlruns").mkdir(parents=True)
    shutil.copy(migrated_db, workdir / "mlruns" / "mlflow.db")
    return workdir
