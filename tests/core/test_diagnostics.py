"""Each training statistic of nnexp.core.diagnostics against a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest

from nnexp.core import MLP
from nnexp.core.diagnostics import LayerView, Recorder, distinct_units, unit_vectors

_F = {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}


def _views(net, activation):
    return [LayerView(k + 1, net.weights[k], net.grads[2 * k], net.biases[k], net.grads[2 * k + 1],
                      activation=activation if k < net.n_layers - 1 else None)
            for k in range(net.n_layers)]


def _hidden(net, X, activation):
    """The hidden activations A_1 .. A_{L-1}, computed directly."""
    out, A = [], X
    for W, b in zip(net.weights[:-1], net.biases[:-1]):
        A = _F[activation](A @ W + b)
        out.append(A)
    return out


def _train(net, activation, every, steps=5, lr=0.5, seed=1):
    """``steps`` SGD steps on random batches, fed to a Recorder; returns its metrics and what a
    direct computation gives for the sampled steps."""
    rng = np.random.default_rng(seed)
    recorder = Recorder(_views(net, activation), every=every)
    grads, ratios, activations = [], [], []
    for step in range(steps):
        X = rng.normal(size=(7, net.sizes[0]))
        Y = np.eye(net.sizes[-1])[rng.integers(0, net.sizes[-1], 7)]
        net.loss_and_grads(X, Y)
        hidden = _hidden(net, X, activation)
        recorder.step(hidden)
        before = [W.copy() for W in net.weights]
        if step % every == 0:
            grads.append([(np.linalg.norm(net.grads[2 * k]), np.linalg.norm(net.grads[2 * k + 1]))
                          for k in range(net.n_layers)])
            activations.append(hidden)
        for p, g in zip(net.params, net.grads):
            p -= lr * g
        if step % every == 0:
            ratios.append([np.linalg.norm(W - B) / np.linalg.norm(B) for W, B in zip(net.weights, before)])
    return recorder.epoch_metrics(), grads, ratios, activations


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_statistics_equal_a_direct_computation(activation, every):
    net = MLP([6, 5, 4, 3], activation=activation, init="normal", init_kwargs={"std": 2.0}, seed=3)
    net.biases[0][:2] = -30.0   # two units of layer 1 saturated (sigmoid, tanh) or dead (ReLU)
    metrics, grads, ratios, activations = _train(net, activation, every)
    grads, ratios = np.array(grads), np.array(ratios)
    for k in range(1, net.n_layers + 1):
        assert metrics[f"layer{k}/grad_norm"] == pytest.approx(grads[:, k - 1, 0].mean(), rel=1e-12)
        assert metrics[f"layer{k}/bias_grad_norm"] == pytest.approx(grads[:, k - 1, 1].mean(), rel=1e-12)
        assert metrics[f"layer{k}/update_ratio"] == pytest.approx(ratios[:, k - 1].mean(), rel=1e-12)
        assert metrics[f"layer{k}/weight_norm"] == pytest.approx(np.linalg.norm(net.weights[k - 1]), rel=1e-12)
    for k in range(1, net.n_layers):
        A = np.concatenate([hidden[k - 1] for hidden in activations])
        assert metrics[f"layer{k}/act_mean"] == pytest.approx(A.mean(), rel=1e-12)
        assert metrics[f"layer{k}/act_std"] == pytest.approx(A.std(), rel=1e-9)
        if activation == "sigmoid":
            assert metrics[f"layer{k}/saturated_fraction"] == np.mean((A < 0.02) | (A > 0.98))
        if activation == "tanh":
            assert metrics[f"layer{k}/saturated_fraction"] == np.mean(np.abs(A) > 0.98)
        if activation == "relu":
            assert metrics[f"layer{k}/dead_fraction"] == np.mean((A <= 0).all(axis=0))
        assert metrics[f"layer{k}/distinct_units"] == net.sizes[k]
    # the fractions above are not trivially all zero or one
    fractions = [v for key, v in metrics.items() if key.endswith(("saturated_fraction", "dead_fraction"))]
    assert any(0 < v < 1 for v in fractions)


def test_statistics_that_do_not_apply_are_absent():
    net = MLP([4, 3, 3, 2], activation="tanh", seed=0)
    metrics = _train(net, "tanh", every=1, steps=2)[0]
    assert not any(key.endswith("dead_fraction") for key in metrics)
    last = f"layer{net.n_layers}/"
    assert {key.removeprefix(last) for key in metrics if key.startswith(last)} == {
        "grad_norm", "bias_grad_norm", "weight_norm", "update_ratio"}
    relu = _train(MLP([4, 3, 2], activation="relu", seed=0), "relu", every=1, steps=2)[0]
    assert "layer1/dead_fraction" in relu and "layer1/saturated_fraction" not in relu


def test_sampling_counts_the_first_step_of_every_epoch_and_resets():
    net = MLP([4, 3, 2], activation="relu", seed=0)
    recorder = Recorder(_views(net, "relu"), every=3)
    for epoch_steps in (7, 2):
        for _ in range(epoch_steps):
            net.loss_and_grads(np.ones((2, 4)), np.eye(2))
            recorder.step()
        expected = -(-epoch_steps // 3)
        assert recorder.samples == expected
        metrics = recorder.epoch_metrics()
        assert recorder.samples == 0 and "layer1/grad_norm" in metrics


def test_a_halved_layout_gives_the_same_numbers():
    """act_scale: the array passed is A / 2 (a halved internal layout), the statistics are A's."""
    rng = np.random.default_rng(0)
    W, dW = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    A = 1 / (1 + np.exp(-3 * rng.normal(size=(50, 4))))
    plain = Recorder([LayerView(1, W, dW, activation="sigmoid")])
    halved = Recorder([LayerView(1, W, dW, activation="sigmoid", act_scale=2.0)])
    plain.step([A])
    halved.step([A / 2])
    a, b = plain.epoch_metrics(), halved.epoch_metrics()
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-12), key
    assert 0 < a["layer1/saturated_fraction"] < 1


