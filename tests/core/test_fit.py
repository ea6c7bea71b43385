"""The training loop: learning, history, early stopping, divergence, callbacks, determinism."""

import math

import numpy as np
import pytest

from nnexp.core import MLP, SGD, Adam, EarlyStopping, History, Momentum, fit

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def spiral(N=100, K=3, seed=0):
    """The CS231n spiral: K arms of N points each."""
    rng = np.random.default_rng(seed)
    X, y = np.zeros((N * K, 2)), np.zeros(N * K, dtype=int)
    for j in range(K):
        rows = slice(N * j, N * (j + 1))
        r = np.linspace(0.0, 1.0, N)
        t = np.linspace(j * 4, (j + 1) * 4, N) + rng.standard_normal(N) * 0.2
        X[rows] = np.c_[r * np.sin(t), r * np.cos(t)]
        y[rows] = j
    return X, np.eye(K)[y]


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 4)) + 1.5 * y[:, None]
    return X, np.eye(2)[y]


def test_xor_is_learned_by_plain_gradient_descent():
    net = MLP([2, 2, 2, 1], activation="sigmoid", output="sigmoid", loss="mse",
              init="xavier_uniform", seed=0)
    history = fit(net, SGD(lr=2.0), train=(XOR_X, XOR_Y), epochs=3000, batch_size=None)
    np.testing.assert_array_equal(net.predict(XOR_X), [0, 1, 1, 0])
    assert history.train_acc[-1] == 1.0 and history.stop_reason == "completed"


def test_two_layer_relu_softmax_fits_the_spiral():
    X, Y = spiral()
    net = MLP([2, 100, 3], activation="relu", output="softmax", loss="cross_entropy", init="he", seed=0)
    history = fit(net, Adam(lr=0.01), train=(X, Y), epochs=300, batch_size=None, seed=0)
    assert net.evaluate(X, Y)[1] >= 0.95
    assert history.train_acc[-1] >= 0.95


