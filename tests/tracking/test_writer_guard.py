"""The direct SQLite writer is a guarded optimisation: it writes only what MLflow would write,
only to schemas it was checked against, and steps aside for features it does not implement."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from nnexp import tracking
from nnexp.errors import TrackingError
from nnexp.tracking import sqlite_backend
from nnexp.tracking.mlflow_backend import MlflowBackend
from nnexp.tracking.records import MetricPoint
from nnexp.tracking.sqlite_backend import SqliteBackend
from tests.conftest import run_cli


def test_the_installed_mlflows_schema_head_is_a_listed_revision(migrated_db):
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    head = ScriptDirectory.from_config(_get_alembic_config(f"sqlite:///{migrated_db}")).get_current_head()
    assert head in sqlite_backend.KNOWN_REVISIONS, (
        f"MLflow's schema head {head} is not in KNOWN_REVISIONS: check the run tables against it, then list it")
    with sqlite3.connect(migrated_db) as connection:
        assert connection.execute("select version_num from alembic_version").fetchone()[0] == head


def with_revision(tmp_path: Path, migrated_db: Path, revision: str) -> Path:
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    with sqlite3.connect(db) as connection:
        connection.execute("update alembic_version set version_num = ?", (revision,))
    return db


@pytest.mark.parametrize("revision", ["0123456789ab",     # made up: no MLflow release has it
                                      "75868b020152"])    # the revision before 3.17.2's head
def test_an_unlisted_revision_is_not_written_directly(tmp_path, migrated_db, revision):
    assert sqlite_backend.supports(with_revision(tmp_path, migrated_db, next(iter(sqlite_backend.KNOWN_REVISIONS))))
    assert not sqlite_backend.supports(with_revision(tmp_path, migrated_db, revision))


def test_workspaces_make_the_direct_writer_step_aside(tmp_path, migrated_db, monkeypatch):
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    assert sqlite_backend.supports(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    assert not sqlite_backend.supports(tmp_path / "mlflow.db")
    monkeypatch.delenv("MLFLOW_WORKSPACE")
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert not sqlite_backend.supports(tmp_path / "mlflow.db")


def both_backends(tmp_path, migrated_db, monkeypatch):
    for client in ("auto", "mlflow"):
        folder = tmp_path / client
        folder.mkdir()
        shutil.copy(migrated_db, folder / "mlflow.db")
        monkeypatch.setenv("NNEXP_TRACKING_CLIENT", client)
        store = tracking.open_store(f"sqlite:///{folder / 'mlflow.db'}", "rules")
        assert isinstance(store.backend, SqliteBackend if client == "auto" else MlflowBackend)
        yield store, store.backend.create_run(store.experiment_id, "r", {})


@pytest.mark.parametrize("batch", [dict(params={"x$y": "1"}), dict(tags={"a/../b": "1"}),
                                   dict(metrics=[MetricPoint("bad key!", 1.0, 1, 0)]),
                                   dict(params={"k" * 251: "1"}), dict(tags={"/abs": "1"})])
def test_names_mlflow_refuses_are_refused_by_both_writers(batch, tmp_path, migrated_db, monkeypatch):
    from mlflow.exceptions import MlflowException

    for store, run_id in both_backends(tmp_path, migrated_db, monkeypatch):
        with pytest.raises((TrackingError, MlflowException)):
            store.backend.log_batch(run_id, **batch)
        assert store.backend.find_runs([store.experiment_id])[0].params == {}


def test_long_values_are_cut_as_mlflow_cuts_them(tmp_path, migrated_db, monkeypatch):
    stored = []
    for store, run_id in both_backends(tmp_path, migrated_db, monkeypatch):
        store.backend.log_batch(run_id, params={"p": "v" * 7000}, tags={"t": "w" * 9000})
        run = store.backend.find_runs([store.experiment_id])[0]
        stored.append((len(run.params["p"]), len(run.tags["t"])))
    assert stored == [(6000, 8000), (6000, 8000)]


@pytest.mark.slow
@pytest.mark.parametrize("client", ["auto", "mlflow"])
@pytest.mark.parametrize("override", ["+x$y=1", "+x={" + "k" * 264 + ":1}"])
def test_a_bad_param_name_is_one_line_and_no_run_with_either_writer(client, override, tmp_path, migrated_db):
    """A key MLflow would refuse never reaches either writer now: no constructor takes it, so
    the config's unknown-key check refuses it first (the writers' own refusal of such names is
    test_names_mlflow_refuses_are_refused_by_both_writers)."""
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    result = run_cli("epochs=1", override, cwd=tmp_path, env={"NNEXP_TRACKING_CLIENT": client})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnexp: error: unknown config key x"), result.stderr
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        assert connection.execute("select count(*) from runs").fetchone() == (0,)
