"""Optimizers and schedules against numbers worked out independently of nnexp.core.

Each update rule is written out below per scalar entry, straight from the textbook formulas
(Adam's with the bias-corrected moments, even though the implementation rearranges them), and
the first step is also checked against numbers computed by hand.
"""

import math

import numpy as np
import pytest

from nnexp.core import (
    MLP, SGD, AdaGrad, Adam, AdamW, Constant, ExponentialDecay, InverseTimeDecay, Momentum, Nesterov,
    RMSprop, StepDecay,
)
from nnexp.core.optimizers import OPTIMIZERS
from nnexp.core.schedules import SCHEDULES

W0 = [[1.0, -2.0], [0.5, 3.0]]
B0 = [0.5, -0.25]
GRADS = [  # (dW, db) for three steps
    ([[0.5, -1.0], [2.0, 0.0]], [0.25, -4.0]),
    ([[-1.0, 0.5], [1.0, 0.1]], [0.5, 1.0]),
    ([[0.2, 0.3], [-0.4, 2.0]], [-0.1, 0.0]),
]


# ----------------------------------------------------------------- reference rules, per scalar
def ref_sgd(w, g, s, t, lr):
    return w - lr * g


def ref_momentum(w, g, s, t, lr, mu=0.9):
    s["v"] = mu * s.get("v", 0.0) + lr * g
    return w - s["v"]


def ref_nesterov(w, g, s, t, lr, mu=0.9):
    s["v"] = mu * s.get("v", 0.0) + lr * g
    return w - (mu * s["v"] + lr * g)


def ref_rmsprop(w, g, s, t, lr, rho=0.9, eps=1e-8):
    s["s"] = rho * s.get("s", 0.0) + (1 - rho) * g * g
    return w - lr * g / (math.sqrt(s["s"]) + eps)


def ref_adam(w, g, s, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
    s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1 ** t)
    v_hat = s["v"] / (1 - b2 ** t)
    return w - lr * m_hat / (math.sqrt(v_hat) + eps)


def ref_adagrad(w, g, s, t, lr, eps=1e-8):
    s["G"] = s.get("G", 0.0) + g * g
    return w - lr * g / (math.sqrt(s["G"]) + eps)


CASES = [  # (optimizer, reference rule, learning rate)
    (lambda **kw: SGD(lr=0.1, **kw), ref_sgd, 0.1),
    (lambda **kw: Momentum(lr=0.1, momentum=0.9, **kw), ref_momentum, 0.1),
    (lambda **kw: Nesterov(lr=0.1, momentum=0.9, **kw), ref_nesterov, 0.1),
    (lambda **kw: RMSprop(lr=0.01, rho=0.9, eps=1e-8, **kw), ref_rmsprop, 0.01),
    (lambda **kw: Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, **kw), ref_adam, 0.001),
    (lambda **kw: AdaGrad(lr=0.1, eps=1e-8, **kw), ref_adagrad, 0.1),
]
IDS = ["sgd", "momentum", "nesterov", "rmsprop", "adam", "adagrad"]


def reference(rule, lr, steps, weight_decay=0.0):
    """Parameters after ``steps`` steps, entry by entry in plain Python."""
    W, b = [row[:] for row in W0], B0[:]
    state = {}
    for t in range(1, steps + 1):
        dW, db = GRADS[t - 1]
        for i in range(2):
            for j in range(2):
                g = dW[i][j] + weight_decay * W[i][j]         # L2 on weights only
                W[i][j] = rule(W[i][j], g, state.setdefault(("W", i, j), {}), t, lr)
            b[i] = rule(b[i], db[i], state.setdefault(("b", i), {}), t, lr)
    return np.array(W), np.array(b)


def separate_arrays(dtype=np.float64):
    return [np.array(W0, dtype), np.array(B0, dtype)]


def flat_views(dtype=np.float64):
    flat = np.array([*np.ravel(W0), *B0], dtype)
    return flat, [flat[:4].reshape(2, 2), flat[4:]]


def grads_flat(t, dtype=np.float64):
    dW, db = GRADS[t]
    flat = np.array([*np.ravel(dW), *db], dtype)
    return [flat[:4].reshape(2, 2), flat[4:]]


# ------------------------------------------------------------------------------------ tests
def test_first_steps_by_hand():
    """One step from w = 1.0 with g = 0.5 (the [0, 0] entry), numbers worked out by hand."""
    expected = {
        "sgd": 1.0 - 0.1 * 0.5,                                   # 0.95
        "momentum": 1.0 - 0.05,                                   # v = 0.1 * 0.5
        "nesterov": 1.0 - (0.9 * 0.05 + 0.05),                    # 0.905
        "rmsprop": 1.0 - 0.01 * 0.5 / (math.sqrt(0.025) + 1e-8),  # s = 0.1 * 0.25
        "adam": 1.0 - 0.001 * 0.5 / (0.5 + 1e-8),                 # m_hat = 0.5, v_hat = 0.25
        "adagrad": 1.0 - 0.1 * 0.5 / (0.5 + 1e-8),                # G = 0.25
    }
    for (make, _, _), name in zip(CASES, IDS):
        params = separate_arrays()
        make().step(params, [np.array(g) for g in GRADS[0]])
        assert params[0][0, 0] == pytest.approx(expected[name], rel=1e-14), name
    assert expected["nesterov"] == pytest.approx(0.905) and expected["sgd"] == pytest.approx(0.95)
    assert expected["adam"] == pytest.approx(0.999, abs=1e-9)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("layout", ["separate", "flat"])
