"""fit's internal fast paths against the plain public ones, and the halved sigmoid layout
against a straightforward implementation: same numbers up to rounding."""

import numpy as np
import pytest

import nnexp.core.optimizer_base as optimizers
from nnexp.core import MLP, SGD, Adam, Momentum, fit
from nnexp.core.activations import ACTIVATIONS, Sigmoid


def naive_loss_and_grads(net, X, Y):
    """Textbook forward/backward in float64 with sigmoid hidden layers."""
    Ws = [W.astype(np.float64) for W in net.weights]
    bs = [b.astype(np.float64) for b in net.biases]
    A, acts = X.astype(np.float64), []
    for W, b in zip(Ws[:-1], bs[:-1]):
        acts.append(A)
        A = 1.0 / (1.0 + np.exp(-(A @ W + b)))
    acts.append(A)
    Z = A @ Ws[-1] + bs[-1]
    n = X.shape[0]
    if net.output == "softmax":
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        P = E / E.sum(axis=1, keepdims=True)
        loss = -np.sum(Y * np.log(P)) / n
        delta = (P - Y) / n
    else:                                       # sigmoid output, mse loss
        P = 1.0 / (1.0 + np.exp(-Z))
        loss = np.sum((P - Y) ** 2) / (2 * n)
        delta = (P - Y) * P * (1 - P) / n
    grads = [None] * (2 * len(Ws))
    for k in range(len(Ws) - 1, -1, -1):
        grads[2 * k], grads[2 * k + 1] = acts[k].T @ delta, delta.sum(axis=0)
        if k:
            delta = (delta @ Ws[k].T) * acts[k] * (1 - acts[k])
    return loss, grads


def problem(sizes, n=12, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sizes[0]))
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    return X, Y


@pytest.mark.parametrize("sizes", [[5, 3], [5, 4, 3], [5, 4, 6, 3], [5, 4, 6, 4, 3]])
@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "mse")])
def test_halved_sigmoid_layout_gives_the_textbook_gradients(sizes, output, loss):
    net = MLP(sizes, activation="sigmoid", output=output, loss=loss, init="xavier_uniform", seed=3)
    X, Y = problem(sizes)
    value, grads = net.loss_and_grads(X, Y)
    ref_value, ref_grads = naive_loss_and_grads(net, X, Y)
    assert value == pytest.approx(ref_value, rel=1e-12)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(net.evaluate(X, Y)[0], ref_value, rtol=1e-12)


