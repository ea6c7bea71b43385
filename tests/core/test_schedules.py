"""Per-step schedules (cosine with warm-up, one-cycle) and clipping: values worked out by hand,
the optimizer protocol (``begin_training``, ``set_epoch``), their refusals, and their way
through ``fit`` (whose fast paths must give way to them). torch comparisons:
test_optimizers_torch.py."""

import math

import numpy as np
import pytest

from nnexp.core import (
    MLP, OPTIMIZERS, SCHEDULES, SGD, Adam, AdamW, CosineDecay, ExponentialDecay, Momentum,
    OneCycle, clip_grad_norm, fit,
)


def test_cosine_values_by_hand():
    cos = CosineDecay(min_lr=0.1, warmup_steps=3)
    assert [cos(1.0, k, 13) for k in range(3)] == pytest.approx([0.25, 0.5, 0.75])
    assert cos(1.0, 3, 13) == pytest.approx(1.0)                 # the top, once, at k = W
    assert cos(1.0, 8, 13) == pytest.approx(0.1 + 0.9 * 0.5)     # halfway through the cosine
    assert cos(1.0, 12, 13) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 0.9)) / 2)
    assert cos(1.0, 13, 13) == cos(1.0, 99, 13) == pytest.approx(0.1)   # past the end: min_lr
    plain = CosineDecay()
    assert plain(0.2, 0, 4) == 0.2 and plain(0.2, 2, 4) == pytest.approx(0.1)


def test_one_cycle_values_by_hand():
    one = OneCycle(pct_start=0.25, div_factor=10.0, final_div_factor=100.0)   # T = 9: peak at 1.25
    assert one(1.0, 0, 9) == pytest.approx(0.1)                  # lr / div_factor
    assert one(1.0, 1, 9) == pytest.approx(1.0 - 0.9 * (1 + math.cos(math.pi * 0.8)) / 2)
    assert max(one(1.0, k, 9) for k in range(9)) < 1.0           # the peak falls between steps
    assert one(1.0, 8, 9) == pytest.approx(1e-3)                 # lr / div / final_div
    assert one(1.0, 20, 9) == pytest.approx(1e-3)
    assert OneCycle(pct_start=0.1)(1.0, 0, 10) == pytest.approx(1.0)   # peak = 0: starts at the top


@pytest.mark.parametrize("make, message", [
    (lambda: CosineDecay(min_lr=-1), "min_lr must be a finite number >= 0"),
    (lambda: CosineDecay(warmup_steps=-1), "warmup_steps must be an integer >= 0"),
    (lambda: CosineDecay(warmup_steps=2.5), "warmup_steps must be an integer"),
    (lambda: OneCycle(pct_start=0.0), r"pct_start must lie in \(0, 1\)"),
    (lambda: OneCycle(pct_start=1.0), r"pct_start must lie in \(0, 1\)"),
    (lambda: OneCycle(div_factor=0), "div_factor must be a finite number > 0"),
    (lambda: OneCycle(final_div_factor=-1), "final_div_factor must be a finite number > 0"),
    (lambda: SGD(lr=0.1, clip_norm=0), "clip_norm must be a finite number > 0"),
    (lambda: AdamW(weight_decay=-0.1), "weight_decay must be a finite number >= 0"),
])
def test_bad_values_are_refused_naming_the_argument(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_every_optimizer_takes_clip_norm_and_every_schedule_says_when_it_runs():
    for cls in OPTIMIZERS.values():
        assert cls(lr=0.1, clip_norm=2.5).clip_norm == 2.5
        assert cls(lr=0.1).clip_norm is None
    assert {name for name, cls in SCHEDULES.items() if cls.per_step} == {"cosine", "one_cycle"}
    adamw = AdamW()
    assert (adamw.lr, adamw.beta1, adamw.beta2, adamw.eps, adamw.weight_decay) == \
        (1e-3, 0.9, 0.999, 1e-8, 0.01)


def test_per_step_rate_is_set_by_the_steps_not_by_set_epoch():
    opt = SGD(lr=1.0, schedule=CosineDecay(warmup_steps=1))
    params, grads = [np.zeros(2)], [np.ones(2)]
    with pytest.raises(RuntimeError, match="begin_training"):
        opt.step(params, grads)
    assert opt.t == 0 and params[0].tolist() == [0.0, 0.0]      # nothing happened
    opt.begin_training(5)
    assert opt.lr == 0.5                                         # the first step's rate
    opt.step(params, grads)
    opt.set_epoch(3)                                             # no effect on a per-step rate
    assert opt.lr == 0.5
    opt.step(params, grads)
    assert opt.lr == 1.0 and params[0].tolist() == [-1.5, -1.5]
    epoch_opt = SGD(lr=1.0, schedule=ExponentialDecay(gamma=0.5))
    epoch_opt.begin_training(5)
    epoch_opt.set_epoch(2)
    assert epoch_opt.lr == 0.25                                  # epoch schedules as before


def test_clip_grad_norm_by_hand_and_in_place():
    g = [np.array([3.0, 0.0]), np.array([[4.0]])]                # joint norm 5
    assert clip_grad_norm(g, 1.0) == 5.0
    np.testing.assert_allclose(g[0], [3.0 / (5 + 1e-6), 0.0], rtol=1e-15)
    np.testing.assert_allclose(g[1], [[4.0 / (5 + 1e-6)]], rtol=1e-15)
    small = [np.array([0.3, 0.4])]
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    assert small[0].tolist() == [0.3, 0.4]                       # within the bound: untouched


def test_clipped_sgd_step_by_hand():
    w = [np.array([1.0, 1.0]), np.array([[1.0]])]
    SGD(lr=0.1, clip_norm=1.0).step(w, [np.array([30.0, 0.0]), np.array([[40.0]])])
    c = 1.0 / (50 + 1e-6)
    np.testing.assert_allclose(w[0], [1 - 0.1 * 30 * c, 1.0], rtol=1e-14)
    np.testing.assert_allclose(w[1], [[1 - 0.1 * 40 * c]], rtol=1e-14)


def test_adamw_first_step_by_hand():
    w = [np.array([[2.0]]), np.array([2.0])]                    # a weight and a bias
    AdamW(lr=0.1, weight_decay=0.5).step(w, [np.array([[0.5]]), np.array([0.5])])
    adam_step = 0.1 * 0.5 / (0.5 + 1e-8)                         # m_hat = g, v_hat = g^2
    assert w[0][0, 0] == pytest.approx(2.0 - 0.1 * 0.5 * 2.0 - adam_step, rel=1e-14)
    assert w[1][0] == pytest.approx(2.0 - adam_step, rel=1e-14)  # no decay on the bias


# ---------------------------------------------------------------------------------- with fit
def problem(n=40, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)) * 3.0                            # large inputs: clipping bites
    return X, np.eye(3)[rng.integers(0, 3, n)]


