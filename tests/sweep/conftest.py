"""Fixtures of the sweep tests: a working folder holding an empty, migrated default store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def migrated_store(tmp_path, migrated_db) -> Path:
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(migrated_db, workdir / "mlflow.db")
    return workdir