@pytest.mark.parametrize("make, rule, lr", CASES, ids=IDS)
def test_three_steps_match_the_written_out_rules(make, rule, lr, layout, weight_decay):
    opt = make(weight_decay=weight_decay)
    if layout == "flat":
        _, params = flat_views()
    else:
        params = separate_arrays()
    for t in range(3):
        grads = grads_flat(t) if layout == "flat" else [np.array(g) for g in GRADS[t]]
        opt.step(params, grads)
    W, b = reference(rule, lr, 3, weight_decay)
    np.testing.assert_allclose(params[0], W, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(params[1], b, rtol=1e-13, atol=1e-15)
    assert len(opt._groups) == (1 if layout == "flat" else 2)   # one whole-buffer update
    for arrays in opt.state.values():                           # state shaped like each param
        assert [a.shape for a in arrays] == [(2, 2), (2,)]


def test_weight_decay_leaves_biases_alone():
    params = separate_arrays()
    SGD(lr=0.1, weight_decay=0.5).step(params, [np.zeros((2, 2)), np.zeros(2)])
    np.testing.assert_allclose(params[0], np.array(W0) * (1 - 0.1 * 0.5))
    np.testing.assert_array_equal(params[1], B0)


@pytest.mark.parametrize("make", [c[0] for c in CASES], ids=IDS)
def test_flat_and_per_array_paths_agree_bit_for_bit_on_a_network(make):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 3)), np.eye(2)[rng.integers(0, 2, 8)]
    a, b = MLP([3, 4, 2], seed=0), MLP([3, 4, 2], seed=0)
    opt_a, opt_b = make(weight_decay=0.01), make(weight_decay=0.01)
    for _ in range(3):
        opt_a.step(a.params, a.loss_and_grads(X, Y)[1])
        opt_b.step(b.params, [g.copy() for g in b.loss_and_grads(X, Y)[1]])   # copies: not flat
    assert len(opt_a._groups) == 1 and len(opt_b._groups) == 4
    np.testing.assert_array_equal(a.flat, b.flat)


def test_state_follows_the_parameter_arrays():
    params = separate_arrays()
    opt = Momentum(lr=0.1)
    opt.step(params, [np.ones((2, 2)), np.ones(2)])
    opt.step(params, [np.ones((2, 2)), np.ones(2)])            # new grad lists: same state
    np.testing.assert_allclose(opt.state["velocity"][0], 0.9 * 0.1 + 0.1)
    other = separate_arrays()
    opt.step(other, [np.ones((2, 2)), np.ones(2)])             # other arrays: fresh state
    np.testing.assert_allclose(opt.state["velocity"][0], 0.1)


def test_schedule_values():
    assert Constant()(0.1, 7) == 0.1
    assert StepDecay(step_size=10, gamma=0.5)(0.1, 9) == pytest.approx(0.1)
    assert StepDecay(step_size=10, gamma=0.5)(0.1, 25) == pytest.approx(0.1 * 0.25)
    assert ExponentialDecay(gamma=0.9)(0.1, 2) == pytest.approx(0.081)
    assert InverseTimeDecay(decay_rate=0.5)(0.1, 4) == pytest.approx(0.1 / 3)
    for cls in SCHEDULES.values():
        if not cls.per_step:                                     # (per-step: test_schedules.py)
            assert cls()(0.3, 0) == pytest.approx(0.3)           # epoch 0 trains at the base rate


@pytest.mark.parametrize("schedule, epoch, lr", [
    (Constant(), 5, 0.1), (StepDecay(step_size=2, gamma=0.1), 5, 0.1 * 0.1 ** 2),
    (ExponentialDecay(gamma=0.5), 3, 0.1 * 0.125), (InverseTimeDecay(decay_rate=1.0), 4, 0.1 / 5)])
def test_one_sgd_step_under_each_schedule(schedule, epoch, lr):
    opt = SGD(lr=0.1, schedule=schedule)
    opt.set_epoch(epoch)
    assert opt.lr == pytest.approx(lr) and opt.base_lr == 0.1
    params = separate_arrays()
    opt.step(params, [np.array(g) for g in GRADS[0]])
    assert params[0][0, 0] == pytest.approx(1.0 - lr * 0.5, rel=1e-14)


def test_defaults_and_table():
    assert OPTIMIZERS == {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov,
                          "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW, "adagrad": AdaGrad}
    adam = Adam(lr=0.01)
    assert (adam.beta1, adam.beta2, adam.eps, adam.weight_decay) == (0.9, 0.999, 1e-8, 0.0)
    assert isinstance(adam.schedule, Constant)
    assert Momentum(lr=0.1).momentum == 0.9 and RMSprop(lr=0.1).rho == 0.9


@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD(lr=0), ValueError, "lr must be a finite number > 0"),
    (lambda: SGD(lr="0.1"), TypeError, "lr must be a number"),
    (lambda: SGD(lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda: Momentum(lr=0.1, momentum=1.0), ValueError, "momentum must lie in \\[0, 1\\)"),
    (lambda: Adam(lr=0.1, beta2=1.5), ValueError, "beta2"),
    (lambda: SGD(lr=0.1, schedule="step"), TypeError, "schedule must be callable"),
    (lambda: StepDecay(step_size=0), ValueError, "step_size"),
    (lambda: ExponentialDecay(gamma=0), ValueError, "gamma"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_step_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="equally long"):
        SGD(lr=0.1).step(separate_arrays(), [np.ones((2, 2))])
    with pytest.raises(ValueError, match="grads\\[1\\] has shape"):
        SGD(lr=0.1).step(separate_arrays(), [np.ones((2, 2)), np.ones(3)])
