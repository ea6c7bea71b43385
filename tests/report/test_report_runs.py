"""The run and sweep side of diagnostics: sampling period, per-class test accuracy, worst class,
the gradient-flow table (from a backend's metric histories)."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest

from nnexp.core import MLP
from nnexp.report.run_figures import RunNumbers, confusion_tag, draw, read_confusion
from nnexp.report.run_report import class_report, every_for
from nnexp.report.sweep_report import gradient_flow, worst_class


@pytest.mark.parametrize("every, n, batch, expected", [
    (None, 54000, 10, 108), (None, 54000, 128, 9), (None, 364, 32, 1), (None, 100, None, 1),
    (None, 100, 1000, 1), (7, 54000, 10, 7)])
def test_sampling_period(every, n, batch, expected):
    assert every_for({"every": every, "samples_per_epoch": 50}, n, batch) == expected


def test_per_class_test_accuracy_and_the_confusion_tag_it_is_drawn_from(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = rng.integers(0, 3, 60)
    net = MLP([4, 5, 3], seed=0)
    data = SimpleNamespace(class_names=("a", "b/c", "d"), test=(X, np.eye(3)[y]), y_test=y)
    metrics, tag = class_report(net, data)
    predicted = net.predict(X)
    assert metrics == {f"test_acc/{name}": np.mean(predicted[y == i] == i)
                       for i, name in enumerate(data.class_names)}
    counts, names = read_confusion(tag)
    assert names == ["a", "b/c", "d"]
    assert counts == [[int(np.sum((y == i) & (predicted == j))) for j in range(3)] for i in range(3)]
    (written,) = draw(RunNumbers("t", [], confusion=(counts, names)), tmp_path)
    assert written.name == "confusion_matrix.png" and written.stat().st_size > 1000


def test_a_confusion_matrix_too_large_for_a_tag_is_left_out():
    names = [f"class {i}" for i in range(100)]
    assert confusion_tag(np.full((100, 100), 12345), names) == {}


def test_worst_class():
    assert worst_class({"test_acc": 0.9, "test_acc/a": 0.8, "test_acc/b": 0.7, "test_acc/c": 0.7}) == {
        "worst_class": "b", "worst_class_acc": 0.7}
    empty = worst_class({"test_acc": 0.9})
    assert empty["worst_class"] == "" and math.isnan(empty["worst_class_acc"])


class _Backend:
    def __init__(self, histories):
        self.histories = histories

    def metric_history(self, run_id, key):
        return self.histories.get(run_id, {}).get(key, [])


def test_gradient_flow_has_one_entry_per_child_that_logged_gradients(tmp_path):
    def grads(scale, layers):
        return {f"layer{k}/grad_norm": [(1, scale * k), (2, scale * k / 2), (3, scale * k / 3)]
                for k in range(1, layers + 1)}

    backend = _Backend({"r1": grads(1.0, 3), "r2": grads(2.0, 5), "r3": {}})
    rows = [{"run_id": "r1", "run_name": "same", "model.hidden": "[8,8]", "best_epoch": 2.0},
            {"run_id": "r2", "run_name": "same", "model.hidden": "[8,8,8,8]", "best_epoch": math.nan},
            {"run_id": "r3", "run_name": "off", "model.hidden": "[8]", "best_epoch": 1.0},
            {"run_id": "", "run_name": "job 4"}]
    paths = gradient_flow(backend, rows, ["model.hidden"], tmp_path)
    assert [p.name for p in paths] == ["gradient_flow.png", "gradient_flow.csv"]
    with open(tmp_path / "gradient_flow.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["child"], r["epoch"]) for r in table] == [
        ("model.hidden=[8,8]", "first"), ("model.hidden=[8,8]", "best"),
        ("model.hidden=[8,8,8,8]", "first"), ("model.hidden=[8,8,8,8]", "best")]
    assert float(table[1]["layer3"]) == 1.5          # best epoch 2 of r1
    assert float(table[3]["layer5"]) == 10 / 3       # no best epoch: the last one
    assert table[0]["layer5"] == ""                  # r1 has 3 layers
    assert gradient_flow(_Backend({}), rows, [], tmp_path / "none") == []
