"""A team tracking server: ``mlflow server`` (basic auth) on PostgreSQL, artifacts proxied.

The jobs share no folder with the server: they log over HTTP with a user name and password,
and their artifacts travel through the server into its ``--artifacts-destination``.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
EPOCHS = 5


def _client(server, monkeypatch):
    from mlflow.tracking import MlflowClient

    for name, value in server.client_env().items():  # the client reads the credentials from here
        monkeypatch.setenv(name, value)
    return MlflowClient(server.url)


def _artifact_paths(client, run_id, path=None) -> set[str]:
    paths = set()
    for item in client.list_artifacts(run_id, path):
        paths |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return paths


def test_joblib_sweep_over_http_to_postgresql(team_server, tmp_path, monkeypatch):
    client = _client(team_server, monkeypatch)
    result = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data=xor",
                     f"epochs={EPOCHS}", "early_stopping=off", "tracking.experiment=team_joblib",
                     "lr=0.05,0.1", "seed=0,1,2,3", cwd=tmp_path, env=team_server.client_env(),
                     timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = client.get_experiment_by_name("team_joblib")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 8
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {(r.data.params["lr"], r.data.params["seed"]) for r in children} == {
        (lr, str(seed)) for lr in ("0.05", "0.1") for seed in range(4)}
    best = parents[0].data.tags["nnexp.best_run_id"]
    figures = {"learning_curves.png", "dynamics.png", "confusion_matrix.png"}
    reference = None
    for child in children:
        epoch_metrics = [k for k in child.data.metrics if k.startswith(("train_", "val_"))]
        assert epoch_metrics, child.data.metrics
        for key in epoch_metrics:  # every epoch's point arrived, in order
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert len(steps) == EPOCHS and len(set(steps)) == EPOCHS, (key, steps)
        paths = _artifact_paths(client, child.info.run_id)
        # the sweep drew its best child's figures through the server too (tracking.child_figures)
        assert (paths & figures) == (figures if child.info.run_id == best else set()), paths
        paths -= figures
        reference = reference or paths
        assert paths == reference and paths, paths
    # the artifacts are files in the server's destination, not in the job's folder
    stored = {p.name for p in team_server.artifacts.rglob("*") if p.is_file()}
    assert {p.rsplit("/", 1)[-1] for p in reference} <= stored
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    # the model came through the server whole: a LoggedModel that MLflow loads from there
    import mlflow.pyfunc
    import numpy as np

    models = client.search_logged_models([experiment.experiment_id])
    assert models and {m.source_run_id for m in models} <= {r.info.run_id for r in children}
    model = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")  # via $MLFLOW_TRACKING_URI
    assert np.asarray(model.predict(np.zeros((3, 2)))).shape[0] == 3


def test_unauthenticated_job_is_refused(team_server, tmp_path):
    env = {**team_server.client_env(), "MLFLOW_TRACKING_PASSWORD": "wrong"}
    result = run_cli("data=xor", "epochs=1", "tracking.experiment=team_refused", cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg"])
def test_one_run_straight_to_postgresql(postgres, team_server, tmp_path, scheme, monkeypatch):
    """A run written into the database directly, readable through the team server."""
    result = run_cli("data=xor", f"epochs={EPOCHS}", "early_stopping=off",
                     f"tracking.uri={postgres.uri(scheme)}", f"tracking.experiment=direct_{scheme}",
                     cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = _client(team_server, monkeypatch)
    experiment = client.get_experiment_by_name(f"direct_{scheme}")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and "test_loss" in run.data.metrics
