"""The record of one training run, as returned by :func:`nnexp.core.fit`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Per-epoch series, in the order of :meth:`History.rows` and of the ``on_epoch`` metrics.
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")


@dataclass
class History:
    """Per-epoch metrics (epochs numbered from 1) and how training ended.

    Attributes:
        train_loss, train_acc: sample-weighted means over the epoch's mini-batches, from the
            forward passes that computed the gradients (weights change during the epoch).
        val_loss, val_acc: after the epoch; empty lists when there is no validation set.
        lr: the learning rate used in the epoch. epoch_seconds: wall time of the epoch.
        stop_reason: ``"completed"``, ``"early_stopped"`` or ``"diverged"``.
        best_epoch: 1-based epoch with the best ``monitor`` value, None if no epoch finished
            with finite values. best_params: copies of the weights after that epoch, or None;
            best_buffers: the network's batch-norm running statistics after that epoch, by
            name (empty without batch norm), or None.
        monitor: the metric that defines "best" (early stopping's, else ``val_loss`` with a
            validation set, else ``train_loss``).
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    stop_reason: str = "completed"
    best_epoch: int | None = None
    best_params: list[np.ndarray] | None = None
    best_buffers: dict[str, np.ndarray] | None = None
    monitor: str = "train_loss"

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def append(self, metrics: dict) -> None:
        """Add one epoch; ``metrics`` has the keys of :data:`METRICS` (val keys optional)."""
        for name in METRICS:
            if name in metrics:
                getattr(self, name).append(metrics[name])

    def rows(self) -> list[dict]:
        """One dict per epoch: ``{"epoch": 1, "train_loss": ..., ...}`` (val keys if present)."""
        names = [m for m in METRICS if len(getattr(self, m)) == self.epochs_run]
        return [{"epoch": i + 1, **{m: getattr(self, m)[i] for m in names}}
                for i in range(self.epochs_run)]

    def best(self, metric: str | None = None) -> float:
        """``metric`` (default: the monitored one) at the best epoch; nan if there is none."""
        name = metric or self.monitor
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}")
        series = getattr(self, name)
        if self.best_epoch is None or len(series) < self.best_epoch:
            return math.nan
        return series[self.best_epoch - 1]
