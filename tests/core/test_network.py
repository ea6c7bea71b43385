"""The MLP: construction, parameter layout, initialisation, passes and dtypes."""

import numpy as np
import pytest

from nnexp.core import INITIALIZERS, MLP, SGD, Adam

SIZES = [5, 7, 4, 3]


def data(n=6, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


def test_params_are_views_into_one_flat_buffer_in_order():
    net = MLP(SIZES)
    assert [p.shape for p in net.params] == [(5, 7), (7,), (7, 4), (4,), (4, 3), (3,)]
    assert net.param_names == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert net.flat.size == sum(p.size for p in net.params)
    assert all(p.base is net.flat and g.base is net.grad_flat for p, g in zip(net.params, net.grads))
    np.testing.assert_array_equal(np.concatenate([p.ravel() for p in net.params]), net.flat)
    net.flat[:] = 7.0                                  # the views are live
    assert all((p == 7.0).all() for p in net.params)


def test_biases_start_at_zero_and_weights_follow_the_initializer():
    net = MLP([400, 300, 2], init="he", seed=1)
    assert all((b == 0).all() for b in net.params[1::2])
    assert net.params[0].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    net = MLP([400, 200, 2], init="xavier_uniform", seed=1)
    limit = np.sqrt(6 / 600)
    assert np.abs(net.params[0]).max() <= limit
    assert net.params[0].std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    net = MLP([400, 200, 2], init="glorot_normal", seed=1)
    assert net.params[0].std() == pytest.approx(np.sqrt(2 / 600), rel=0.02)
    net = MLP([400, 200, 2], init="uniform", init_kwargs={"epsilon": 0.05}, seed=1)
    assert 0.049 < np.abs(net.params[0]).max() <= 0.05
    net = MLP([400, 200, 2], init="normal", init_kwargs={"std": 0.3}, seed=1)
    assert net.params[0].std() == pytest.approx(0.3, rel=0.02)
    net = MLP([4, 3, 2], init="constant", init_kwargs={"value": 0.25})
    assert all((W == 0.25).all() for W in net.params[0::2])


def test_every_initializer_name_builds_a_network():
    for name in INITIALIZERS:
        net = MLP([3, 4, 2], init=name, seed=0)
        assert np.isfinite(net.flat).all()


def test_same_seed_same_weights_and_float32_starts_from_the_rounded_float64_weights():
    a, b = MLP(SIZES, seed=3), MLP(SIZES, seed=3)
    np.testing.assert_array_equal(a.flat, b.flat)
    assert not np.array_equal(a.flat, MLP(SIZES, seed=4).flat)
    np.testing.assert_array_equal(MLP(SIZES, seed=3, dtype="float32").flat, a.flat.astype(np.float32))


def test_constant_init_keeps_hidden_units_identical_the_symmetry_problem():
    X, Y = data(n=20, sizes=[4, 6, 3])
    net = MLP([4, 6, 3], activation="tanh", init="constant", init_kwargs={"value": 0.3})
    opt = SGD(lr=0.5)
    for _ in range(25):
        _, grads = net.loss_and_grads(X, Y)
        opt.step(net.params, grads)
    W1, b1, W2 = net.params[:3]
    assert not np.allclose(W1, 0.3)                     # it did learn something ...
    # ... but every hidden unit is a copy of the first (up to BLAS rounding, which may treat
    # columns in different SIMD lanes: differences of 1e-16, against changes of 1e-1)
    for unit in range(1, 6):
        np.testing.assert_allclose(W1[:, unit], W1[:, 0], rtol=1e-12)
        np.testing.assert_allclose(W2[unit], W2[0], rtol=1e-12)
    np.testing.assert_allclose(b1, b1[0], rtol=1e-12)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"activation": "relux"}, ValueError,
     "unknown activation 'relux'; choose one of: identity, leaky_relu, relu, sigmoid, tanh"),
    ({"output": "tanh"}, ValueError, "unknown output 'tanh'; choose one of: identity, sigmoid, softmax"),
    ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
    ({"output": "identity", "loss": "cross_entropy"}, ValueError,
     "output 'identity' cannot be trained with loss 'cross_entropy'"),
    ({"init": "kaiming"}, ValueError, "unknown init 'kaiming'; choose one of: constant, glorot_normal"),
    ({"dtype": "float16"}, ValueError, "unknown dtype 'float16'; choose one of: float32, float64"),
    ({"init": "he", "init_kwargs": {"std": 1.0}}, TypeError,
     "unknown option 'std' for init 'he'; valid options: \\(none\\)"),
    ({"init": "normal", "init_kwargs": {"sd": 1.0}}, TypeError, "valid options: std"),
    ({"activation": "relu", "activation_kwargs": {"slope": 0.1}}, TypeError, "unknown option 'slope'"),
    ({"init": "normal", "init_kwargs": {"std": -1.0}}, ValueError, "std must be a finite number > 0"),
])
def test_constructor_errors_name_the_bad_value(kwargs, error, message):
    with pytest.raises(error, match=message):
        MLP(SIZES, **kwargs)


