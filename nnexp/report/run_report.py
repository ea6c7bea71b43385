"""What a run adds to its record when ``diagnostics`` is on: per-layer statistics each epoch,
and at the end ``test_acc/<class>`` and the confusion matrix (the numbers ``dynamics.png`` and
``confusion_matrix.png`` are drawn from: :mod:`nnexp.report.run_figures`).

:class:`EpochDiagnostics` sits between ``fit`` and the app: it gives ``fit`` its ``on_step``
hook (a :class:`nnexp.core.diagnostics.Recorder`), and in the app's ``on_epoch`` adds the
epoch's statistics to the metrics logged with the epoch (one write, no extra round trip).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def every_for(section: Mapping[str, Any], n_train: int, batch_size: int | None) -> int:
    """The sampling period k of ``cfg["diagnostics"]``: its ``every``, or
    ``ceil(batches per epoch / samples_per_epoch)``."""
    if section.get("every"):
        return int(section["every"])
    batch = n_train if batch_size is None else min(batch_size, n_train)
    batches = math.ceil(n_train / max(batch, 1))
    return max(1, math.ceil(batches / section["samples_per_epoch"]))


class EpochDiagnostics:
    """The layer statistics of one run: ``hook`` for ``fit(on_step=...)``, ``add(metrics)`` in
    ``on_epoch``, and the per-epoch series kept for ``dynamics.png``."""

    def __init__(self, net, every: int):
        from nnexp.core.diagnostics import recorder_for

        self.recorder = recorder_for(net, every=every)
        self.hook = self.recorder.hook
        self.series: dict[str, list[tuple[int, float]]] = {}

    def add(self, epoch: int, metrics: dict[str, float]) -> dict[str, float]:
        """``metrics`` with this epoch's ``layer<k>/...`` statistics added."""
        statistics = self.recorder.epoch_metrics()
        for key, value in statistics.items():
            self.series.setdefault(key, []).append((epoch, value))
        return {**metrics, **statistics}


def class_report(net, data, predicted=None) -> tuple[dict[str, float], dict[str, str]]:
    """``test_acc/<class>`` of ``net`` on the test set, and the ``nnexp.confusion_matrix`` tag
    that ``confusion_matrix.png`` is drawn from (:mod:`nnexp.report.run_figures`); nothing for
    a data set without class names or test labels. ``predicted``: the test rows' labels
    ``net.predict`` would give, if the caller has them already."""
    from nnexp.report.confusion import class_metrics, confusion_matrix
    from nnexp.report.run_figures import confusion_tag

    names = getattr(data, "class_names", None)
    if not names or data.test is None or getattr(data, "y_test", None) is None:
        return {}, {}
    if predicted is None:
        predicted = net.predict(data.test[0])
    C = confusion_matrix(data.y_test, predicted, len(names))
    return class_metrics(C, names), confusion_tag(C, names)