def test_distinct_units_constant_random_and_near_duplicates():
    rng = np.random.default_rng(0)
    for init, kwargs, expected in (("constant", {"value": 0.3}, 1), ("constant", {}, 1),
                                   ("he", {}, None)):
        net = MLP([8, 6, 5, 2], activation="tanh", init=init, init_kwargs=kwargs, seed=0)
        for k, width in ((0, 6), (1, 5)):
            layer = _views(net, "tanh")[k]
            assert distinct_units(unit_vectors(layer)) == (expected or width)
    v, w = rng.normal(size=10), rng.normal(size=10)
    assert distinct_units(np.stack([v, v, w, v + 1e-9, w * (1 + 1e-3)])) == 3
    assert distinct_units(np.stack([v])) == 1


def test_dropout_and_batch_norm_statistics():
    rng = np.random.default_rng(0)
    W, dW = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    gamma, beta = np.ones(4), np.zeros(4)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2, size=4)
    layer = LayerView(1, W, dW, activation="relu", unit_extra=(gamma, beta), running_mean=mean,
                      running_var=var, dropout=0.5)
    recorder = Recorder([layer])
    masks = [rng.random((5, 4)) > 0.5 for _ in range(3)]
    for mask in masks:
        recorder.step([np.abs(rng.normal(size=(5, 4)))], masks={1: mask})
    metrics = recorder.epoch_metrics()
    assert metrics["layer1/dropout_kept_fraction"] == np.mean(masks)
    assert metrics["layer1/bn_mean"] == pytest.approx(mean.mean(), rel=1e-12)
    assert metrics["layer1/bn_std"] == pytest.approx(np.sqrt(var).mean(), rel=1e-12)
    beta[0] = 1.0   # two units with equal weights but different batch-norm shifts differ
    W[:, 1] = W[:, 0]
    assert recorder.epoch_metrics()["layer1/distinct_units"] == 4
    beta[0] = 0.0
    assert recorder.epoch_metrics()["layer1/distinct_units"] == 3


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_every_must_be_a_positive_whole_number(every):
    with pytest.raises(ValueError, match="every"):
        Recorder([], every=every)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_fit_hook_statistics_equal_a_direct_computation(activation):
    """Through fit's on_step: one full-batch step, statistics of the initial network (the
    sigmoid network stores its activations halved; the recorder undoes that)."""
    from nnexp.core import SGD, fit
    from nnexp.core.diagnostics import recorder_for

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 5)), np.eye(3)[rng.integers(0, 3, 20)]
    net = MLP([5, 6, 4, 3], activation=activation, seed=2)
    reference = MLP([5, 6, 4, 3], activation=activation, seed=2)
    _, grads = reference.loss_and_grads(X, Y)
    hidden = _hidden(reference, X, activation)
    recorder = recorder_for(net)
    fit(net, SGD(lr=0.1), (X, Y), epochs=1, batch_size=None, on_step=recorder.hook,
        on_epoch=lambda epoch, m: metrics.update(recorder.epoch_metrics()))
    for k in range(1, 4):
        assert metrics[f"layer{k}/grad_norm"] == pytest.approx(np.linalg.norm(grads[2 * k - 2]), rel=1e-9)
        step = np.linalg.norm(0.1 * grads[2 * k - 2]) / np.linalg.norm(reference.weights[k - 1])
        assert metrics[f"layer{k}/update_ratio"] == pytest.approx(step, rel=1e-9)
    for k in (1, 2):
        assert metrics[f"layer{k}/act_mean"] == pytest.approx(hidden[k - 1].mean(), rel=1e-9)
        assert metrics[f"layer{k}/act_std"] == pytest.approx(hidden[k - 1].std(), rel=1e-7)


