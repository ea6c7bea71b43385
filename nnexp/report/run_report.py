"""What a run adds to its record when ``diagnostics`` is on: per-layer statistics each epoch,
and at the end ``dynamics.png``, ``confusion_matrix.png`` and ``test_acc/<class>``.

:class:`EpochDiagnostics` sits between ``fit`` and the app: it gives ``fit`` its ``on_step``
hook (a :class:`nnexp.core.diagnostics.Recorder`), and in the app's ``on_epoch`` adds the
epoch's statistics to the metrics logged with the epoch (one write, no extra round trip).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
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


def _warn(what: str, error: BaseException) -> None:
    print(f"nnexp: warning: {what} not drawn ({type(error).__name__}: {error}); the run's "
          f"metrics and weights are kept", file=sys.stderr, flush=True)


def class_report(net, data, folder: Path, *, title: str = "") -> dict[str, float]:
    """``test_acc/<class>`` of ``net`` on the test set, and ``confusion_matrix.png`` in
    ``folder``; nothing for a data set without class names or test labels."""
    from nnexp.report.confusion import class_metrics, confusion_figure, confusion_matrix

    names = getattr(data, "class_names", None)
    if not names or data.test is None or getattr(data, "y_test", None) is None:
        return {}
    predicted = net.predict(data.test[0])
    C = confusion_matrix(data.y_test, predicted, len(names))
    try:
        confusion_figure(C, names, folder / "confusion_matrix.png", title=title)
    except Exception as error:  # noqa: BLE001 - a picture must not change how the run ended
        _warn("confusion_matrix.png", error)
    return class_metrics(C, names)


def draw_dynamics(diagnostics: EpochDiagnostics | None, folder: Path, *, title: str = "") -> None:
    """``dynamics.png`` from the statistics of every epoch, if any were recorded."""
    if diagnostics is None or not diagnostics.series:
        return
    from nnexp.report.dynamics import dynamics_figure

    try:
        dynamics_figure(diagnostics.series, folder / "dynamics.png", title=title)
    except Exception as error:  # noqa: BLE001
        _warn("dynamics.png", error)


def log_run_report(mlflow_run, net, data, diagnostics: EpochDiagnostics | None, *,
                   title: str = "") -> dict[str, float]:
    """Draw ``dynamics.png`` and ``confusion_matrix.png`` into the run's artifacts; returns the
    ``test_acc/<class>`` metrics for the caller to log."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nnexp-report-") as tmp:
        folder = Path(tmp)
        draw_dynamics(diagnostics, folder, title=title)
        metrics = class_report(net, data, folder)
        if any(folder.iterdir()):
            mlflow_run.log_artifacts(folder)
    return metrics
