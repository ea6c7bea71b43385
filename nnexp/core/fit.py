"""The training loop: mini-batch gradient descent with validation, early stopping and a
divergence guard, read top to bottom in stages: set up, then per epoch (inputs, batches,
metrics, bookkeeping), then which weights the network keeps.

``fit`` talks to the network and the optimizer through public protocols only: the network's
``workspace``/``train_step``/``internal_targets`` (gathered by :mod:`nnexp.core.batches`), and
the optimizer's stepper (:mod:`nnexp.core.steppers`), which decides per optimizer whether a
fused update applies. There are no type checks here.

Cost per step, counted for 784 -> 6 x 50 sigmoid -> 10 softmax at batch size 10 with SGD: 70
NumPy calls, none per sample and none allocating a batch-sized array:

- gather the batch: 3 (2 for fits of 3+ epochs, which gather from a once-augmented ``[X, 1]``);
- forward: 7 ``dot`` (biases folded in) + 6 x 3 for the sigmoid (computed from ``z/2``, see
  :mod:`nnexp.core.network`) + 7 for softmax and loss (8 when the max shift is needed) = 32;
- delta ``(P - Y) lr/n``: 2; backward: 7 ``[dW; db]`` + 6 ``delta W^T`` + 6 x 3 for f' = 31;
- predicted labels for the train accuracy: 1; plain SGD: 1 (lr is folded into the delta);
  Adam: 9.

(Counted with ``bench/numpy_calls.py``.) The fused paths give the same numbers as
``loss_and_grads`` + ``opt.step`` up to rounding (tests/core/test_fast_paths.py). Without
``on_step``, ``net.grads`` may hold scaled values after ``fit`` (SGD: ``lr g``; Adam: its
scratch); with it they hold true gradients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from nnexp.core._checks import count
from nnexp.core.batches import BatchFeeder
from nnexp.core.early_stopping import EarlyStopping
from nnexp.core.history import History
from nnexp.core.metrics import labeler, to_labels

_PROGRESS_REPORTS = 20   # progress callbacks per epoch, about
_AUGMENT_EPOCHS = 3      # fits of this many epochs or more copy the inputs as [X, 1] once


def _dataset(net, data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` as arrays of the network's dtype (cast once, here)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X, Y), got {type(data).__name__}")
    try:
        X, Y = net.as_inputs(*data)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    if X.shape[0] == 0:
        raise ValueError(f"{name}: the data set is empty")
    return X, Y


def _quiet() -> np.errstate:
    """Silence overflow/invalid/divide warnings: a diverging run is detected and reported by
    the non-finite loss check instead. (A new object each time: errstates are single-use.)"""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _split(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    """Views of ``flat`` shaped like the arrays of ``like`` (which tile a buffer in order)."""
    out, offset = [], 0
    for a in like:
        out.append(flat[offset:offset + a.size].reshape(a.shape))
        offset += a.size
    return out


def _tracker(early_stopping, val) -> EarlyStopping:
    if early_stopping is not None:
        if early_stopping.monitor.startswith("val_") and val is None:
            raise ValueError(f"early stopping monitors {early_stopping.monitor!r} but no "
                             f"validation set was given (pass val=(X, Y))")
        tracker = early_stopping
    else:
        tracker = EarlyStopping("val_loss" if val is not None else "train_loss", patience=None)
    tracker.reset()
    return tracker


class _Best:
    """The weights (and batch-norm running statistics) of the best epoch so far."""

    def __init__(self, net):
        self.net, self.flat = net, net.flat.copy()   # the initial weights until an epoch ends
        self.buffers = {name: a.copy() for name, a in net.buffers().items()}

    def save(self) -> None:
        np.copyto(self.flat, self.net.flat)
        for name, a in self.net.buffers().items():
            np.copyto(self.buffers[name], a)

    def restore(self) -> None:
        np.copyto(self.net.flat, self.flat)
        for name, a in self.net.buffers().items():
            np.copyto(a, self.buffers[name])


class _Epoch:
    """What an epoch's batches need, fixed for the whole fit.

    ``stepper`` updates the network on the steps nobody watches; ``observer`` (the optimizer's
    observable stepper, or None without ``on_step``) on the steps ``on_step`` sees: every
    ``every``-th batch of the epoch, starting with the first. With ``every == 1`` the two are
    the same stepper."""

    def __init__(self, net, stepper, observer, every, feeder, segments, n, dropout_rng, on_step,
                 progress):
        self.net, self.stepper, self.observer, self.every = net, stepper, observer, every
        self.feeder, self.segments = feeder, segments
        self.n_batches = sum(len(s) for s in segments)
        self.predicted = np.empty(n, np.intp)
        self.label = labeler(net.sizes[-1])
        self.dropout_rng, self.on_step, self.progress = dropout_rng, on_step, progress
        self.after_update = getattr(on_step, "after_update", None)

    def train(self, epoch: int, order: np.ndarray) -> tuple[float, float | None]:
        """One pass over the batches in ``order``: ``(sum of batch losses x sizes, the first
        non-finite batch loss or None)``. No user code runs between ``begin`` and ``end`` of
        the stepper: an observed step ends it first and begins it again after."""
        train_step, gather, isfinite = self.net.train_step, self.feeder.gather, math.isfinite
        stepper, label, predicted = self.stepper, self.label, self.predicted
        scale, step = stepper.scale, stepper.step
        rng, on_step, observer = self.dropout_rng, self.on_step, self.observer
        every, after_update, shared = self.every, self.after_update, observer is stepper
        loss_sum, done, index = 0.0, 0, 0
        watched = 0 if on_step is not None else -1   # the next observed batch (none: no hook)
        for segment in self.segments:
            stepper.begin()
            try:
                with _quiet():
                    for start, stop in segment:
                        ws = gather(order[start:stop])
                        observed = index == watched
                        index += 1
                        if observed:
                            watched += every
                            if not shared:
                                stepper.end()      # the usual state for the hook and the step
                        n = stop - start
                        loss = train_step(ws, observer.scale(n) if observed else scale(n), rng)
                        if not isfinite(loss):
                            return loss_sum, loss
                        loss_sum += loss * n
                        label(ws.P, predicted[start:stop])
                        if not observed:
                            step()
                            continue
                        on_step(ws)                # true gradients, before the update
                        observer.step()
                        if after_update is not None:
                            after_update()
                        if not shared:
                            stepper.begin()
            finally:
                stepper.end()                      # before any user code runs
            done += len(segment)
            if self.progress is not None:
                self.progress(epoch, done, self.n_batches, loss_sum / segment[-1][1])
        return loss_sum, None


def _every(on_step) -> int:
    """The observation period of ``on_step``: its ``every`` attribute, or 1."""
    every = getattr(on_step, "every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"on_step.every must be a whole number >= 1, got {every!r}")
    return every


def _metrics(net, epoch_run: _Epoch, result, true_labels, order, val, n) -> tuple[dict, bool]:
    """The epoch's metrics (train from the training passes, val in one chunked pass) and
    whether training diverged."""
    loss_sum, bad_loss = result
    nan = math.nan
    if bad_loss is not None:
        metrics = {"train_loss": bad_loss, "train_acc": nan}
        if val is not None:
            metrics["val_loss"] = metrics["val_acc"] = nan
        return metrics, True
    metrics = {"train_loss": loss_sum / n,
               "train_acc": np.count_nonzero(epoch_run.predicted == true_labels[order]) / n}
    finite_weights = bool(np.isfinite(net.flat).all())
    if val is not None:
        with _quiet():
            metrics["val_loss"], metrics["val_acc"] = (
                net.evaluate(*val) if finite_weights else (nan, nan))
    return metrics, not finite_weights or not math.isfinite(metrics.get("val_loss", 0.0))


def fit(net, opt, train, val=None, epochs: int = 10, batch_size: int | None = 32,
        early_stopping: EarlyStopping | None = None, seed: int = 0,
        on_epoch: Callable[[int, dict], None] | None = None,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_step: Callable[[object], None] | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None) -> History:
    """Train ``net`` with ``opt`` on ``train = (X, Y)`` in training mode; returns a
    :class:`History`.

    Before the first epoch: ``opt.begin_training(epochs * batches_per_epoch)`` if the optimizer
    has it. Each epoch (numbered from 1): ``opt.set_epoch(epoch - 1)``; with ``augment``, the
    epoch's inputs ``augment(X, rng)`` (same shape; ``rng`` a generator derived from ``seed``,
    the original ``X`` each time); one permutation of the training set from
    ``np.random.default_rng(seed)``; mini-batches of ``batch_size`` rows in that order (the last
    one may be shorter; ``None`` or ``>= n`` is full batch); for each, forward, loss, backward
    and the optimizer's update. Dropout masks come from another generator derived from
    ``seed``. Then the validation set is evaluated (evaluation mode), the epoch is recorded
    and ``on_epoch(epoch, metrics)`` is called with ``train_loss, train_acc, [val_loss,
    val_acc,] lr, epoch_seconds``. Exceptions raised by the callbacks propagate.

    Train metrics are the sample-weighted means over the epoch's batches of what the training
    forward passes computed, before each step: no extra pass over the training set.

    Stopping: ``early_stopping`` (see :class:`EarlyStopping`; ``stop_reason="early_stopped"``,
    with ``restore_best`` the best epoch's weights are copied back); a non-finite batch loss
    stops at once (the epoch is recorded with that ``train_loss`` and nan for the rest,
    ``on_epoch`` is called, the best epoch's weights, or the initial ones, are restored,
    ``stop_reason="diverged"``), and so do non-finite weights or validation loss at the end of
    an epoch. Floating-point warnings are silenced while batches run. Batch-norm running
    statistics are restored with the weights.

    ``on_step(ws)``, if given, is called for every batch after its gradients and before the
    update: ``net.grads`` then hold the true gradients of the batch's mean loss and ``ws``
    (a :class:`~nnexp.core.plan.Workspace`) its activations (``ws.activations()``); those steps
    run the optimizer's observable stepper (``opt.stepper(net, observe=True)``). A hook with an
    attribute ``every = k`` is called on every k-th batch of each epoch only, starting with the
    first, and its ``after_update()``, if it has one, right after those batches' updates; the
    other batches run the optimizer's fused stepper, as without a hook (so a sampled hook costs
    little, and the numbers equal those without it up to rounding).
    ``progress(epoch, batches_done, n_batches, running_loss)`` is called about 20 times per
    epoch. The same seed gives a bit-identical history (but for ``epoch_seconds``).
    """
    run = _Fit(net, opt, train, val, epochs, batch_size, early_stopping, seed, on_step,
               progress, augment)
    try:
        for epoch in range(1, run.epochs + 1):
            if run.epoch(epoch, on_epoch):
                break
    finally:                      # the optimizer state in its usual form
        run.stepper.end()
    return run.finish()


class _Fit:
    """One call of :func:`fit`: its set-up, one epoch at a time, and the weights it keeps."""

    def __init__(self, net, opt, train, val, epochs, batch_size, early_stopping, seed, on_step,
                 progress, augment):
        # -- data and batches ------------------------------------------------------------------
        self.X, Y = _dataset(net, train, "train")
        self.val = _dataset(net, val, "val") if val is not None else None
        self.epochs = count(epochs, "epochs", minimum=0)
        n = self.n = self.X.shape[0]
        bs = n if batch_size is None else min(count(batch_size, "batch_size"), n)
        self.early_stopping, self.tracker = early_stopping, _tracker(early_stopping, self.val)
        bounds = [(start, min(n, start + bs)) for start in range(0, n, bs)]
        every = max(1, math.ceil(len(bounds) / _PROGRESS_REPORTS)) if progress else len(bounds)
        segments = [bounds[i:i + every] for i in range(0, len(bounds), every)]
        self.feeder = BatchFeeder(net, self.X, Y, {stop - start for start, stop in bounds},
                                  copy=self.epochs >= _AUGMENT_EPOCHS and augment is None)
        # -- the optimizer's stepper and the generators (all from seed) -------------------------
        self.net, self.opt, self.augment = net, opt, augment
        observer = opt.stepper(net, observe=True) if on_step is not None else None
        every = _every(on_step) if on_step is not None else None
        self.stepper = observer if every == 1 else opt.stepper(net)
        self.order_rng = np.random.default_rng(seed)
        dropout_seed, augment_seed = np.random.SeedSequence(seed).spawn(2)
        self.augment_rng = np.random.default_rng(augment_seed)
        self.batches = _Epoch(net, self.stepper, observer, every, self.feeder, segments, n,
                              np.random.default_rng(dropout_seed), on_step, progress)
        self.true_labels, self.best = to_labels(Y), _Best(net)
        self.history = History(monitor=self.tracker.monitor)
        if hasattr(opt, "begin_training"):
            opt.begin_training(self.epochs * len(bounds))

    def epoch(self, epoch: int, on_epoch) -> bool:
        """Train, measure and record one epoch; True when training stops here."""
        # -- the epoch's inputs and order, the batches -------------------------------------------
        started = time.perf_counter()
        self.opt.set_epoch(epoch - 1)
        if self.augment is not None:
            self.feeder.set_inputs(_augmented(self.net, self.augment, self.X, self.augment_rng))
        order = self.order_rng.permutation(self.n)
        result = self.batches.train(epoch, order)
        # -- metrics, records, callbacks, stopping ------------------------------------------------
        metrics, diverged = _metrics(self.net, self.batches, result, self.true_labels, order,
                                     self.val, self.n)
        metrics["lr"] = self.opt.lr
        metrics["epoch_seconds"] = time.perf_counter() - started
        history = self.history
        history.append(metrics)
        if not diverged and self.tracker.update(epoch, metrics[self.tracker.monitor]):
            self.best.save()
            history.best_epoch = epoch
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))
        if diverged:
            history.stop_reason = "diverged"
        elif self.early_stopping is not None and self.tracker.should_stop:
            history.stop_reason = "early_stopped"
        return history.stop_reason != "completed"

    def finish(self) -> History:
        """Which weights the network keeps: the best epoch's after divergence, or after early
        stopping with ``restore_best``; the last ones otherwise."""
        history = self.history
        if history.stop_reason == "diverged" or (
                history.stop_reason == "early_stopped" and self.early_stopping.restore_best):
            self.best.restore()
        if history.best_epoch is not None:
            history.best_params = _split(self.best.flat, self.net.params)
            history.best_buffers = self.best.buffers
        return history


def _augmented(net, augment, X: np.ndarray, rng) -> np.ndarray:
    """``augment(X, rng)`` checked: an array of X's shape, in the network's dtype."""
    out = net.as_inputs(augment(X, rng))
    if out.shape != X.shape:
        raise ValueError(f"augment must return an array of shape {X.shape}, got {out.shape}")
    return out


def evaluate(net, X, Y) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``net`` on ``(X, Y)``: :meth:`MLP.evaluate`."""
    return net.evaluate(X, Y)