metrics: dict = {}


def test_without_the_hook_fit_is_unchanged_and_with_it_equal_up_to_rounding():
    from nnexp.core import SGD, Adam, fit
    from nnexp.core.diagnostics import recorder_for

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(64, 5)), np.eye(3)[rng.integers(0, 3, 64)]
    for make in (lambda: SGD(lr=0.1), lambda: Adam(lr=0.01)):
        runs = []
        for hook in (False, False, True):
            net = MLP([5, 6, 3], activation="sigmoid", seed=2)
            h = fit(net, make(), (X, Y), epochs=3, batch_size=8,
                    on_step=recorder_for(net, every=2).hook if hook else None)
            runs.append((h.train_loss, net.flat.copy()))
        assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
        np.testing.assert_allclose(runs[2][1], runs[0][1], rtol=1e-10, atol=1e-12)


def test_fit_hook_records_batch_norm_and_dropout_statistics():
    """A network with batch norm and dropout: kept fraction of the very masks fit drew, the
    running statistics at the end of the epoch, grad norms of the true gradients."""
    from nnexp.core import SGD, fit
    from nnexp.core.diagnostics import recorder_for

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(48, 5)), np.eye(3)[rng.integers(0, 3, 48)]
    net = MLP([5, 30, 20, 3], activation=["relu", "sigmoid"], dropout=[0.25, 0.5],
              batch_norm=[True, False], seed=2)
    recorder = recorder_for(net)
    kept, grads, out = {1: [], 2: []}, [], {}

    def on_step(ws):
        for k, mask in ws.masks().items():
            kept[k].append(np.count_nonzero(mask) / mask.size)
        grads.append(np.linalg.norm(net.grads[0]))
        recorder.hook(ws)

    fit(net, SGD(lr=0.1), (X, Y), epochs=1, batch_size=8, on_step=on_step,
        on_epoch=lambda epoch, m: out.update(recorder.epoch_metrics()))
    assert out["layer1/dropout_kept_fraction"] == pytest.approx(np.mean(kept[1]), rel=1e-12)
    assert out["layer2/dropout_kept_fraction"] == pytest.approx(np.mean(kept[2]), rel=1e-12)
    assert 0.6 < out["layer1/dropout_kept_fraction"] < 0.9
    assert out["layer1/bn_mean"] == pytest.approx(net.layers[0].running_mean.mean(), rel=1e-12)
    assert out["layer1/bn_std"] == pytest.approx(np.sqrt(net.layers[0].running_var).mean(), rel=1e-12)
    assert out["layer1/bn_mean_norm"] == pytest.approx(np.linalg.norm(net.layers[0].running_mean), rel=1e-12)
    assert out["layer1/bn_var_norm"] == pytest.approx(np.linalg.norm(net.layers[0].running_var), rel=1e-12)
    assert "layer2/bn_mean" not in out and "layer1/bias_grad_norm" not in out
    assert out["layer1/grad_norm"] == pytest.approx(np.mean(grads), rel=1e-12)
    assert out["layer1/distinct_units"] == 30 and "layer2/saturated_fraction" in out
