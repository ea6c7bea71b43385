"""The optimizer's stepper protocol as fit uses it: which stepper is handed out, true
gradients at on_step, nothing scaled left behind, begin_training, and fit's augment hook."""

import numpy as np
import pytest

from nnexp.core import MLP, SGD, Adam, Momentum, fit
from nnexp.core.schedules import Constant
from nnexp.core.steppers import LrFoldStepper, PlainStepper, ScaledAdamStepper


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), np.eye(3)[rng.integers(0, 3, n)]


class PerStep(Constant):
    per_step = True


class MySGD(SGD):
    pass


@pytest.mark.parametrize("make, observe, expected", [
    (lambda: SGD(lr=0.1), False, LrFoldStepper),
    (lambda: SGD(lr=0.1), True, LrFoldStepper),
    (lambda: Adam(lr=0.01), False, ScaledAdamStepper),
    (lambda: Adam(lr=0.01), True, PlainStepper),            # its scratch is the gradient buffer
    (lambda: Adam(lr=0.01, beta1=0.3), False, PlainStepper),
    (lambda: SGD(lr=0.1, weight_decay=0.01), False, PlainStepper),
    (lambda: Adam(lr=0.01, weight_decay=0.01), False, PlainStepper),
    (lambda: MySGD(lr=0.1), False, PlainStepper),           # exactly the class, not a subclass
    (lambda: SGD(lr=0.1, schedule=PerStep()), False, PlainStepper),
    (lambda: Adam(lr=0.1, schedule=PerStep()), False, PlainStepper),
    (lambda: Momentum(lr=0.1), False, PlainStepper),
])
def test_fused_steppers_are_guarded_in_the_optimizer(make, observe, expected):
    stepper = make().stepper(MLP([5, 4, 3]), observe=observe)
    assert type(stepper) is expected


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1), lambda: Adam(lr=0.01)])
def test_clip_norm_makes_the_fused_steppers_step_aside(make):
    opt = make()
    opt.clip_norm = 1.0                  # (the attribute another change adds to every optimizer)
    assert type(opt.stepper(MLP([5, 4, 3]))) is PlainStepper


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.3), lambda: Adam(lr=0.02), lambda: Momentum(lr=0.1)])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_on_step_sees_the_true_gradients_and_they_stay_true(make, activation):
    X, Y = data()
    net = MLP([5, 6, 4, 3], activation=activation, seed=1)
    twin = MLP([5, 6, 4, 3], activation=activation, seed=1)
    seen = []

    def on_step(ws):
        twin.set_params(net.params)                     # the weights before the update
        rows = ws.Xin / net.input_scale
        _, reference = twin.loss_and_grads(rows, ws.Y.T)
        for g, r in zip(net.grads, reference):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)
        seen.append([g.copy() for g in net.grads])

    plain_net, plain_opt, opt = MLP([5, 6, 4, 3], activation=activation, seed=1), make(), make()
    history = fit(net, opt, (X, Y), epochs=4, batch_size=7, on_step=on_step)
    reference = fit(plain_net, plain_opt, (X, Y), epochs=4, batch_size=7)
    assert len(seen) == 4 * 6
    for g, last in zip(net.grads, seen[-1]):            # after fit: the last batch's, unscaled
        np.testing.assert_array_equal(g, last)
    np.testing.assert_allclose(history.train_loss, reference.train_loss, rtol=1e-10)
    np.testing.assert_allclose(net.flat, plain_net.flat, rtol=1e-9, atol=1e-12)


