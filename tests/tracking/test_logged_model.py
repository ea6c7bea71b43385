"""A default run's model, used the way MLflow documents it, from the folder the run was made in.

No ``MLFLOW_TRACKING_URI``: MLflow's own default store (``./mlflow.db``) is nnexp's default.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``python -m nnexp`` with no overrides, in an empty folder with nothing set."""
    folder = tmp_path_factory.mktemp("logged-model")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-m", "nnexp", "progress=false"], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr   # MLflow's advice is not the user's concern
    return folder, env, result


def in_folder(folder, env, code: str) -> dict:
    """Run ``code`` in a fresh interpreter in ``folder`` (no tracking URI); it prints one JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_logged_model_is_mlflows_and_predicts_raw_rows(default_run):
    folder, env, _ = default_run
    found = in_folder(folder, env, """
        import json, mlflow, numpy as np, warnings
        from sklearn.datasets import load_breast_cancer
        raw = load_breast_cancer()
        labels = 1 - raw.target                      # nnexp's class order: (benign, malignant)
        experiments = [e.experiment_id for e in mlflow.search_experiments()]
        models = mlflow.search_logged_models(experiment_ids=experiments, output_format="list")
        run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
            by_id = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
            p = np.asarray(by_run.predict(raw.data))
        same = bool(np.array_equal(p, np.asarray(by_id.predict(raw.data))))
        version = mlflow.register_model(f"models:/{models[0].model_id}", "nnexp-bc")
        print(json.dumps({"n_models": len(models), "source_run": models[0].source_run_id,
                          "run": run.info.run_id, "outputs": [m.model_id for m in run.outputs.model_outputs],
                          "model_id": models[0].model_id, "shape": list(p.shape), "same": same,
                          "acc": float((p.argmax(1) == labels).mean()),
                          "rows_sum_to_one": bool(np.allclose(p.sum(1), 1)),
                          "test_acc": run.data.metrics["test_acc"], "version": version.version,
                          "warnings": [str(w.message) for w in caught if "type hint" in str(w.message)],
                          "signature": by_run.metadata.get_input_schema().to_dict()}))
    """)
    assert found["n_models"] == 1 and found["source_run"] == found["run"]
    assert found["outputs"] == [found["model_id"]]           # the run's "Logged models"
    assert found["shape"] == [569, 2] and found["same"] and found["rows_sum_to_one"]
    # raw rows, scaled inside the model: as accurate as on the run's own (scaled) test split
    assert found["acc"] >= found["test_acc"] - 0.03 and found["acc"] > 0.95
    assert str(found["version"]) == "1"
    assert found["warnings"] == []     # MLflow 3 asks for type hints on predict when they are absent
    assert found["signature"][0]["tensor-spec"]["shape"] == [-1, 30]


def test_the_printed_predict_command_works_when_pasted(default_run):
    folder, env, result = default_run
    line = next(l for l in result.stdout.splitlines() if l.startswith("predict with its model: "))
    command = line.removeprefix("predict with its model: ")
    assert re.fullmatch(r"mlflow models predict -m runs:/\w+/model -i \S+serving_input_example\.json "
                        r"-t json --env-manager local", command), command
    done = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    predictions = json.loads(done.stdout.strip().splitlines()[-1])["predictions"]
    assert len(predictions) == 5 and all(abs(sum(row) - 1) < 1e-6 for row in predictions)


def test_a_run_without_a_model_logs_none(tmp_path):
    result = run_cli("epochs=2", "tracking.log_model=false", "progress=false", cwd=tmp_path, check=True)
    assert "predict with its model" not in result.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.search_logged_models([e.experiment_id for e in client.search_experiments()]) == []


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory):
    """A 3-job sweep in an empty folder with nothing set: its stdout and folder."""
    folder = tmp_path_factory.mktemp("sweep-model")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-m", "nnexp", "-m", "seed=0,1,2", "epochs=3", "progress=false"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr
    return folder, env, result


SWEEP_MODELS = """
    import json, mlflow, numpy as np
    from sklearn.datasets import load_breast_cancer
    raw = load_breast_cancer()
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    models = mlflow.search_logged_models(experiment_ids=experiments, output_format="list")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    (parent,) = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    best = parent.data.tags["nnexp.best_run_id"]
    p = np.asarray(mlflow.pyfunc.load_model(f"runs:/{best}/model").predict(raw.data))
    children = {r.info.run_id: {"artifacts": sorted(a.path for a in client.list_artifacts(r.info.run_id)),
                                "model_tag": r.data.tags.get("nnexp.model_id"),
                                "test_acc": r.data.metrics["test_acc"]}
                for r in runs if "mlflow.parentRunId" in r.data.tags}
    print(json.dumps({"sources": [m.source_run_id for m in models], "ids": [m.model_id for m in models],
                      "best": best, "children": children, "acc": float((p.argmax(1) == 1 - raw.target).mean())}))
"""


def test_a_sweep_logs_one_model_for_its_best_child(sweep_folder):
    """Children keep what the model is made of; the sweep logs the best child's LoggedModel once."""
    folder, env, _ = sweep_folder
    found = in_folder(folder, env, SWEEP_MODELS)
    assert found["sources"] == [found["best"]]
    assert len(found["children"]) == 3
    for run_id, child in found["children"].items():
        assert {"weights.npz", "preprocessing.npz", "input_example.npz"} <= set(child["artifacts"])
        assert child["model_tag"] == (found["ids"][0] if run_id == found["best"] else None)
    best_acc = found["children"][found["best"]]["test_acc"]
    assert found["acc"] >= best_acc - 0.05 and found["acc"] > 0.85   # raw rows, 3 epochs


def test_the_sweeps_predict_command_works_and_resume_logs_no_second_model(sweep_folder):
    folder, env, result = sweep_folder
    prefix = "predict with the best child's model: "
    command = next(l for l in result.stdout.splitlines() if l.startswith(prefix)).removeprefix(prefix)
    done = subprocess.run(command, shell=True, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(done.stdout.strip().splitlines()[-1])["predictions"]) == 5
    again = subprocess.run([sys.executable, "-m", "nnexp", "-m", "seed=0,1,2", "epochs=3", "progress=false",
                            "tracking.resume=true"], cwd=folder, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert prefix not in again.stdout       # the same best child: its model is already logged
    assert len(in_folder(folder, env, SWEEP_MODELS)["sources"]) == 1
