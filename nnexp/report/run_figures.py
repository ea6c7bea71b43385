"""A run's three pictures, drawn from the numbers its record keeps: ``learning_curves.png``,
``dynamics.png`` and ``confusion_matrix.png``.

A single run draws them at its end. A sweep's children only record the numbers (per-epoch
curves, ``layer<k>/<statistic>`` and the ``nnexp.confusion_matrix`` tag) unless
``tracking.child_figures=all``: drawing the three figures took about 0.7 s of each child's
2.6 s here, about as long as the child's 0.8 s of training (py-spy of the 8-job sweep of
``bench/sweep_ceiling.py``), and what a sweep is compared by is in its parent (the overlaid
curves, score and gradient-flow plots) and in MLflow's own charts. The sweep then draws its best child's figures at its end
(:func:`draw_into_run`), and ``python -m nnexp.report RUN_ID`` draws any run's later, from the
same numbers, so nothing is lost by not drawing them at once.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnexp.errors import raise_hidden_interrupt

# the confusion matrix's counts and class names, as JSON: small enough for a tag (MLflow keeps
# up to 8,000 characters), so that both backends read it with the run's other tags
TAG_CONFUSION = "nnexp.confusion_matrix"
MAX_TAG = 8000
# "drawn" once the run's figures are among its artifacts
TAG_FIGURES = "nnexp.figures"
CURVE_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


@dataclass
class RunNumbers:
    """What the figures are drawn from.

    ``rows``: one dict per epoch (1, 2, ...) with train_loss, train_acc and, with a validation
    split, val_loss and val_acc (as :meth:`nnexp.core.History.rows` gives them);
    ``series``: ``{"layer<k>/<statistic>": [(epoch, value), ...]}``; ``confusion``: the
    ``(n_classes, n_classes)`` counts (rows true class, columns predicted) with the class
    names, or None.
    """

    title: str
    rows: list[dict[str, float]]
    best_epoch: int | None = None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    confusion: tuple[list[list[int]], list[str]] | None = None


def _warn(what: str, error: BaseException) -> None:
    print(f"nnexp: warning: {what} not drawn ({type(error).__name__}: {error}); the run's "
          f"metrics and weights are kept", file=sys.stderr, flush=True)


def draw(numbers: RunNumbers, folder: Path) -> list[Path]:
    """Draw every figure ``numbers`` has data for into ``folder``; returns the files written.
    A figure that cannot be drawn is one warning line: a picture never changes a run's end."""
    import numpy as np

    from nnexp.plots import learning_curves
    from nnexp.report.confusion import confusion_figure
    from nnexp.report.dynamics import dynamics_figure

    jobs = []
    if numbers.rows:   # (plots leaves out losses too large to draw: a diverged run is drawn too)
        jobs.append(("learning_curves.png", lambda path: learning_curves(
            numbers.rows, path, best_epoch=numbers.best_epoch, title=numbers.title)))
    if numbers.series:
        jobs.append(("dynamics.png", lambda path: dynamics_figure(numbers.series, path, title=numbers.title)))
    if numbers.confusion is not None:
        counts, names = numbers.confusion
        jobs.append(("confusion_matrix.png", lambda path: confusion_figure(
            np.asarray(counts, dtype=np.int64), names, path)))
    written = []
    for name, drawing in jobs:
        try:
            drawing(folder / name)
            written.append(folder / name)
        except Exception as error:  # noqa: BLE001 - a picture must not change how the run ended
            raise_hidden_interrupt(error)   # ... but a Ctrl-C does
            _warn(name, error)
    return written


def confusion_tag(C, class_names: Sequence[str]) -> dict[str, str]:
    """The ``nnexp.confusion_matrix`` tag of counts ``C``, or nothing when it would not fit."""
    text = json.dumps({"classes": [str(n) for n in class_names], "counts": [[int(v) for v in row] for row in C]},
                      separators=(",", ":"))
    return {TAG_CONFUSION: text} if len(text) <= MAX_TAG else {}


def read_confusion(tags: Mapping[str, str]) -> tuple[list[list[int]], list[str]] | None:
    try:
        found = json.loads(tags[TAG_CONFUSION])
        return found["counts"], found["classes"]
    except (KeyError, ValueError, TypeError):
        return None


def numbers_from_store(backend, run) -> RunNumbers:
    """The figures' numbers of ``run`` (a :class:`~nnexp.tracking.records.RunRecord`), read
    back through ``backend``: the same values the run would have drawn at its end."""
    curves = {key: dict(backend.metric_history(run.run_id, key)) for key in CURVE_METRICS
              if key in run.metrics}
    epochs = sorted({epoch for points in curves.values() for epoch in points})
    rows = [{key: points[epoch] for key, points in curves.items() if epoch in points} for epoch in epochs]
    series = {key: backend.metric_history(run.run_id, key) for key in run.metrics if key.startswith("layer")}
    best = run.metrics.get("best_epoch")
    best_epoch = int(best) if best is not None and math.isfinite(best) and best >= 1 else None
    return RunNumbers(run.run_name, rows, best_epoch, {k: v for k, v in series.items() if v},
                      read_confusion(run.tags))


def draw_into_run(backend, run) -> list[str]:
    """Draw ``run``'s figures from the store and log them among its artifacts (the run may
    have ended: artifacts are added to it all the same); returns the names of the files."""
    with tempfile.TemporaryDirectory(prefix="nnexp-figures-") as tmp:
        written = draw(numbers_from_store(backend, run), Path(tmp))
        if written:
            backend.log_artifacts(run.run_id, tmp)
            backend.log_batch(run.run_id, tags={TAG_FIGURES: "drawn"})
    return [path.name for path in written]


def has_figures(run: Any) -> bool:
    """Whether ``run`` already has its figures among its artifacts."""
    return run.tags.get(TAG_FIGURES) == "drawn"
