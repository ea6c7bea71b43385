"""The layer plan's options: gradients checked numerically (float64, depths 1 to 3), batch norm
and label smoothing against torch, dropout's statistics, parameter specs."""

import numpy as np
import pytest

from nnexp.core import MLP, gradcheck

N, N_IN, WIDTH, N_OUT = 6, 3, 4, 3


def _options(kind: str, depth: int) -> dict:
    hidden = depth - 1
    lists = {1: [], 2: ["tanh"], 3: ["sigmoid", "relu"]}
    return {
        "dropout": {"activation": "tanh", "dropout": 0.3},
        "batch_norm": {"activation": "tanh", "batch_norm": True},
        "batch_norm_relu": {"activation": "relu", "batch_norm": True},
        "label_smoothing": {"activation": "tanh", "label_smoothing": 0.2},
        "activation_list": {"activation": lists[depth]},
        "halved_then_plain": {"activation": ["sigmoid"] * hidden if hidden < 2 else ["sigmoid", "tanh"]},
        "everything": {"activation": (["relu", "sigmoid"] if hidden == 2 else ["sigmoid"] * hidden),
                       "dropout": [0.25] * hidden, "batch_norm": [i % 2 == 0 for i in range(hidden)],
                       "label_smoothing": 0.1},
    }[kind]


def well_conditioned(kind, depth, train, floor=1e-4):
    """The first seeded point whose gradient entries are all 0 or >= floor in magnitude (the
    choice looks at the magnitudes only, never at the numerical comparison)."""
    sizes = [N_IN] + [WIDTH] * (depth - 1) + [N_OUT]
    for seed in range(200):
        net = MLP(sizes, init="xavier_normal", seed=seed, **_options(kind, depth))
        rng = np.random.default_rng(seed)
        X, Y = rng.normal(size=(N, N_IN)), np.eye(N_OUT)[rng.integers(0, N_OUT, N)]
        for spec, p in zip(net.param_specs, net.params):
            if not spec.decay:                    # biases, gamma, beta: away from 0 and 1
                p[...] = rng.normal(1.0 if spec.name.startswith("gamma") else 0.0, 0.3, p.shape)
        net.loss_and_grads(X, Y, train=train, seed=seed)
        magnitudes = np.abs(net.grad_flat)
        if np.all((magnitudes == 0) | (magnitudes >= floor)):
            return net, X, Y, seed
    raise AssertionError("no well-conditioned point among 200 seeds")


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("kind", ["dropout", "batch_norm", "batch_norm_relu", "label_smoothing",
                                  "activation_list", "halved_then_plain", "everything"])
@pytest.mark.parametrize("train", [True, False])
def test_backprop_matches_central_differences(kind, depth, train):
    net, X, Y, seed = well_conditioned(kind, depth, train)
    before, buffers = net.flat.copy(), {k: v.copy() for k, v in net.buffers().items()}
    errors = gradcheck(net, X, Y, seed=seed, train=train)
    assert list(errors) == net.param_names
    assert max(errors.values()) < 1e-6, errors
    np.testing.assert_array_equal(net.flat, before)
    for name, a in net.buffers().items():
        np.testing.assert_array_equal(a, buffers[name])


def test_a_dropout_mask_zeroes_gradients_it_drops():
    net = MLP([3, 50, 2], activation="tanh", dropout=0.5, seed=0)
    X, Y = np.random.default_rng(0).normal(size=(1, 3)), np.eye(2)[[1]]
    _, grads = net.loss_and_grads(X, Y, train=True, seed=4)
    dropped = grads[2] == 0                     # W2 rows of dropped units: (50, 2)
    assert 10 < dropped.all(axis=1).sum() < 40  # about half, for one sample
    np.testing.assert_array_equal(dropped.all(axis=1), (grads[0] == 0).all(axis=0))


def test_param_specs_name_shape_and_decay_agree_with_the_ndim_rule():
    net = MLP([5, 4, 3, 2], batch_norm=[True, False])
    assert net.param_names == ["W1", "gamma1", "beta1", "W2", "b2", "W3", "b3"]
    for spec, p in zip(net.param_specs, net.params):
        assert spec.shape == p.shape and spec.decay == (p.ndim >= 2)
        assert p.base is net.flat
    assert net.flat.size == sum(s.size for s in net.param_specs)
    assert (net.params[1] == 1).all() and (net.params[2] == 0).all()   # gamma 1, beta 0
    assert set(net.buffers()) == {"running_mean1", "running_var1"}


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, "dropout must lie in \\[0, 1\\)"),
    ({"dropout": [0.1, 1.5]}, "dropout\\[1\\] must lie in \\[0, 1\\)"),
    ({"batch_norm": "yes"}, "batch_norm must be true or false"),
    ({"dropout": [0.1]}, "dropout has 1 entries but the network has 2 hidden layers"),
    ({"batch_norm": [True, "yes"]}, "batch_norm\\[1\\] must be true or false"),
    ({"activation": ["relu", "relux"]}, "unknown activation 'relux'"),
    ({"activation": ["relu"]}, "activation has 1 entries"),
    ({"label_smoothing": 1.0}, "label_smoothing must lie in"),
    ({"label_smoothing": 0.1, "output": "sigmoid", "loss": "mse"}, "label_smoothing applies to"),
    ({"activation": ["relu", "tanh"], "activation_kwargs": {"slope": 0.1}}, "unknown option 'slope'"),
])
def test_bad_options_are_refused_in_one_line(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        MLP([4, 3, 3, 2], **kwargs)


def test_activation_list_applies_per_layer_and_kwargs_go_where_declared():
    net = MLP([4, 3, 3, 2], activation=["leaky_relu", "tanh"], activation_kwargs={"slope": 0.2})
    assert [layer.activation_name for layer in net.layers] == ["leaky_relu", "tanh", None]
    assert net.layers[0].activation.slope == 0.2
    X = np.random.default_rng(0).normal(size=(5, 4))
    (W1, b1, W2, b2, W3, b3) = net.params
    Z = X @ W1 + b1
    A = np.tanh(np.maximum(Z, 0.2 * Z) @ W2 + b2)
    Z3 = A @ W3 + b3
    P = np.exp(Z3) / np.exp(Z3).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.predict_proba(X), P, rtol=1e-12)


