"""The detailed gradient check: worst entries against the plain check, rows on ReLU kinks."""

from __future__ import annotations

import numpy as np

from nnexp.core import MLP, gradcheck
from nnexp.core.gradcheck_detail import near_kinks, worst_entries


def test_worst_entries_agree_with_gradcheck_and_name_the_entry():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    net = MLP([3, 4, 2], activation="tanh", seed=1)
    plain = gradcheck(net, X, Y, floor=1e-4)
    found = worst_entries(net, X, Y, floor=1e-4)
    _, grads = net.loss_and_grads(X, Y)
    for name, grad in zip(net.param_names, grads):
        entry = found[name]
        assert entry.error == plain[name]
        assert entry.analytic == grad[entry.index]
        assert abs(entry.numeric - entry.analytic) <= max(1e-6, entry.error * 2 * abs(entry.analytic) + 1e-9)


def test_a_row_at_the_origin_sits_on_every_relu_kink_and_fails_the_plain_check():
    rng = np.random.default_rng(0)
    X = np.vstack([np.zeros(2), rng.normal(size=(5, 2))])
    Y = np.eye(3)[rng.integers(0, 3, 6)]
    net = MLP([2, 8, 3], activation="relu", seed=0)
    kinked = near_kinks(net, X)
    assert kinked[0] and not kinked[1:].any()
    assert gradcheck(net, X, Y, floor=1e-4)["b1"] > 1e-2           # the spurious failure
    assert max(e.error for e in worst_entries(net, X[~kinked], Y[~kinked]).values()) < 1e-6
    assert not near_kinks(MLP([2, 8, 3], activation="sigmoid"), X).any()


def test_near_kinks_follows_the_activation_of_each_layer():
    from nnexp.core import MLP
    from nnexp.core.gradcheck_detail import near_kinks

    X = np.array([[0.0, 0.0], [1.0, -2.0]])
    for activation, expected in ((["tanh", "relu"], [True, False]), (["relu", "tanh"], [True, False]),
                                 (["tanh", "tanh"], [False, False])):
        net = MLP([2, 3, 3, 2], activation=activation, seed=0)
        np.testing.assert_array_equal(near_kinks(net, X), expected)
    net = MLP([2, 3, 2], activation="relu", batch_norm=True, seed=0)   # beta = 0: z = gamma xhat
    net.layers[0].running_mean[...] = X[1] @ net.weights[0]          # row 2 normalises to 0
    np.testing.assert_array_equal(near_kinks(net, X), [False, True])
