"""Backprop against central differences, for every activation x valid head x depth 1..3.

Central differences in float64 carry an absolute rounding error of about
``machine_eps * |L| / eps ~ 1e-11``, so a *relative* error below 1e-6 can only be asked of
gradient entries larger than ~1e-5. Random points sometimes have entries far below that
(cancellation between samples, leaky slopes multiplied over layers, saturated sigmoids), so
each case is checked at the first seeded point whose analytic gradient has every entry either
exactly zero or at least 1e-4 in magnitude. The choice looks only at the magnitudes of the
gradient, never at the numerical comparison, and biases are drawn non-zero so that no ReLU sits
exactly on its kink.
"""

import numpy as np
import pytest

from nnexp.core import ACTIVATIONS, MLP, VALID_OUTPUT_LOSS, gradcheck
from nnexp.core.activations import Sigmoid

N_SAMPLES, N_IN, WIDTH = 2, 3, 4
CASES = [(output, loss, n_out) for output, loss in sorted(VALID_OUTPUT_LOSS)
         for n_out in ((3, 1) if output == "sigmoid" else (3,))]


def targets(output, rng, n_out):
    if output == "softmax":
        return np.eye(n_out)[rng.integers(0, n_out, N_SAMPLES)]
    if output == "sigmoid":
        return rng.integers(0, 2, (N_SAMPLES, n_out)).astype(float)
    return rng.normal(size=(N_SAMPLES, n_out))


def well_conditioned_case(activation, output, loss, n_out, depth, floor=1e-4):
    sizes = [N_IN] + [WIDTH] * (depth - 1) + [n_out]
    for seed in range(100):
        net = MLP(sizes, activation=activation, output=output, loss=loss,
                  init="xavier_normal", seed=seed)
        rng = np.random.default_rng(seed)
        X, Y = rng.normal(size=(N_SAMPLES, N_IN)), targets(output, rng, n_out)
        for b in net.params[1::2]:
            b[...] = rng.normal(0.0, 0.3, b.shape)
        net.loss_and_grads(X, Y)
        magnitudes = np.abs(net.grad_flat)
        if np.all((magnitudes == 0) | (magnitudes >= floor)):
            return net, X, Y
    raise AssertionError("no well-conditioned point among 100 seeds")


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("output, loss, n_out", CASES)
def test_backprop_matches_central_differences(activation, output, loss, n_out, depth):
    net, X, Y = well_conditioned_case(activation, output, loss, n_out, depth)
    before = net.flat.copy()
    errors = gradcheck(net, X, Y)
    assert list(errors) == net.param_names
    assert max(errors.values()) < 1e-6, errors
    np.testing.assert_array_equal(net.flat, before)          # parameters left untouched


def test_a_wrong_derivative_is_caught(monkeypatch):
    net, X, Y = well_conditioned_case("sigmoid", "softmax", "cross_entropy", 3, depth=2)
    assert max(gradcheck(net, X, Y).values()) < 1e-6
    # sigma' = a (1 - a) replaced by 1 - a: only the first layer's gradients go wrong
    monkeypatch.setattr(Sigmoid, "backward",
                        lambda self, A, delta, tmp: np.multiply(delta, 1.0 - A, out=delta))
    patched = MLP(net.sizes, activation="sigmoid", output="softmax")  # the plan is built once
    patched.set_params(net.params)
    errors = gradcheck(patched, X, Y)
    assert errors["W1"] > 1e-2 and errors["b1"] > 1e-2
    assert errors["W2"] < 1e-6 and errors["b2"] < 1e-6


def test_max_checks_per_param_limits_the_work_and_keeps_the_params():
    net = MLP([20, 10, 3], seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(4, 20)), np.eye(3)[[0, 1, 2, 0]]
    before = net.flat.copy()
    calls = []
    real_loss = net.loss
    net.loss = lambda X, Y: calls.append(1) or real_loss(X, Y)
    errors = gradcheck(net, X, Y, max_checks_per_param=5)
    assert len(calls) == 2 * (5 + 5 + 5 + 3)                  # b2 has only 3 entries
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    np.testing.assert_array_equal(net.flat, before)


def test_floor_turns_the_comparison_absolute_for_tiny_entries():
    net = MLP([3, 4, 2], activation="tanh", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 3)), np.eye(2)[[0, 1, 1]]
    net.params[0][:, 0] *= 1e-9                # hidden unit 1 barely connected: its
    net.params[2][0, :] *= 1e-9                # gradient entries are ~1e-10, pure noise
    plain, floored = gradcheck(net, X, Y), gradcheck(net, X, Y, floor=1e-4)
    assert plain["W1"] > 1e-3                  # relative error of noise on tiny entries
    assert max(floored.values()) < 1e-6        # absolute below 1e-4: backprop is right
