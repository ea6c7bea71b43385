"""Through the command line: diagnostics=on adds test_acc/<class> and confusion_matrix.png to a
run and worst_class to a sweep's comparison.csv; diagnostics=off adds none of them."""

from __future__ import annotations

import csv

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_runs(ids)


@pytest.mark.parametrize("switch", ["on", "off", None], ids=["on", "off", "default-is-on"])
def test_a_run_reports_where_its_errors_are(tmp_path, tracking_uri, switch):
    chosen = [f"diagnostics={switch}"] if switch else []
    run_cli("epochs=3", "progress=false", *chosen, cwd=tmp_path, check=True)
    client, (run,) = _runs(tracking_uri)
    classes = {k for k in run.data.metrics if k.startswith("test_acc/")}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    if switch != "off":
        assert classes == {"test_acc/benign", "test_acc/malignant"}
        assert {"confusion_matrix.png", "dynamics.png"} <= artifacts
        assert {"layer1/grad_norm", "layer1/dead_fraction", "layer1/distinct_units",
                "layer3/update_ratio"} <= set(run.data.metrics)
        assert len(client.get_metric_history(run.info.run_id, "layer1/grad_norm")) == 3
    else:
        assert not classes and not any("/" in k for k in run.data.metrics)
        assert "confusion_matrix.png" not in artifacts


def test_a_sweep_comparison_names_each_childs_worst_class(tmp_path, tracking_uri):
    run_cli("-m", "epochs=2", "progress=false", "diagnostics=on", "lr=0.01,0.1", cwd=tmp_path, check=True)
    client, runs = _runs(tracking_uri)
    parent = next(r for r in runs if r.data.tags.get("nnexp.sweep") == "parent")
    path = client.download_artifacts(parent.info.run_id, "comparison.csv", str(tmp_path))
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        child = client.get_run(row["run_id"])
        per_class = {k[len("test_acc/"):]: v for k, v in child.data.metrics.items() if k.startswith("test_acc/")}
        assert row["worst_class"] == min(per_class, key=per_class.get)
        assert float(row["worst_class_acc"]) == min(per_class.values())
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"gradient_flow.png", "gradient_flow.csv"} <= artifacts
    flow = client.download_artifacts(parent.info.run_id, "gradient_flow.csv", str(tmp_path))
    with open(flow) as handle:
        entries = list(csv.DictReader(handle))
    assert sorted((e["run_id"], e["epoch"]) for e in entries) == sorted(
        (row["run_id"], when) for row in rows for when in ("first", "best"))
    assert all(float(e["layer1"]) > 0 and float(e["layer3"]) > 0 for e in entries)
