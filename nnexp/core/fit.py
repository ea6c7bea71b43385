"""The training loop: mini-batch gradient descent with validation, early stopping and a
divergence guard.

Cost per step, counted for 784 -> 6 x 50 sigmoid -> 10 softmax at batch size 10 with SGD: 70
NumPy calls, none per sample and none allocating a batch-sized array:

- gather the batch: 3 (``take`` of X rows into a contiguous buffer and its copy into the
  ``[X, 1]`` workspace, ``take`` of target columns; 2 for fits of 3+ epochs, which gather from
  a once-augmented ``[X, 1]``);
- forward: 7 ``dot`` (biases folded in) + 6 x 3 for the sigmoid (computed from ``z/2``, see
  :mod:`nnexp.core.network`) + 7 for softmax and loss (8 when the max shift is needed) = 32;
- delta ``(P - Y) lr/n``: 2; backward: 7 ``[dW; db]`` + 6 ``delta W^T`` + 6 x 3 for f' = 31;
- predicted labels for the train accuracy: 1; plain SGD: 1 (lr is folded into the delta);
  Adam: 9.

(Counted with ``bench/numpy_calls.py``.) fit takes internal routes that give the same numbers
as ``loss_and_grads`` + ``opt.step`` up to rounding (tests/core/test_fast_paths.py): plain SGD
and Adam get scaled gradients (so after fit ``net.grads`` hold scaled values; with Adam, the
step's scratch), the ReLU keeps
its mask from the forward pass, the softmax loss skips its max shift when it is safe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from nnexp.core._checks import count
from nnexp.core.early_stopping import EarlyStopping
from nnexp.core.history import History
from nnexp.core.metrics import labeler, to_labels
from nnexp.core.optimizers import SGD, Adam, Optimizer

_PROGRESS_REPORTS = 20   # progress callbacks per epoch, about
_AUGMENT_EPOCHS = 3      # fits of this many epochs or more copy the inputs as [X, 1] once


def _dataset(net, data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, Y)`` as arrays of the network's dtype (cast once, here)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{name} must be a pair (X, Y), got {type(data).__name__}")
    try:
        X, Y = net._as_inputs(*data)
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


def fit(net, opt, train, val=None, epochs: int = 10, batch_size: int | None = 32,
        early_stopping: EarlyStopping | None = None, seed: int = 0,
        on_epoch: Callable[[int, dict], None] | None = None,
        progress: Callable[[int, int, int, float], None] | None = None,
        on_step: Callable[[object], None] | None = None) -> History:
    """Train ``net`` with ``opt`` on ``train = (X, Y)``; returns a :class:`History`.

    Each epoch (numbered from 1): ``opt.set_epoch(epoch - 1)``; one permutation of the
    training set from ``np.random.default_rng(seed)``; mini-batches of ``batch_size`` rows
    gathered in that order (the last one may be shorter; ``None`` or ``>= n`` is full batch);
    for each, forward, loss, backward and ``opt.step``. Then the validation set is evaluated in
    one chunked pass, the epoch is recorded and ``on_epoch(epoch, metrics)`` is called with
    ``train_loss, train_acc, [val_loss, val_acc,] lr, epoch_seconds``. Exceptions raised by the
    callbacks (KeyboardInterrupt too) propagate.

    Train metrics are the sample-weighted means over the epoch's batches of what the training
    forward passes computed, before each step: no extra pass over the training set.

    Stopping:

    - ``early_stopping``: see :class:`EarlyStopping`; ``stop_reason="early_stopped"``, and with
      ``restore_best`` the weights of the best epoch are copied back.
    - a non-finite batch loss stops at once: the epoch is recorded with that ``train_loss`` and
      nan for the rest, ``on_epoch`` is called, the weights of the best epoch (the initial
      weights if none finished) are restored, ``stop_reason="diverged"``. Non-finite weights
      or validation loss at the end of an epoch are treated the same way. Floating-point
      warnings are silenced while batches run, since this guard reports divergence itself.

    ``on_step(ws)``, if given, is called for every batch after its gradients and before the
    update: ``net.grads`` then hold the true gradients of the batch's mean loss and ``ws``
    (the network's workspace for the batch, internal layout) its activations; with ``on_step``
    the lr-folding and Adam's scaled fast paths are off (same numbers up to rounding), without
    it nothing changes. (:func:`nnexp.core.diagnostics.recorder_for` builds such a hook.)

    ``progress(epoch, batches_done, n_batches, running_loss)``, if given, is called about 20
    times per epoch. The same seed gives a bit-identical history (but for ``epoch_seconds``).
    """
    X, Y = _dataset(net, train, "train")
    Xv, Yv = _dataset(net, val, "val") if val is not None else (None, None)
    epochs = count(epochs, "epochs", minimum=0)
    n = X.shape[0]
    if batch_size is None:
        bs = n
    else:
        bs = min(count(batch_size, "batch_size"), n)
    if early_stopping is not None:
        if early_stopping.monitor.startswith("val_") and val is None:
            raise ValueError(f"early stopping monitors {early_stopping.monitor!r} but no "
                             f"validation set was given (pass val=(X, Y))")
        tracker = early_stopping
    else:
        tracker = EarlyStopping("val_loss" if val is not None else "train_loss", patience=None)
    tracker.reset()

    # -- everything a step needs, allocated once ---------------------------------------------
    rng = np.random.default_rng(seed)
    bounds = [(start, min(n, start + bs)) for start in range(0, n, bs)]
    n_batches = len(bounds)
    every = max(1, math.ceil(n_batches / _PROGRESS_REPORTS)) if progress else n_batches
    segments = [bounds[i:i + every] for i in range(0, n_batches, every)]
    true_labels = to_labels(Y)
    predicted = np.empty(n, np.intp)
    label = labeler(net.sizes[-1])
    workspaces = {stop - start: net._workspace(stop - start) for start, stop in bounds}
    best_flat = net.flat.copy()   # restored on divergence before any epoch has finished
    params, grads, train_step, step = net.params, net.grads, net._train_step, opt.step
    # Gathering the batch: take() into the [X, 1] view's left part is slow (NumPy gathers
    # into a temporary, allocated each call, and copies back). For fits of _AUGMENT_EPOCHS or
    # more epochs the inputs are augmented once with their column of ones as the workspaces
    # hold them ([X, 1], halved for a sigmoid network: a copy of the inputs, ~30 ms for
    # MNIST, repaid in about two epochs), and a batch is one take() of contiguous rows into
    # the contiguous buffer. Shorter fits take() into a preallocated contiguous buffer and
    # copy that into the view.
    x_scale, half = net._scale, net._half
    augmented = epochs >= _AUGMENT_EPOCHS
    if augmented:
        Xa = np.empty((n, X.shape[1] + 1), net.dtype)
        if x_scale == 1.0:
            np.copyto(Xa[:, :-1], X)
        else:
            np.multiply(X, half, Xa[:, :-1])
        Xa[:, -1] = x_scale
        take_x = Xa.take
        gather_bufs = None
    else:
        take_x = X.take
        gather_bufs = {size: np.empty((size, X.shape[1]), net.dtype) for size in workspaces}
    copyto, multiply = np.copyto, np.multiply
    # targets transposed once, (d_L, n): batches are then gathered as contiguous columns
    take_yt, isfinite = np.ascontiguousarray(Y.T).take, math.isfinite
    # Plain SGD (exactly SGD, no weight decay) folds lr into the 1/n of the output delta: the
    # gradients are linear in it, so backprop yields lr * g and the update is one subtraction
    # over the flat buffer. (net.grads then hold lr * g after fit; loss_and_grads is unchanged.)
    # (Not with clipping, which needs the true gradients, nor with a per-step rate.)
    fold_lr = (type(opt) is SGD and not opt.weight_decay and on_step is None
               and opt.clip_norm is None and not opt.per_step)
    flat, grad_flat, subtract = net.flat, net.grad_flat, np.subtract
    # Adam (exactly, no weight decay): its scaled-gradient mode, 9 passes a step instead of 10
    # (see Adam._scaled_apply); the factor goes into the output delta like lr above.
    scaled_adam = type(opt) is Adam and opt._scaled_ok() and on_step is None
    if scaled_adam:
        adam_scales = {size: np.array(1.0 / size, net.dtype) for size in workspaces}
    # Other optimizers: the update without step()'s identity check while the arrays are the
    # ones it was prepared for.
    plain_step = type(opt).step is Optimizer.step and type(opt)._apply is Optimizer._apply
    apply, ready_key = opt._apply, object()   # (not None: an unprepared _key is None)
    history = History(monitor=tracker.monitor)
    nan = math.nan
    opt.begin_training(epochs * n_batches)   # per-step schedules count from here

    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            opt.set_epoch(epoch - 1)
            if fold_lr:
                scales = {size: np.array(opt.lr / size, net.dtype) for size in workspaces}
            else:
                scales = {size: ws.inv_n for size, ws in workspaces.items()}
            order = rng.permutation(n)
            loss_sum, bad_loss, batches_done = 0.0, None, 0

            # -- the batches: gather, forward, backward, update -----------------------------------
            for segment in segments:
                if scaled_adam:   # (again each time: a callback may have reset the optimizer)
                    opt._ready(params, grads)
                    opt._scaled_begin()
                with _quiet():
                    for start, stop in segment:
                        rows = order[start:stop]
                        ws = workspaces[stop - start]
                        if augmented:                     # clip: no bounds-check buffering;
                            take_x(rows, 0, ws.X, "clip")  # rows come from a permutation anyway
                        else:
                            G = gather_bufs[stop - start]
                            take_x(rows, 0, G, "clip")
                            if x_scale == 1.0:
                                copyto(ws.Xin, G)
                            else:
                                multiply(G, half, ws.Xin)
                        take_yt(rows, 1, ws.Y, "clip")
                        if scaled_adam:
                            scale = adam_scales[stop - start]
                            scale[()] = opt._scaled_next() / (stop - start)
                        else:
                            scale = scales[stop - start]
                        loss = train_step(ws, scale)
                        if not isfinite(loss):
                            bad_loss = loss
                            break
                        loss_sum += loss * (stop - start)
                        label(ws.P, predicted[start:stop])
                        if on_step is not None:
                            on_step(ws)
                        if fold_lr:
                            opt.t += 1
                            subtract(flat, grad_flat, flat)   # w <- w - lr g
                        elif scaled_adam:
                            opt._scaled_apply()
                        elif plain_step and opt._key is ready_key:
                            apply()
                        else:
                            step(params, grads)
                            ready_key = opt._key
                if scaled_adam:                   # before any user code runs
                    opt._scaled_end()
                if bad_loss is not None:
                    break
                batches_done += len(segment)
                if progress is not None:
                    progress(epoch, batches_done, n_batches, loss_sum / segment[-1][1])

            # -- the epoch's metrics ---------------------------------------------------------------
            if bad_loss is None:
                metrics = {"train_loss": loss_sum / n,
                           "train_acc": np.count_nonzero(predicted == true_labels[order]) / n}
                finite_weights = bool(np.isfinite(net.flat).all())
                if Xv is not None:
                    with _quiet():
                        metrics["val_loss"], metrics["val_acc"] = (
                            net.evaluate(Xv, Yv) if finite_weights else (nan, nan))
                diverged = not finite_weights or not isfinite(metrics.get("val_loss", 0.0))
            else:
                metrics = {"train_loss": bad_loss, "train_acc": nan}
                if Xv is not None:
                    metrics["val_loss"] = metrics["val_acc"] = nan
                diverged = True
            metrics["lr"] = opt.lr
            metrics["epoch_seconds"] = time.perf_counter() - started
            history.append(metrics)
            if not diverged and tracker.update(epoch, metrics[tracker.monitor]):
                np.copyto(best_flat, net.flat)
                history.best_epoch = epoch
            if on_epoch is not None:
                on_epoch(epoch, dict(metrics))
            if diverged:
                history.stop_reason = "diverged"
                break
            if early_stopping is not None and tracker.should_stop:
                history.stop_reason = "early_stopped"
                break
    finally:                      # the optimizer state in its usual form
        if scaled_adam:
            opt._scaled_end()

    # -- which weights the network keeps ------------------------------------------------------
    if history.stop_reason == "diverged" or (
            history.stop_reason == "early_stopped" and early_stopping.restore_best):
        np.copyto(net.flat, best_flat)
    if history.best_epoch is not None:
        history.best_params = _split(best_flat, params)
    return history


def evaluate(net, X, Y) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``net`` on ``(X, Y)``: :meth:`MLP.evaluate`."""
    return net.evaluate(X, Y)
