"""The layer options of issue 15 through the real command line: activation lists, dropout,
batch norm, label smoothing and image shifts reach the network, are recorded, and a batch-norm
network's logged model predicts raw rows in evaluation mode with its running statistics."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def params_of_only_run(folder) -> dict[str, str]:
    with sqlite3.connect(folder / "mlflow.db") as db:
        (run_id, status), = db.execute("select run_uuid, status from runs").fetchall()
        assert status == "FINISHED"
        return dict(db.execute("select key, value from params where run_uuid = ?", (run_id,)))


def test_per_layer_options_train_and_are_recorded(tmp_path):
    result = run_cli("epochs=4", "model.hidden=[16,8]", "model.activation=[tanh,relu]",
                     "model.dropout=[0.2,0.0]", "model.batch_norm=[true,false]",
                     "model.label_smoothing=0.1", "tracking.log_model=false", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    params = params_of_only_run(tmp_path)
    assert params["model.activation"] == "['tanh', 'relu']"
    assert params["model.dropout"] == "[0.2, 0.0]"
    assert params["model.batch_norm"] == "[True, False]"
    assert params["model.label_smoothing"] == "0.1"


def test_image_shifts_on_digits_change_training_and_repeat_with_the_seed(tmp_path):
    losses = []
    for name, shift in (("a", 1), ("b", 1), ("c", 0)):
        folder = tmp_path / name
        folder.mkdir()
        result = run_cli("data=digits", "epochs=3", f"data.augment.shift={shift}",
                         "tracking.log_model=false", cwd=folder)
        assert result.returncode == 0, result.stderr
        with sqlite3.connect(folder / "mlflow.db") as db:
            losses.append(db.execute("select value from metrics where key = 'train_loss' "
                                     "order by step").fetchall())
    assert losses[0] == losses[1] and losses[0] != losses[2]


def test_a_shift_on_a_table_is_refused_before_any_store_exists(tmp_path):
    result = run_cli("data.augment.shift=2", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "image data sets only" in lines[0] and "data.augment.shift=0" in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


def test_a_batch_norm_networks_logged_model_predicts_raw_rows(tmp_path):
    result = run_cli("epochs=30", "model.batch_norm=true", "model.dropout=0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    code = textwrap.dedent("""
        import json, mlflow, numpy as np
        from sklearn.datasets import load_breast_cancer
        raw = load_breast_cancer()
        run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
        p = np.asarray(model.predict(raw.data))
        again = np.asarray(model.predict(raw.data))
        print(json.dumps({"acc": float((p.argmax(1) == 1 - raw.target).mean()),
                          "deterministic": bool(np.array_equal(p, again)),
                          "test_acc": run.data.metrics["test_acc"]}))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["deterministic"]                 # evaluation mode: no dropout, running stats
    assert found["acc"] > 0.9 and found["test_acc"] > 0.9
