"""dynamics.png, the gradient-flow figure and the confusion matrix are drawn from metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnexp.report.confusion import (
    class_accuracy, class_metrics, confusion_figure, confusion_matrix, metric_name, worst_class,
)
from nnexp.report.dynamics import by_layer, dynamics_figure, flow_points, gradient_flow_figure


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def _series(n_layers=3, epochs=4, activation="relu"):
    series = {}
    for k in range(1, n_layers + 1):
        series[f"layer{k}/grad_norm"] = [(e, 10.0 ** (k - 4) / e) for e in range(1, epochs + 1)]
        series[f"layer{k}/update_ratio"] = [(e, 1e-3 * k) for e in range(1, epochs + 1)]
        if k < n_layers:
            stat = "dead_fraction" if activation == "relu" else "saturated_fraction"
            series[f"layer{k}/{stat}"] = [(e, 0.1 * e) for e in range(1, epochs + 1)]
            series[f"layer{k}/distinct_units"] = [(e, 16.0) for e in range(1, epochs + 1)]
    return series


def test_by_layer_orders_layers_numerically_and_ignores_other_metrics():
    series = {"layer10/grad_norm": [(2, 1.0), (1, 2.0)], "layer2/grad_norm": [(1, 3.0)],
              "layer2/bias_grad_norm": [(1, 9.0)], "val_loss": [(1, 0.5)]}
    assert by_layer(series, "grad_norm") == {2: [(1, 3.0)], 10: [(1, 2.0), (2, 1.0)]}


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "identity"])
def test_dynamics_figure_is_drawn(tmp_path, activation):
    series = _series(activation=activation)
    if activation == "identity":   # no fraction applies: the panel shows activation std
        series = {k: v for k, v in series.items() if "fraction" not in k}
        series["layer1/act_std"] = [(1, 0.5), (2, 0.4)]
    series["layer1/grad_norm"][1] = (2, 0.0)   # a zero gradient is a gap on the log axis
    path = dynamics_figure(series, tmp_path / "dynamics.png", title="t")
    assert _png_size(path) == (990, 612)


def test_dynamics_figure_of_a_single_epoch_and_of_no_statistics(tmp_path):
    assert _png_size(dynamics_figure(_series(epochs=1), tmp_path / "one.png")) == (990, 612)
    assert _png_size(dynamics_figure({}, tmp_path / "none.png")) == (990, 612)


def test_flow_points_take_the_first_and_the_best_epoch():
    series = _series(n_layers=2, epochs=3)
    points = flow_points(series, best_epoch=2)
    assert points == {"first": {1: 1e-3, 2: 1e-2}, "best": {1: 1e-3 / 2, 2: 1e-2 / 2}}
    assert flow_points(series, best_epoch=None)["best"] == {1: 1e-3 / 3, 2: 1e-2 / 3}
    assert flow_points({"val_loss": [(1, 1.0)]}, best_epoch=1) is None


def test_gradient_flow_figure_is_drawn(tmp_path):
    children = {f"run{i}": flow_points(_series(n_layers=2 + i), best_epoch=2) for i in range(12)}
    path = gradient_flow_figure(children, tmp_path / "gradient_flow.png")
    assert _png_size(path) == (675, 414)


def test_confusion_matrix_and_per_class_accuracy_against_a_direct_count():
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    C = confusion_matrix(true, predicted, 5)   # class 4 never occurs
    for i in range(5):
        for j in range(5):
            assert C[i, j] == np.count_nonzero((true == i) & (predicted == j))
    accuracy = class_accuracy(C)
    for i in range(4):
        assert accuracy[i] == np.mean(predicted[true == i] == i)
    assert math.isnan(accuracy[4])
    names = ["a", "b", "c", "d", "e"]
    metrics = class_metrics(C, names)
    assert set(metrics) == {"test_acc/a", "test_acc/b", "test_acc/c", "test_acc/d"}
    worst = int(np.nanargmin(accuracy))
    assert worst_class(C, names) == (names[worst], accuracy[worst])


def test_class_names_become_valid_metric_names():
    assert metric_name("T-shirt/top") == "test_acc/T-shirt/top"
    assert metric_name("Ankle boot") == "test_acc/Ankle boot"
    assert metric_name("x:y*z") == "test_acc/x_y_z"


@pytest.mark.parametrize("n", [2, 10, 30])
def test_confusion_figure_is_drawn(tmp_path, n):
    rng = np.random.default_rng(0)
    C = confusion_matrix(rng.integers(0, n, 500), rng.integers(0, n, 500), n)
    path = confusion_figure(C, [f"class {i}" for i in range(n)], tmp_path / "cm.png")
    assert _png_size(path)[0] > 300