@pytest.mark.parametrize("sizes, message", [
    ([5], "at least an input and an output"), ([5, 0, 3], "sizes\\[1\\] must be an integer >= 1"),
    ([5, 2.5, 3], "must be an integer"), ("53", "list of layer widths")])
def test_bad_sizes(sizes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        MLP(sizes)


def test_softmax_needs_two_units():
    with pytest.raises(ValueError, match="softmax output needs at least 2 units"):
        MLP([3, 1], output="softmax")


def test_loss_is_a_mean_and_grads_align_with_params():
    net = MLP(SIZES, seed=0)
    X, Y = data()
    loss, grads = net.loss_and_grads(X, Y)
    assert grads is net.grads and [g.shape for g in grads] == [p.shape for p in net.params]
    loss2, grads2 = net.loss_and_grads(np.vstack([X, X]), np.vstack([Y, Y]))
    assert loss2 == pytest.approx(loss, rel=1e-14)      # duplicating the batch changes nothing
    assert net.loss(X, Y) == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(net.predict_proba(X).sum(axis=1), 1.0)


def test_predict_matches_a_plain_forward_pass():
    net = MLP([3, 4, 2], activation="tanh", output="softmax", seed=2)
    X = np.random.default_rng(0).normal(size=(9, 3))
    W1, b1, W2, b2 = net.params
    Z = np.tanh(X @ W1 + b1) @ W2 + b2
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.predict_proba(X), P, rtol=1e-13)
    np.testing.assert_array_equal(net.predict(X), P.argmax(axis=1))


def test_predict_in_chunks_equals_one_pass(monkeypatch):
    net = MLP([3, 4, 1], activation="relu", output="sigmoid", loss="binary_cross_entropy", seed=0)
    X = np.random.default_rng(1).normal(size=(23, 3))
    Y = (X[:, :1] > 0).astype(float)
    whole = net.predict_proba(X)
    loss, acc = net.evaluate(X, Y)
    net._chunk = 5
    # equal up to rounding: BLAS may take another kernel for the 3-row last chunk
    np.testing.assert_allclose(net.predict_proba(X), whole, rtol=1e-13, atol=0)
    assert net.evaluate(X, Y) == pytest.approx((loss, acc), rel=1e-14)
    assert set(np.unique(net.predict(X))) <= {0, 1}


def test_single_sigmoid_output_accepts_a_flat_target_column():
    net = MLP([2, 3, 1], output="sigmoid", loss="binary_cross_entropy")
    X = np.ones((4, 2))
    assert net.loss(X, np.array([0, 1, 1, 0])) == net.loss(X, np.array([[0], [1], [1], [0]]))


def test_input_shapes_are_checked():
    net = MLP(SIZES)
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 5\), got \(4, 3\)"):
        net.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"Y must have shape \(4, 3\)"):
        net.loss_and_grads(np.ones((4, 5)), np.ones((4, 2)))


@pytest.mark.parametrize("opt", [SGD(lr=0.1, weight_decay=0.01), Adam(lr=0.01, weight_decay=0.01)])
def test_float32_stays_float32_everywhere(opt):
    net = MLP(SIZES, activation="sigmoid", dtype="float32", seed=0)
    X, Y = data()
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    for _ in range(2):
        loss, grads = net.loss_and_grads(X, Y)
        opt.step(net.params, grads)
    arrays = [net.flat, net.grad_flat, *net.params, *net.grads]
    arrays += [a for name in opt.state for a in opt.state[name]]
    for ws in net._workspaces.values():                 # every buffer of every workspace
        for value in [*vars(ws).values(), *(v for bf in ws.layers for v in vars(bf).values())]:
            if isinstance(value, np.ndarray) and value.dtype != np.intp:
                arrays.append(value)
    assert len(arrays) > 30 and all(a.dtype == np.float32 for a in arrays)
    assert net.predict_proba(X.astype(np.float64)).dtype == np.float32   # inputs are cast down


@pytest.mark.parametrize("output,loss,width", [("softmax", "cross_entropy", 4), ("sigmoid", "binary_cross_entropy", 1),
                                               ("identity", "mse", 3), ("sigmoid", "mse", 3), ("softmax", "mse", 4)])
def test_evaluate_hands_back_the_labels_predict_gives(output, loss, width, monkeypatch):
    """One pass over the test set gives the run its scores and the per-class report's labels."""
    net = MLP([5, 6, width], activation="relu", output=output, loss=loss, seed=3, dtype="float32")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(47, 5))
    Y = rng.random((47, width)) if output == "identity" else np.eye(max(width, 2))[rng.integers(0, max(width, 2), 47)][:, :width]
    monkeypatch.setattr(net, "_chunk", 10)   # several chunks, the last one short
    predicted = np.full(47, -1, np.intp)
    assert net.evaluate(X, Y, predicted=predicted) == net.evaluate(X, Y)
    np.testing.assert_array_equal(predicted, net.predict(X))
