"""A progress bar per run: epochs done (with the fraction of the current one) and live metrics."""

from __future__ import annotations

from collections.abc import Mapping


class ProgressBar:
    """tqdm bar over epochs; use as a context manager.

    ``enabled=None`` shows the bar only when stderr is a terminal, so logs and CI stay clean.
    :meth:`batch_progress` fits :func:`nnexp.core.fit`'s ``progress`` callback and moves the bar
    within an epoch, which matters when one epoch of MNIST takes many seconds.
    """

    def __init__(self, epochs: int, description: str, enabled: bool | None = None):
        self.epochs = epochs
        self.description = description
        self.enabled = enabled
        self.bar = None
        self._position = 0.0  # epochs done, fractional

    def __enter__(self) -> "ProgressBar":
        if self.enabled is not False:
            from tqdm import tqdm

            self.bar = tqdm(total=self.epochs, desc=self.description, unit="epoch",
                            disable=None if self.enabled is None else False, leave=False,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} "
                                       "[{elapsed}<{remaining}{postfix}]")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.close()

    def _advance_to(self, position: float) -> None:
        if self.bar is not None and position > self._position:
            self.bar.update(position - self._position)
            self._position = position

    def batch_progress(self, epoch: int, batches_done: int, n_batches: int, running_loss: float) -> None:
        self._advance_to(epoch - 1 + batches_done / max(n_batches, 1))
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss={running_loss:.4f}", refresh=False)

    def epoch_done(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._advance_to(float(epoch))
        if self.bar is not None:
            shown = {k: metrics[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in metrics}
            self.bar.set_postfix_str(" ".join(f"{k}={v:.4f}" for k, v in shown.items()), refresh=False)
