"""Numerics, property-based: softmax, the log-losses and the sigmoid stay finite for inputs of
+-1e4, and every layer keeps its shapes and dtypes for random sizes and batch sizes (a batch
of one included)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnexp.core import ACTIVATIONS, MLP, OUTPUTS, VALID_OUTPUT_LOSS
from nnexp.core.losses import LOSSES, Scratch, make_head

FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
DTYPES = st.sampled_from(["float32", "float64"])
BIG = 1e4


@st.composite
def extreme_logits(draw):
    """An (n, c) array of logits in [-1e4, 1e4], the extremes themselves often included."""
    dtype = draw(DTYPES)
    n, c = draw(st.integers(1, 6)), draw(st.integers(2, 6))
    values = st.one_of(st.sampled_from([-BIG, BIG, 0.0]),
                       st.floats(-BIG, BIG, allow_nan=False, width=32 if dtype == "float32" else 64))
    return draw(arrays(dtype, (n, c), elements=values))


def one_hot(n, c, rng, dtype):
    Y = np.zeros((n, c), dtype)
    Y[np.arange(n), rng.integers(0, c, n)] = 1
    return Y


@FAST
@given(extreme_logits())
@example(np.array([[BIG, -BIG], [-BIG, BIG], [BIG, BIG]]))
def test_softmax_is_finite_and_a_distribution(Z):
    P = OUTPUTS["softmax"]()(Z)
    assert P.dtype == Z.dtype and P.shape == Z.shape
    assert np.isfinite(P).all() and (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5 if Z.dtype == np.float32 else 1e-12)


@FAST
@given(extreme_logits())
@example(np.array([[BIG, -BIG]]))
def test_sigmoid_output_and_activation_are_finite_and_saturate_exactly(Z):
    # no overflow warning either (underflow to exactly 0 is fine)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for P in (OUTPUTS["sigmoid"]()(Z), ACTIVATIONS["sigmoid"]()(Z)):
            assert P.dtype == Z.dtype and np.isfinite(P).all()
            assert ((P >= 0) & (P <= 1)).all()
            assert (P[Z == BIG] == 1).all() and (P[Z == -BIG] == 0).all()


@FAST
@given(extreme_logits(), st.integers(0, 2**32 - 1))
@example(np.array([[BIG, -BIG], [-BIG, BIG]]), 0)
def test_log_losses_and_their_deltas_stay_finite(Z, seed):
    """Cross-entropy from softmax logits and binary cross-entropy from sigmoid logits, with
    targets that disagree as badly as possible with +-1e4 logits."""
    rng = np.random.default_rng(seed)
    n, c = Z.shape
    targets = {"softmax": one_hot(n, c, rng, Z.dtype),
               "sigmoid": rng.integers(0, 2, (n, c)).astype(Z.dtype)}
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for output, loss in (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")):
            head = make_head(output, loss).bind(Z.dtype)
            ws = Scratch(n, c, Z.dtype)
            P, delta, Y = np.empty_like(Z), np.empty_like(Z), targets[output]
            value = head.forward_loss(Z, P, Y, ws)
            head.delta(Z, P, Y, delta, ws)
            assert np.isfinite(value) and value >= -1e-6, (output, value)
            assert np.isfinite(delta).all() and delta.dtype == Z.dtype


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stand_alone_log_losses_stay_finite_on_saturated_probabilities(dtype):
    """``LOSSES[...]().value/grad`` on probabilities of exactly 0 and 1 (what +-1e4 logits
    give), against every target, the opposite one included. (Enumerated rather than drawn:
    every case is small.)"""
    saturated = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype)
    cases = {"binary_cross_entropy": (saturated, np.array([[0, 1], [1, 0], [1, 1], [0, 0]], dtype)),
             "cross_entropy": (saturated[:2], np.array([[0, 1], [1, 0]], dtype))}
    with np.errstate(all="ignore"):
        for name, (P, Y) in cases.items():
            for rows in (slice(None), slice(0, 1)):       # a batch of one too
                loss, grad = LOSSES[name](), np.empty_like(P[rows])
                loss.grad(P[rows], Y[rows], grad)
                assert np.isfinite(loss.value(P[rows], Y[rows])), (name, rows)
                assert np.isfinite(grad).all(), (name, rows)


@FAST
@given(extreme_logits())
def test_every_hidden_activation_and_its_derivative_stay_finite(Z):
    for name, cls in ACTIVATIONS.items():
        A = cls()(Z)
        assert A.dtype == Z.dtype and A.shape == Z.shape and np.isfinite(A).all(), name
        assert np.isfinite(cls().derivative(A)).all(), name


@st.composite
def networks(draw):
    """An MLP of random depth, widths, activation, head and dtype, and a batch size."""
    output, loss = draw(st.sampled_from(sorted(VALID_OUTPUT_LOSS)))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 5))
    sizes = [draw(st.integers(1, 9)), *draw(st.lists(st.integers(1, 12), max_size=3)), n_out]
    net = MLP(sizes, activation=draw(st.sampled_from(sorted(ACTIVATIONS))), output=output, loss=loss,
              dtype=draw(DTYPES), seed=draw(st.integers(0, 100)))
    return net, draw(st.integers(1, 33))


@FAST
@given(networks(), st.integers(0, 2**32 - 1))
@example((MLP([3, 1, 2]), 1), 0)
@example((MLP([5, 4, 1], output="sigmoid", loss="binary_cross_entropy", dtype="float32"), 1), 1)
def test_every_layer_keeps_shapes_and_dtypes(net_and_batch, seed):
    net, n = net_and_batch
    rng = np.random.default_rng(seed)
    d_in, d_out = net.sizes[0], net.sizes[-1]
    X = rng.normal(size=(n, d_in))                    # float64 in: cast to the network's dtype
    Y = (one_hot(n, d_out, rng, np.float64) if net.output == "softmax"
         else rng.integers(0, 2, (n, d_out)).astype(np.float64))

    P = net.predict_proba(X)
    assert P.shape == (n, d_out) and P.dtype == net.dtype and np.isfinite(P).all()
    assert net.predict(X).shape == (n,)
    loss, grads = net.loss_and_grads(X, Y)
    assert np.isfinite(loss)
    for name, param, grad in zip(net.param_names, net.params, grads):
        assert grad.shape == param.shape and grad.dtype == param.dtype == net.dtype, name
        assert np.isfinite(grad).all(), name
    # layer k maps d_{k-1} to d_k: W_k (d_{k-1}, d_k) and b_k (d_k,), after any number of passes
    shapes = [shape for d_in_k, d_out_k in zip(net.sizes[:-1], net.sizes[1:])
              for shape in ((d_in_k, d_out_k), (d_out_k,))]
    assert [p.shape for p in net.params] == shapes
    mean_loss, accuracy = net.evaluate(X, Y)
    assert np.isfinite(mean_loss) and 0 <= accuracy <= 1