def test_history_records_every_epoch():
    X, Y = blobs()
    seen = []
    history = fit(MLP([4, 8, 2], seed=0), Momentum(lr=0.05), train=(X[:100], Y[:100]),
                  val=(X[100:], Y[100:]), epochs=4, batch_size=16,
                  on_epoch=lambda epoch, metrics: seen.append((epoch, metrics)))
    assert isinstance(history, History) and history.epochs_run == 4
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert set(seen[0][1]) == {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"}
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"):
        assert getattr(history, name) == [m[name] for _, m in seen]
    rows = history.rows()
    assert rows[2]["epoch"] == 3 and rows[2]["val_acc"] == history.val_acc[2]
    assert history.monitor == "val_loss"
    assert history.best_epoch == 1 + int(np.argmin(history.val_loss))
    assert history.best("val_loss") == min(history.val_loss)
    assert history.stop_reason == "completed"


def test_without_validation_the_val_lists_stay_empty_and_train_loss_picks_the_best():
    X, Y = blobs()
    seen = []
    history = fit(MLP([4, 8, 2], seed=0), SGD(lr=0.1), train=(X, Y), epochs=3,
                  on_epoch=lambda epoch, metrics: seen.append(metrics))
    assert history.val_loss == [] and history.val_acc == [] and "val_loss" not in seen[0]
    assert history.monitor == "train_loss"
    assert history.best_epoch == 1 + int(np.argmin(history.train_loss))
    assert set(history.rows()[0]) == {"epoch", "train_loss", "train_acc", "lr", "epoch_seconds"}


def test_train_metrics_come_from_the_training_forward_passes():
    X, Y = blobs()
    net = MLP([4, 8, 2], seed=0)
    before = net.evaluate(X, Y)
    # A vanishing learning rate: the batches see the initial weights, so the sample-weighted
    # mean over batches (sizes 32, 32, 32, 24) must equal one pass over the whole set.
    history = fit(net, SGD(lr=1e-300), train=(X, Y), epochs=1, batch_size=32)
    assert history.train_loss[0] == pytest.approx(before[0], rel=1e-12)
    assert history.train_acc[0] == pytest.approx(before[1])


def test_batch_size_none_or_larger_than_n_is_full_batch():
    X, Y = blobs()
    calls = []
    fit(MLP([4, 3, 2], seed=0), SGD(lr=0.1), train=(X, Y), epochs=1, batch_size=None,
        progress=lambda *args: calls.append(args))
    assert calls == [(1, 1, 1, pytest.approx(calls[0][3]))]
    a, b = MLP([4, 3, 2], seed=0), MLP([4, 3, 2], seed=0)
    ha = fit(a, SGD(lr=0.1), train=(X, Y), epochs=3, batch_size=None)
    hb = fit(b, SGD(lr=0.1), train=(X, Y), epochs=3, batch_size=10_000)
    np.testing.assert_array_equal(a.flat, b.flat)
    assert ha.train_loss == hb.train_loss


def test_progress_is_reported_about_twenty_times_per_epoch():
    X, Y = blobs(n=400)
    calls = []
    fit(MLP([4, 3, 2], seed=0), SGD(lr=0.1), train=(X, Y), epochs=2, batch_size=4,
        progress=lambda *args: calls.append(args))
    first = [c for c in calls if c[0] == 1]
    assert 15 <= len(first) <= 21
    assert first[-1][1:3] == (100, 100)
    assert [c[1] for c in first] == sorted(c[1] for c in first)


def test_same_seed_gives_a_bit_identical_history():
    X, Y = blobs()

    def run(seed):
        net = MLP([4, 8, 2], activation="tanh", seed=1)
        h = fit(net, Adam(lr=0.01), train=(X[:90], Y[:90]), val=(X[90:], Y[90:]),
                epochs=5, batch_size=7, seed=seed)
        return [h.train_loss, h.train_acc, h.val_loss, h.val_acc, h.lr, h.best_epoch], net.flat.copy()

    (a, wa), (b, wb), (c, _) = run(0), run(0), run(1)
    assert a == b
    np.testing.assert_array_equal(wa, wb)
    assert a[0] != c[0]                                  # the seed drives the shuffles


def test_early_stopping_restores_exactly_the_weights_of_the_best_epoch():
    X, Y = blobs(n=60, seed=3)
    Xv, Yv = blobs(n=30, seed=4)
    snapshots = {}
    net = MLP([4, 32, 32, 2], seed=0)
    # A large learning rate on a small set overfits fast: val_loss turns up within a few epochs.
    history = fit(net, Adam(lr=0.05), train=(X, Y), val=(Xv, Yv), epochs=200, batch_size=8,
                  early_stopping=EarlyStopping(monitor="val_loss", patience=3),
                  on_epoch=lambda epoch, m: snapshots.__setitem__(epoch, net.flat.copy()))
    assert history.stop_reason == "early_stopped"
    best = history.best_epoch
    assert history.epochs_run == best + 3
    assert history.val_loss[best - 1] == min(history.val_loss)
    np.testing.assert_array_equal(net.flat, snapshots[best])
    assert not np.array_equal(net.flat, snapshots[history.epochs_run])
    for kept, live, saved in zip(history.best_params, net.params, np.split(snapshots[best], np.cumsum(
            [p.size for p in net.params])[:-1])):
        np.testing.assert_array_equal(kept.ravel(), saved)
        assert not np.shares_memory(kept, live)
    np.testing.assert_array_equal(net.evaluate(Xv, Yv)[0], history.best("val_loss"))


def test_early_stopping_on_val_acc_with_min_delta_and_without_restoring():
    X, Y = blobs(n=60, seed=3)
    Xv, Yv = blobs(n=30, seed=4)
    net = MLP([4, 8, 2], seed=0)
    history = fit(net, SGD(lr=0.01), train=(X, Y), val=(Xv, Yv), epochs=50,
                  early_stopping=EarlyStopping(monitor="val_acc", patience=2, min_delta=0.5,
                                               restore_best=False))
    # no accuracy can improve by more than 0.5 after the first epoch
    assert history.best_epoch == 1 and history.epochs_run == 3
    assert history.monitor == "val_acc" and history.stop_reason == "early_stopped"


def test_early_stopping_on_val_needs_a_validation_set():
    X, Y = blobs()
    with pytest.raises(ValueError, match="monitors 'val_loss' but no validation set"):
        fit(MLP([4, 3, 2]), SGD(lr=0.1), train=(X, Y), early_stopping=EarlyStopping())
    with pytest.raises(ValueError, match="unknown early-stopping monitor 'loss'"):
        EarlyStopping(monitor="loss")


def test_divergence_stops_and_keeps_the_best_finite_weights():
    X, Y = blobs()
    Xv, Yv = blobs(seed=1)
    net = MLP([4, 16, 2], activation="relu", output="softmax", seed=0)
    snapshots, seen = {}, []

    def blow_up_after_epoch_2(epoch, metrics):
        seen.append(metrics)
        snapshots[epoch] = net.flat.copy()
        if epoch == 2:
            net.flat *= 1e300                  # the next batch's logits overflow

    history = fit(net, SGD(lr=0.1), train=(X, Y), val=(Xv, Yv), epochs=10, batch_size=8,
                  on_epoch=blow_up_after_epoch_2)
    assert history.stop_reason == "diverged" and history.epochs_run == 3 and len(seen) == 3
    assert not math.isfinite(history.train_loss[-1])
    assert all(math.isnan(history_list[-1]) for history_list in
               (history.train_acc, history.val_loss, history.val_acc))
    assert history.best_epoch in (1, 2)
    np.testing.assert_array_equal(net.flat, snapshots[history.best_epoch])
    assert np.isfinite(net.flat).all()


def test_non_finite_weights_at_the_end_of_an_epoch_count_as_divergence():
    X, Y = blobs()
    net = MLP([4, 8, 2], seed=0)
    snapshots = {}

    def poison_last_batch(epoch, done, n_batches, running_loss):
        if epoch == 2 and done == n_batches:   # after the last step, before the epoch ends
            net.params[0][0, 0] = np.inf

    history = fit(net, SGD(lr=0.1), train=(X, Y), epochs=5, batch_size=30,
                  on_epoch=lambda e, m: snapshots.__setitem__(e, net.flat.copy()),
                  progress=poison_last_batch)
    assert history.stop_reason == "diverged" and history.epochs_run == 2
    assert math.isfinite(history.train_loss[1])     # the batches themselves were fine
    assert history.best_epoch == 1
    np.testing.assert_array_equal(net.flat, snapshots[1])


def test_huge_learning_rate_diverges_without_warnings_and_with_finite_weights():
    X, Y = blobs()
    net = MLP([4, 16, 2], activation="relu", output="softmax", seed=0)
    history = fit(net, SGD(lr=1e6), train=(X * 1e3, Y), epochs=20, batch_size=8)
    assert history.stop_reason == "diverged"
    assert np.isfinite(net.flat).all()


def test_divergence_in_the_first_epoch_restores_the_initial_weights():
    X, Y = blobs()
    net = MLP([4, 16, 2], activation="relu", output="identity", loss="mse", seed=0)
    initial = net.flat.copy()
    history = fit(net, SGD(lr=1e8), train=(X * 1e6, Y), epochs=5, batch_size=4)
    assert history.stop_reason == "diverged" and history.epochs_run == 1
    assert history.best_epoch is None and history.best_params is None
    np.testing.assert_array_equal(net.flat, initial)


def test_callback_exceptions_propagate():
    X, Y = blobs()

    def interrupt(epoch, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(MLP([4, 3, 2]), SGD(lr=0.1), train=(X, Y), epochs=3, on_epoch=interrupt)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": -1}, ValueError, "epochs must be an integer >= 0"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    ({"train": (np.ones((3, 4)), np.ones((2, 2)))}, ValueError, "train: Y must have shape"),
    ({"train": np.ones((3, 4))}, TypeError, "train must be a pair"),
    ({"val": (np.ones((3, 5)), np.ones((3, 2)))}, ValueError, "val: X must have shape"),
])
def test_bad_fit_arguments(kwargs, error, message):
    X, Y = blobs()
    args = {"train": (X, Y), **kwargs}
    with pytest.raises(error, match=message):
        fit(MLP([4, 3, 2]), SGD(lr=0.1), **args)


def test_float32_training_keeps_float32_and_lr_follows_the_schedule():
    from nnexp.core import StepDecay
    X, Y = blobs()
    net = MLP([4, 6, 2], dtype="float32", seed=0)
    history = fit(net, SGD(lr=0.1, schedule=StepDecay(step_size=1, gamma=0.5)), train=(X, Y),
                  epochs=3, batch_size=16)
    assert history.lr == [0.1, 0.05, 0.025]
    assert net.flat.dtype == np.float32 and all(p.dtype == np.float32 for p in history.best_params)
