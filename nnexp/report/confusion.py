"""Where a classifier's errors are: the confusion matrix, per-class accuracy and its picture.

``C[i, j]`` counts the samples of true class ``i`` predicted as class ``j``; the accuracy of
class ``i`` is ``C[i, i] / sum_j C[i, j]`` (its recall), nan for a class absent from the set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# MLflow metric names allow letters, digits, _ - . / and spaces; anything else becomes _
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-./ ]")


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts, rows the true class, columns the prediction."""
    true, predicted = np.asarray(true, np.intp), np.asarray(predicted, np.intp)
    flat = np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def class_accuracy(C: np.ndarray) -> np.ndarray:
    """Per-class accuracy (recall) from a confusion matrix; nan where a class has no samples."""
    totals = C.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(C) / np.maximum(totals, 1), np.nan)


def metric_name(class_name: str) -> str:
    """``test_acc/<class>`` with characters MLflow refuses replaced (``T-shirt/top`` stays)."""
    return "test_acc/" + _UNSAFE.sub("_", str(class_name))


def class_metrics(C: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """``{"test_acc/<class>": accuracy}`` for the classes present in the test set."""
    return {metric_name(name): float(acc) for name, acc in zip(class_names, class_accuracy(C))
            if not math.isnan(acc)}


def worst_class(C: np.ndarray, class_names: Sequence[str]) -> tuple[str, float] | None:
    """``(name, accuracy)`` of the class with the lowest accuracy (the first if tied)."""
    accuracies = class_accuracy(C)
    if np.isnan(accuracies).all():
        return None
    i = int(np.nanargmin(accuracies))
    return str(class_names[i]), float(accuracies[i])


def confusion_figure(C: np.ndarray, class_names: Sequence[str], path: str | Path, *,
                     title: str = "") -> Path:
    """The matrix as a heat map, each row coloured by its share of the true class (so a rare
    class's errors are as visible as a common one's), counts written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = C.shape[0]
    size = min(max(3.5, 0.55 * n + 2.0), 12.0)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axis = figure.add_axes((0.2, 0.17, 0.76, 0.74))
    totals = np.maximum(C.sum(axis=1, keepdims=True), 1)
    shares = C / totals
    axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    names = [str(name) for name in class_names]
    axis.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 3 else 0,
                    ha="right" if max(map(len, names)) > 3 else "center", fontsize="small")
    axis.set_yticks(range(n), names, fontsize="small")
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if n <= 20:   # above that the numbers would not fit in the cells
        for i in range(n):
            for j in range(n):
                if C[i, j]:
                    axis.text(j, i, str(C[i, j]), ha="center", va="center", fontsize="x-small",
                              color="white" if shares[i, j] > 0.5 else "black")
    accuracy = np.trace(C) / max(C.sum(), 1)
    axis.set_title(title or f"test set: accuracy {accuracy:.4f}, rows = true class")
    figure.savefig(path, dpi=90)
    return Path(path)
