"""Activations, output functions, losses and the output x loss table."""

import numpy as np
import pytest

from nnexp.core import ACTIVATIONS, LOSSES, OUTPUTS, VALID_OUTPUT_LOSS, accuracy, check_output_loss
from nnexp.core.losses import Scratch, make_head

Z = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])


def numeric_derivative(f, z, h=1e-6):
    return (f(z + h) - f(z - h)) / (2 * h)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_from_cached_output_matches_finite_differences(name):
    act = ACTIVATIONS[name]()
    z = np.array([[-2.0, -0.7, -0.1, 0.2, 0.9, 2.5]])   # no point at a kink
    expected = numeric_derivative(act, z)
    np.testing.assert_allclose(act.derivative(act(z)), expected, rtol=1e-7, atol=1e-9)


def test_activation_values():
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"]()(Z), 1 / (1 + np.exp(-Z)), rtol=1e-15)
    np.testing.assert_allclose(ACTIVATIONS["tanh"]()(Z), np.tanh(Z))
    np.testing.assert_array_equal(ACTIVATIONS["relu"]()(Z), [[0, 0, 0, 0.5, 3]])
    np.testing.assert_array_equal(ACTIVATIONS["identity"]()(Z), Z)
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"]()(Z), [[-0.03, -0.005, 0, 0.5, 3]])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"](slope=0.2)(Z), [[-0.6, -0.1, 0, 0.5, 3]])


def test_leaky_relu_default_slope_and_its_derivative():
    act = ACTIVATIONS["leaky_relu"]()
    assert act.slope == 0.01
    np.testing.assert_array_equal(act.derivative(act(np.array([-2.0, 3.0]))), [0.01, 1.0])


@pytest.mark.parametrize("slope", [-0.1, 1.0, 2.0])
def test_leaky_relu_refuses_slopes_outside_0_1(slope):
    with pytest.raises(ValueError, match="slope"):
        ACTIVATIONS["leaky_relu"](slope=slope)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow_or_warning(dtype):
    z = np.array([[-1e4, -800.0, 0.0, 800.0, 1e4]], dtype)   # warnings are errors in this suite
    for f in (ACTIVATIONS["sigmoid"](), OUTPUTS["sigmoid"]()):
        a = f(z)
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, [[0.0, 0.0, 0.5, 1.0, 1.0]])


def test_softmax_is_shift_invariant_and_stable_for_huge_logits():
    softmax = OUTPUTS["softmax"]()
    z = np.array([[1.0, 2.0, 3.0], [1e4, 1e4 + 1.0, 1e4 + 2.0], [-1e4, 0.0, 1e4]])
    p = softmax(z)
    np.testing.assert_allclose(p[0], p[1], rtol=1e-12)
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    np.testing.assert_array_equal(p[2], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_valid_pairs_are_the_documented_five():
    assert VALID_OUTPUT_LOSS == {
        ("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("identity", "mse"),
        ("sigmoid", "mse"), ("softmax", "mse")}
    for output, loss in VALID_OUTPUT_LOSS:
        check_output_loss(output, loss)


@pytest.mark.parametrize("output, loss", [
    (o, l) for o in OUTPUTS for l in LOSSES if (o, l) not in VALID_OUTPUT_LOSS])
def test_invalid_pairs_are_refused_with_the_valid_ones_listed(output, loss):
    with pytest.raises(ValueError, match=f"output '{output}' cannot be trained with loss '{loss}'; "
                                         f"valid output\\+loss pairs: identity\\+mse, "):
        check_output_loss(output, loss)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; choose one of: "
                                         r"binary_cross_entropy, cross_entropy, mse$"):
        check_output_loss("softmax", "hinge")
    with pytest.raises(ValueError, match=r"unknown output 'relu'; choose one of: identity, sigmoid, softmax$"):
        check_output_loss("relu", "mse")
    with pytest.raises(TypeError, match="output must be a name"):
        check_output_loss(None, "mse")


def head_loss_and_delta(output, loss, Z, Y):
    """Loss, P and dL/dZ for ``(n, c)`` arrays; heads work on the transposed ``(c, n)``."""
    Zt, Yt = np.ascontiguousarray(Z.T), np.ascontiguousarray(Y.T)
    head = make_head(output, loss).bind(Z.dtype)
    ws = Scratch(*Zt.shape, dtype=Z.dtype)
    P, delta = np.empty_like(Zt), np.empty_like(Zt)
    value = head.forward_loss(Zt, P, Yt, ws)
    head.delta(Zt, P, Yt, delta, ws)
    return value, P.T, delta.T


def test_loss_values_match_their_formulas():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(4, 3))
    onehot = np.eye(3)[[0, 2, 1, 2]]
    bits = rng.integers(0, 2, (4, 3)).astype(float)
    target = rng.normal(size=(4, 3))
    p_soft = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    p_sig = 1 / (1 + np.exp(-Z))
    expected = {
        ("softmax", "cross_entropy", 0): -np.sum(onehot * np.log(p_soft)) / 4,
        ("sigmoid", "binary_cross_entropy", 1): -np.sum(bits * np.log(p_sig) + (1 - bits) * np.log(1 - p_sig)) / 4,
        ("identity", "mse", 2): np.sum((Z - target) ** 2) / 8,
        ("sigmoid", "mse", 1): np.sum((p_sig - bits) ** 2) / 8,
        ("softmax", "mse", 0): np.sum((p_soft - onehot) ** 2) / 8,
    }
    for (output, loss, which), value in expected.items():
        Y = (onehot, bits, target)[which]
        got, _, _ = head_loss_and_delta(output, loss, Z, Y)
        assert got == pytest.approx(value, rel=1e-12), (output, loss)


def test_log_losses_stay_finite_for_saturated_logits():
    Z = np.array([[1e4], [-1e4]])
    loss, P, _ = head_loss_and_delta("sigmoid", "binary_cross_entropy", Z, np.array([[0.0], [1.0]]))
    assert loss == pytest.approx(1e4)     # each sample: softplus(1e4) = 1e4, the honest value
    loss, _, _ = head_loss_and_delta("softmax", "cross_entropy", np.array([[1e4, -1e4]]), np.array([[0.0, 1.0]]))
    assert loss == pytest.approx(2e4)


def test_canonical_deltas_are_p_minus_y_over_n():
    Z = np.array([[0.3, -1.0, 2.0], [1.0, 0.0, -0.5]])
    Y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    for output, loss in [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("identity", "mse")]:
        _, P, delta = head_loss_and_delta(output, loss, Z, Y)
        np.testing.assert_allclose(delta, (P - Y) / 2, rtol=1e-15)


def test_accuracy_argmax_and_threshold():
    assert accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0, 1], [0, 1]])) == 0.5
    assert accuracy(np.array([[0.7], [0.2], [0.51]]), np.array([[1], [0], [0]])) == pytest.approx(2 / 3)
    assert accuracy(np.array([0.7, 0.2]), np.array([1.0, 0.0])) == 1.0