# ---------------------------------------------------------------------------------- torch
def _torch_twin(net, torch):
    """torch's Linear(bias=False) -> BatchNorm1d -> tanh -> Linear, with net's weights."""
    W1, gamma, beta, W2, b2 = (torch.tensor(p.copy(), requires_grad=True) for p in net.params)
    bn = torch.nn.BatchNorm1d(W1.shape[1], momentum=0.1, eps=1e-5).double()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    return bn, W2, b2, W1


def test_batch_norm_against_torch_in_training_and_evaluation():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    net = MLP([5, 7, 3], activation="tanh", batch_norm=True, seed=1)
    net.params[1][...] = rng.uniform(0.5, 1.5, 7)
    net.params[2][...] = rng.normal(0, 0.5, 7)
    bn, W2, b2, W1 = _torch_twin(net, torch)
    for step in range(4):                                    # training mode, running stats
        X, y = rng.normal(size=(9, 5)) * 2 + 1, rng.integers(0, 3, 9)
        loss, grads = net.loss_and_grads(X, np.eye(3)[y], train=True)
        bn.train()
        for t in (W1, W2, b2, bn.weight, bn.bias):
            t.grad = None
        ref = F.cross_entropy(torch.tanh(bn(torch.tensor(X) @ W1)) @ W2 + b2, torch.tensor(y))
        ref.backward()
        assert loss == pytest.approx(ref.item(), rel=1e-12)
        for g, t in zip(grads, (W1, bn.weight, bn.bias, W2, b2)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(net.layers[0].running_mean, bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(net.layers[0].running_var, bn.running_var.numpy(), rtol=1e-12)
    X, y = rng.normal(size=(4, 5)), rng.integers(0, 3, 4)    # evaluation mode
    bn.eval()
    for t in (W1, W2, b2, bn.weight, bn.bias):
        t.grad = None
    logits = torch.tanh(bn(torch.tensor(X) @ W1)) @ W2 + b2
    F.cross_entropy(logits, torch.tensor(y)).backward()
    np.testing.assert_allclose(net.predict_proba(X), torch.softmax(logits, 1).detach().numpy(), rtol=1e-12)
    _, grads = net.loss_and_grads(X, np.eye(3)[y])
    for g, t in zip(grads, (W1, bn.weight, bn.bias, W2, b2)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_label_smoothing_against_torch_cross_entropy(eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    net = MLP([4, 6, 5], activation="relu", label_smoothing=eps, seed=0)
    X, y = rng.normal(size=(8, 4)), rng.integers(0, 5, 8)
    loss, grads = net.loss_and_grads(X, np.eye(5)[y])
    W1, b1, W2, b2 = (torch.tensor(p.copy(), requires_grad=True) for p in net.params)
    logits = torch.relu(torch.tensor(X) @ W1 + b1) @ W2 + b2
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(y), label_smoothing=eps)
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    assert net.evaluate(X, np.eye(5)[y])[0] == pytest.approx(ref.item(), rel=1e-12)
    for g, t in zip(grads, (W1, b1, W2, b2)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------- dropout
def test_dropout_keeps_the_right_fraction_scales_and_is_off_at_evaluation():
    p = 0.3
    net = MLP([20, 400, 2], activation="relu", dropout=p, seed=0)
    X = np.abs(np.random.default_rng(0).normal(size=(50, 20)))
    ws = net.workspace(50)
    net._load(ws, X, np.eye(2)[np.zeros(50, int)])
    net.train_step(ws, None, np.random.default_rng(3))
    M = ws.masks()[1].copy()
    kept = M != 0
    assert kept.mean() == pytest.approx(1 - p, abs=0.01)          # 20,000 Bernoulli draws
    np.testing.assert_allclose(M[kept], 1 / (1 - p))
    # evaluation: exactly the network without dropout, whatever happened in training
    plain = MLP([20, 400, 2], activation="relu", seed=0)
    np.testing.assert_array_equal(net.predict_proba(X), plain.predict_proba(X))
    # same seed, same masks; another seed, others
    masks = []
    for seed in (3, 3, 4):
        net.train_step(ws, None, np.random.default_rng(seed))
        masks.append(ws.masks()[1].copy())
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(masks[0], M)
    assert not np.array_equal(masks[0], masks[2])


def test_fit_with_dropout_is_reproducible_from_its_seed():
    from nnexp.core import SGD, fit

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(60, 4)), np.eye(2)[rng.integers(0, 2, 60)]
    runs = []
    for seed in (0, 0, 1):
        net = MLP([4, 8, 2], dropout=0.5, batch_norm=True, seed=2)
        h = fit(net, SGD(lr=0.1), (X, Y), epochs=3, batch_size=8, seed=seed)
        runs.append((h.train_loss, net.flat.copy(), net.layers[0].running_var.copy()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert np.array_equal(runs[0][2], runs[1][2])
    assert not np.array_equal(runs[0][1], runs[2][1])
