"""Early stopping: stop when a validation metric has stopped improving.

An epoch *improves* on the best so far when its value beats it by more than ``min_delta``
(lower for ``val_loss``, higher for ``val_acc``); the first finite value always improves.
After ``patience`` epochs in a row without improvement, training stops, and with
``restore_best`` the network gets back the weights of the last improving epoch (``fit`` keeps
a copy of them).

``fit`` also uses this rule, with ``patience=None`` (never stop) and ``min_delta=0``, to pick
the best epoch when no early stopping is asked for; it then monitors ``val_loss`` if there is a
validation set, else ``train_loss``.
"""

from __future__ import annotations

import math

from nnexp.core._checks import choose, count, positive

#: monitored metric -> +1 if larger is better, -1 if smaller is better.
MONITORS = {"val_loss": -1.0, "val_acc": +1.0, "train_loss": -1.0, "train_acc": +1.0}


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of ``monitor`` by > ``min_delta``.

    Args:
        monitor: ``"val_loss"`` or ``"val_acc"`` (``train_loss``/``train_acc`` also work).
        patience: epochs without improvement before stopping (>= 1);
            ``None`` never stops and only tracks the best epoch.
        min_delta: the smallest change that counts as an improvement (>= 0).
        restore_best: put the weights of the best epoch back into the network on stopping.
    """

    def __init__(self, monitor: str = "val_loss", patience: int | None = 5, min_delta: float = 0.0,
                 restore_best: bool = True):
        self.sign = choose(MONITORS, monitor, "early-stopping monitor")
        self.monitor = monitor
        self.patience = None if patience is None else count(patience, "patience")
        self.min_delta = positive(min_delta, "min_delta", allow_zero=True)
        if not isinstance(restore_best, bool):
            raise TypeError(f"restore_best must be True or False, got {restore_best!r}")
        self.restore_best = restore_best
        self.reset()

    def reset(self) -> None:
        """Forget the best value: ``fit`` calls this before training."""
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by more than ``min_delta``."""
        if not math.isfinite(value):
            return False
        return self.best is None or self.sign * (value - self.best) > self.min_delta

    def update(self, epoch: int, value: float) -> bool:
        """Record ``epoch``'s value; True if it is the new best."""
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        # patience 0 and 1 both stop at the first epoch without improvement
        return self.patience is not None and self.wait >= max(1, self.patience)

    def __repr__(self) -> str:
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, restore_best={self.restore_best})")