def manual_fit(net, opt, X, Y, epochs, batch_size):
    """fit's order of batches through the public step; returns the rate after each epoch."""
    rng, n, rates = np.random.default_rng(0), X.shape[0], []
    opt.begin_training(epochs * math.ceil(n / batch_size))
    for epoch in range(epochs):
        opt.set_epoch(epoch)
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            opt.step(net.params, net.loss_and_grads(X[rows], Y[rows])[1])
        rates.append(opt.lr)
    return rates


@pytest.mark.parametrize("make", [
    lambda: SGD(lr=0.5, clip_norm=0.5),                          # fit would fold lr otherwise
    lambda: SGD(lr=0.5, schedule=CosineDecay(warmup_steps=4, min_lr=0.01)),
    lambda: Adam(lr=0.05, clip_norm=0.5),                        # ... or use its scaled mode
    lambda: Adam(lr=0.05, schedule=OneCycle()),
    lambda: AdamW(lr=0.05, weight_decay=0.1, clip_norm=1.0, schedule=CosineDecay(warmup_steps=3)),
    lambda: Momentum(lr=0.1, clip_norm=0.5, schedule=OneCycle(pct_start=0.5)),
], ids=["sgd-clip", "sgd-cosine", "adam-clip", "adam-one_cycle", "adamw-all", "momentum"])
def test_fit_gives_the_public_steps_numbers_with_clipping_and_per_step_schedules(make):
    X, Y = problem()
    a, b = MLP([6, 5, 3], seed=5), MLP([6, 5, 3], seed=5)
    opt_a, opt_b = make(), make()
    history = fit(a, opt_a, (X, Y), epochs=4, batch_size=3)     # 14 steps an epoch
    rates = manual_fit(b, opt_b, X, Y, 4, 3)
    np.testing.assert_allclose(a.flat, b.flat, rtol=1e-9, atol=1e-12)
    assert history.lr == pytest.approx(rates, rel=1e-12) and opt_a.t == 56
    if opt_a.per_step:      # the logged rate is the epoch's last step's, read off the schedule
        expected = [opt_a.schedule(opt_a.base_lr, 14 * e - 1, 56) for e in (1, 2, 3, 4)]
        assert history.lr == pytest.approx(expected, rel=1e-12)
        assert len(set(history.lr)) == 4


def test_clipping_changes_what_fit_does():
    X, Y = problem()
    runs = []
    for clip in (None, 0.1):
        net = MLP([6, 5, 3], seed=5)
        fit(net, SGD(lr=0.5, clip_norm=clip), (X, Y), epochs=2, batch_size=3)
        runs.append(net.flat.copy())
    assert np.abs(runs[0] - runs[1]).max() > 1e-3
