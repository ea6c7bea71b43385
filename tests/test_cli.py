"""The real command line, in subprocesses: ``python -m nnexp ...`` as a user types it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import default_db, run_cli

pytestmark = pytest.mark.slow


def client_for(cwd):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{default_db(cwd)}")


def only_run(cwd):
    client = client_for(cwd)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with no tracking URI set: the default store is used."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_run_as_written_records_everything_and_the_model_predicts(workdir, monkeypatch):
    result = run_cli("optimizer=adam", "lr=0.001", "epochs=8", cwd=workdir, check=True)
    assert "test_acc=" in result.stdout and "python -m nnexp.ui" in result.stdout
    client, run = only_run(workdir)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "adam-lr0.001-16x8"
    assert client.get_experiment(run.info.experiment_id).name == "breast_cancer"
    assert run.data.tags["nnexp.overrides"] == "optimizer=adam lr=0.001 epochs=8"
    assert (workdir / "mlruns" / "breast_cancer").is_dir()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "learning_curves.png", "weights.npz"} <= artifacts

    # the LoggedModel (raw inputs, `mlflow models predict`): tests/tracking/test_logged_model.py
    assert "predict with its model: mlflow models predict -m runs:/" in result.stdout


def test_help_lists_groups_and_options(workdir):
    result = run_cli("--help", cwd=workdir, check=True)
    for text in ("optimizer: adagrad, adam, adamw, momentum, nesterov, rmsprop, sgd",
                 "model:", "data:", "early_stopping: off, patience", "experiment:"):
        assert text in result.stdout


def test_cfg_job_shows_the_composed_config(workdir):
    result = run_cli("optimizer=rmsprop", "lr=0.02", "--cfg", "job", cwd=workdir, check=True)
    assert "name: rmsprop" in result.stdout and "lr: 0.02" in result.stdout
    assert not (workdir / "mlruns").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["optimizer=adamx"], "optimizer"),
    (["foo=1"], "foo"),
    (["lr=-0.1"], "optimizer.lr must be a finite number > 0"),
    (["batch_size=0"], "batch_size"),
    (["model.hidden=[]"], "model.hidden"),
    (["model.activation=relux"], "model.activation"),
])
def test_bad_input_is_one_line_and_creates_no_run(workdir, args, message):
    result = run_cli(*args, cwd=workdir)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nnexp: error:") and message in lines[0]
    assert "Traceback" not in result.stderr
    db = default_db(workdir)
    if db.exists():
        client = client_for(workdir)
        assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_gradcheck_mode_prints_errors(workdir):
    result = run_cli("mode=gradcheck", cwd=workdir, check=True)
    assert "W1" in result.stdout and "max relative error" in result.stdout


def test_diverged_run_exits_3_and_is_failed(workdir):
    result = run_cli("optimizer=sgd", "lr=1e6", "model.activation=identity", "early_stopping=off",
                     "epochs=20", "tracking.log_model=false", cwd=workdir)
    assert result.returncode == 3, result.stderr
    _, run = only_run(workdir)
    assert run.info.status == "FAILED" and run.data.tags["nnexp.stop_reason"] == "diverged"


def test_ui_command_serves_the_store_and_its_pictures(workdir):
    import urllib.request

    from tests.infra.services import answers_health, free_port, wait_until

    run_cli("epochs=2", "tracking.log_model=false", cwd=workdir, check=True)
    client, run = only_run(workdir)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "nnexp.ui", "--port", str(port)], cwd=workdir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers_health(base), 90, "nnexp.ui", server)
        url = f"{base}/get-artifact?path=learning_curves.png&run_uuid={run.info.run_id}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
        server.stdout.close()


def test_ui_without_runs_says_so_in_one_line(workdir):
    result = subprocess.run([sys.executable, "-m", "nnexp.ui"], cwd=workdir, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "no runs yet" in result.stderr


def test_installed_wheel_runs_from_any_directory(tmp_path, workdir):
    """The configs and sweep files ship inside the wheel: no checkout needed."""
    repo = Path(__file__).resolve().parent.parent
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # built from a copy: setuptools leaves a build/ folder in the tree it builds
    source = tmp_path / "source"
    shutil.copytree(repo, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "outputs", "multirun", "mlruns", "*.db", "__pycache__", "*.egg-info", ".pytest_cache"))
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(wheels), str(source)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = wheels.glob("nnexp-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    env = {"PYTHONPATH": str(site)}  # the wheel's nnexp comes before the editable checkout
    result = run_cli("optimizer=adam", "lr=0.001", "epochs=2", "tracking.log_model=false",
                     cwd=elsewhere, env=env, check=True)
    assert "test_acc=" in result.stdout
    listing = run_cli("+sweep=depth", "--cfg", "hydra", "-p", "hydra.sweeper.params",
                      cwd=elsewhere, env=env, check=True)
    assert "model.hidden" in listing.stdout
    probe = subprocess.run([sys.executable, "-c", "import nnexp; print(nnexp.__file__)"], cwd=elsewhere,
                           env={**os.environ, **env}, capture_output=True, text=True, check=True)
    assert probe.stdout.startswith(str(site))