def test_overridden_sigmoid_is_still_used(monkeypatch):
    class Logistic(Sigmoid):                    # the same function, computed with exp
        def forward(self, Z, tmp):
            np.negative(Z, out=Z)
            np.exp(Z, out=Z)
            np.add(Z, 1.0, out=Z)
            np.reciprocal(Z, out=Z)

        def backward(self, A, delta, tmp):
            np.multiply(delta, A * (1 - A), out=delta)

    sizes = [5, 4, 6, 3]
    net = MLP(sizes, activation="sigmoid", init="xavier_uniform", seed=3)
    X, Y = problem(sizes)
    expected = [g.copy() for g in net.loss_and_grads(X, Y)[1]]
    monkeypatch.setitem(ACTIVATIONS, "sigmoid", Logistic)   # the plan takes it at construction
    net = MLP(sizes, activation="sigmoid", init="xavier_uniform", seed=3)
    assert all(type(layer.activation) is Logistic for layer in net.layers[:-1])
    for g, e in zip(net.loss_and_grads(X, Y)[1], expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def manual_fit(net, opt, X, Y, epochs, batch_size, seed=0):
    """fit's schedule of batches, stepped through the public API."""
    rng, n, losses = np.random.default_rng(seed), X.shape[0], []
    for epoch in range(epochs):
        opt.set_epoch(epoch)
        order, total = rng.permutation(n), 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            loss, grads = net.loss_and_grads(X[rows], Y[rows])
            total += loss * len(rows)
            opt.step(net.params, grads)
        losses.append(total / n)
    return losses


@pytest.mark.parametrize("make_opt", [lambda: SGD(lr=0.5), lambda: Adam(lr=0.05),
                                      lambda: Adam(lr=0.02, beta1=0.5),
                                      lambda: Momentum(lr=0.1)])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
@pytest.mark.parametrize("epochs", [1, 4])          # 4: the once-augmented [X, 1] path
def test_fit_fast_paths_match_the_public_step(make_opt, activation, epochs):
    sizes = [6, 5, 4, 3]
    X, Y = problem(sizes, n=40)
    a = MLP(sizes, activation=activation, seed=5)
    b = MLP(sizes, activation=activation, seed=5)
    opt_a, opt_b = make_opt(), make_opt()
    history = fit(a, opt_a, (X, Y), epochs=epochs, batch_size=3)   # 14 steps an epoch
    expected = manual_fit(b, opt_b, X, Y, epochs, 3)
    np.testing.assert_allclose(history.train_loss, expected, rtol=1e-10)
    np.testing.assert_allclose(a.flat, b.flat, rtol=1e-9, atol=1e-12)
    assert opt_a.t == opt_b.t == 14 * epochs
    for name in opt_b.state:                    # Adam's moments back in their usual form
        np.testing.assert_allclose(opt_a.state[name][0], opt_b.state[name][0], rtol=1e-7,
                                   atol=1e-15)          # (rescaled in the meantime)


def test_fit_adam_float32_stays_float32_and_close():
    sizes = [6, 5, 4, 3]
    X, Y = problem(sizes, n=40)
    a = MLP(sizes, activation="sigmoid", dtype="float32", seed=5)
    b = MLP(sizes, activation="sigmoid", dtype="float32", seed=5)
    opt_a, opt_b = Adam(lr=0.01), Adam(lr=0.01)
    fit(a, opt_a, (X, Y), epochs=3, batch_size=4)
    manual_fit(b, opt_b, X.astype(np.float32), Y.astype(np.float32), 3, 4)
    assert all(m.dtype == np.float32 for name in opt_a.state for m in opt_a.state[name])
    np.testing.assert_allclose(a.flat, b.flat, rtol=1e-4, atol=1e-6)


def test_blocked_update_is_bit_identical(monkeypatch):
    sizes = [6, 5, 4, 3]
    X, Y = problem(sizes, n=40)
    results = []
    for above, chunk in [(10 ** 9, 2 ** 16), (0, 7)]:
        monkeypatch.setattr(optimizers, "_CHUNK_ABOVE", above)
        monkeypatch.setattr(optimizers, "_CHUNK", chunk)
        net, opt = MLP(sizes, seed=5), Adam(lr=0.01, weight_decay=0.01)
        for _ in range(3):
            opt.step(net.params, net.loss_and_grads(X, Y)[1])
        results.append(net.flat.copy())
    np.testing.assert_array_equal(results[0], results[1])


def test_adam_state_is_usual_when_a_callback_interrupts_or_resets():
    sizes = [6, 5, 4, 3]
    X, Y = problem(sizes, n=40)
    a, b = MLP(sizes, seed=5), MLP(sizes, seed=5)
    opt_a, opt_b = Adam(lr=0.05, beta1=0.5), Adam(lr=0.05, beta1=0.5)

    def stop(epoch, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(a, opt_a, (X, Y), epochs=3, batch_size=3, on_epoch=stop)
    manual_fit(b, opt_b, X, Y, 1, 3)
    for name in opt_b.state:
        np.testing.assert_allclose(opt_a.state[name][0], opt_b.state[name][0], rtol=1e-7)

    calls = []

    def reset(epoch, done, total, loss):
        calls.append(done)
        opt_a.reset()

    history = fit(a, opt_a, (X, Y), epochs=2, batch_size=3, progress=reset)
    assert len(calls) > 2 and history.stop_reason == "completed" and np.isfinite(a.flat).all()
    assert all(np.isfinite(m).all() for name in opt_a.state for m in opt_a.state[name])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scale", [0.1, 3.0, 40.0, 1e4])
def test_softmax_training_loss_matches_the_shifted_one(dtype, scale):
    from nnexp.core.losses import Scratch, make_head
    rng = np.random.default_rng(0)
    for trial in range(20):
        Z = (rng.normal(size=(4, 9)) * scale).astype(dtype)
        if trial % 2:
            Z -= 200.0 * (trial % 4 - 2)          # all logits far up or down: no exp range
        Y = np.eye(4, dtype=dtype)[:, rng.integers(0, 4, 9)]
        head, ws = make_head("softmax", "cross_entropy").bind(dtype), Scratch(4, 9, dtype)
        P_ref = np.empty_like(Z)
        ref = head.forward_loss(Z, P_ref, Y, ws)
        P = np.empty_like(Z)
        with np.errstate(all="ignore"):          # as fit runs it
            value = head.train_loss(Z, P, Y, ws)
        tol = 1e-5 if dtype == "float32" else 1e-12
        assert np.isfinite(value) and value == pytest.approx(ref, rel=tol, abs=tol)
        np.testing.assert_allclose(P, P_ref, rtol=tol, atol=1e-30)