class SampledHook:
    """An on_step hook that asks fit for every 3rd step: true gradients when called, the
    update visible at after_update, and the step indices it saw."""

    every = 3

    def __init__(self, net, opt, activation):
        self.net, self.opt = net, opt
        self.twin = MLP([5, 6, 4, 3], activation=activation, seed=1)
        self.calls, self.updates, self.before = [], 0, None

    def __call__(self, ws):
        net = self.net
        self.twin.set_params(net.params)
        _, reference = self.twin.loss_and_grads(ws.Xin / net.input_scale, ws.Y.T)
        for g, r in zip(net.grads, reference):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)
        self.calls.append(self.opt.t)                 # steps taken before this one
        self.before = net.flat.copy()

    def after_update(self):
        assert not np.array_equal(self.net.flat, self.before)     # the step has been taken
        self.updates += 1


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.3), lambda: Adam(lr=0.02), lambda: Momentum(lr=0.1)])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_a_sampled_hook_sees_every_kth_step_of_each_epoch_and_fused_steps_run_between(
        make, activation):
    """7 batches per epoch, every = 3: steps 0, 3, 6 of each epoch are observed (true
    gradients, then after_update once the update is done); the others run the fused stepper,
    and the result equals the unobserved fit up to rounding."""
    X, Y = data(n=45)
    net, opt = MLP([5, 6, 4, 3], activation=activation, seed=1), make()
    hook = SampledHook(net, opt, activation)
    history = fit(net, opt, (X, Y), epochs=3, batch_size=7, on_step=hook)
    assert hook.calls == [7 * epoch + i for epoch in range(3) for i in (0, 3, 6)]
    assert hook.updates == 9
    plain = MLP([5, 6, 4, 3], activation=activation, seed=1)
    reference = fit(plain, make(), (X, Y), epochs=3, batch_size=7)
    np.testing.assert_allclose(history.train_loss, reference.train_loss, rtol=1e-10)
    np.testing.assert_allclose(net.flat, plain.flat, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("every", [0, 1.5, True])
def test_a_hook_period_that_is_not_a_whole_number_is_refused(every):
    hook = lambda ws: None                                  # noqa: E731
    hook.every = every
    with pytest.raises(ValueError, match="on_step.every"):
        fit(MLP([5, 4, 3]), SGD(lr=0.1), data(), epochs=1, on_step=hook)


def test_begin_training_is_called_once_with_the_total_number_of_steps():
    calls = []

    class Counting(SGD):
        def begin_training(self, total_steps):
            calls.append((total_steps, self.t))

    X, Y = data(n=40)
    fit(MLP([5, 4, 3]), Counting(lr=0.1), (X, Y), epochs=3, batch_size=7)
    assert calls == [(3 * 6, 0)]


def test_augment_is_applied_once_per_epoch_to_the_original_inputs_with_a_seeded_generator():
    X, Y = data(n=30)
    calls = []

    def augment(inputs, rng):
        calls.append(inputs.copy())
        return inputs + rng.normal(0, 0.1, inputs.shape)

    runs = []
    for seed in (0, 0, 1):
        calls.clear()
        net = MLP([5, 4, 3], seed=0)
        h = fit(net, SGD(lr=0.1), (X, Y), epochs=4, batch_size=8, seed=seed, augment=augment)
        assert len(calls) == 4 and all(np.array_equal(c, X) for c in calls)
        runs.append((h.train_loss, net.flat.copy()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]
    plain = MLP([5, 4, 3], seed=0)
    fit(plain, SGD(lr=0.1), (X, Y), epochs=4, batch_size=8, augment=lambda x, rng: x)
    unaugmented = MLP([5, 4, 3], seed=0)
    fit(unaugmented, SGD(lr=0.1), (X, Y), epochs=4, batch_size=8)
    np.testing.assert_allclose(plain.flat, unaugmented.flat, rtol=1e-12)
    with pytest.raises(ValueError, match="augment must return an array of shape"):
        fit(MLP([5, 4, 3]), SGD(lr=0.1), (X, Y), epochs=1, augment=lambda x, rng: x[:-1])


def test_fit_trains_batch_norm_and_restores_its_best_running_statistics():
    X, Y = data(n=60)
    net = MLP([5, 8, 3], batch_norm=True, dropout=0.2, seed=0)
    saved = {}

    def on_epoch(epoch, metrics):
        saved[epoch] = (net.flat.copy(), {k: v.copy() for k, v in net.buffers().items()})
        if epoch == 3:
            net.flat[0] = np.nan              # epoch 4 diverges: the best epoch comes back

    history = fit(net, SGD(lr=0.1), (X, Y), val=(X, Y), epochs=6, batch_size=10,
                  on_epoch=on_epoch)
    assert history.stop_reason == "diverged" and history.best_epoch in (1, 2, 3)
    flat, buffers = saved[history.best_epoch]
    np.testing.assert_array_equal(net.flat, flat)
    for name, a in net.buffers().items():
        assert not np.allclose(a, 0 if "mean" in name else 1)   # trained by the passes
        np.testing.assert_array_equal(a, buffers[name])
