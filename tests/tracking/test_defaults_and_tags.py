"""MLflow's defaults and standard tags: what an MLflow user expects of any run."""

from __future__ import annotations

import getpass
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nnexp import tracking
from nnexp.tracking import store as store_module
from nnexp.tracking import tags


def test_the_default_store_is_mlflows_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert store_module.artifact_root(tracking.resolve_uri(None), "iris") == (tmp_path / "mlruns" / "iris").as_uri()


def test_an_earlier_nnexp_store_is_still_used_with_a_note(tmp_path, monkeypatch, migrated_db, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(store_module, "_legacy_noted", False)
    (tmp_path / "mlruns").mkdir()
    shutil.copy(migrated_db, tmp_path / "mlruns" / "mlflow.db")
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    tracking.resolve_uri(None)
    note = capsys.readouterr().out.splitlines()
    assert len(note) == 1 and "earlier nnexp" in note[0] and "mlruns/mlflow.db" in note[0]
    # once MLflow's default exists, it wins
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    assert tracking.resolve_uri(None) == f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.mark.parametrize("client", ["auto", "mlflow"])
def test_both_writers_set_mlflows_user_source_and_git_tags(client, tmp_path, migrated_db, monkeypatch):
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("NNEXP_TRACKING_CLIENT", client)
    store = tracking.open_store(f"sqlite:///{tmp_path / 'mlflow.db'}", "tagged")
    assert type(store.backend).__name__ == ("SqliteBackend" if client == "auto" else "MlflowBackend")
    run = tracking.TrackedRun.start(store, "r")
    run.end()
    with sqlite3.connect(tmp_path / "mlflow.db") as connection:
        found = dict(connection.execute("select key, value from tags where run_uuid = ?", (run.run_id,)))
        user_id, = connection.execute("select user_id from runs where run_uuid = ?", (run.run_id,)).fetchone()
        kind = dict(connection.execute("select key, value from experiment_tags where experiment_id = ?",
                                       (int(store.experiment_id),)))
    assert found[tags.USER] == getpass.getuser() == user_id
    assert found[tags.SOURCE_TYPE] == "LOCAL" and found[tags.SOURCE_NAME] == sys.argv[0]
    if tags.git_commit():
        assert found[tags.GIT_COMMIT] == tags.git_commit()
    assert kind == {tags.EXPERIMENT_KIND: tags.EXPERIMENT_KIND_TRAINING}


def ui(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnexp.ui", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_ui_refuses_a_port_in_use(tmp_path, migrated_db):
    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = ui("--port", str(port), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and f"127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("args", [["--port", "70000"], ["--uri", "nosuch://x"], ["--uri", "sqlite:///nowhere/x.db"]])
def test_ui_bad_input_is_one_line(tmp_path, args):
    result = ui(*args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ui_urls_open_the_runs_table_of_each_experiment(tmp_path, migrated_db):
    from nnexp.ui import experiment_urls

    shutil.copy(migrated_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert experiment_urls(uri, "http://h:1") == ["http://h:1/#/experiments?workflowType=machine_learning"]
    store = tracking.open_store(uri, "iris")
    tracking.TrackedRun.start(store, "r").end()
    assert experiment_urls(uri, "http://h:1") == [
        f"http://h:1/#/experiments/{store.experiment_id}/runs?workflowType=machine_learning  (iris)"]
