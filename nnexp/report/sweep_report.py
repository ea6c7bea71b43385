"""A sweep's dynamics, read back from the store: each child's worst class, and the gradient flow
(gradient norm per layer at the first and the best epoch of every child).

Called by :mod:`nnexp.summary` (the sweep's parent run) and so by ``python -m nnexp.compare``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CLASS_PREFIX = "test_acc/"
MAX_LAYERS = 1000   # a guard on the layer-by-layer lookup, far above any real network


def worst_class(metrics: Mapping[str, float]) -> dict[str, Any]:
    """``{"worst_class": name, "worst_class_acc": accuracy}`` from a run's ``test_acc/<class>``
    metrics (the lowest; "" and nan for a run without them)."""
    classes = {key[len(CLASS_PREFIX):]: value for key, value in metrics.items()
               if key.startswith(CLASS_PREFIX) and isinstance(value, (int, float)) and math.isfinite(value)}
    if not classes:
        return {"worst_class": "", "worst_class_acc": math.nan}
    name = min(classes, key=lambda c: (classes[c], c))
    return {"worst_class": name, "worst_class_acc": float(classes[name])}


def _label(row: Mapping[str, Any], swept: Sequence[str]) -> str:
    """A child's name in the legend: its swept values (run names repeat across a sweep)."""
    values = [f"{key.lstrip('+~')}={row.get(key)}" for key in swept if row.get(key) is not None]
    return ", ".join(values) or str(row.get("run_name") or row.get("run_id"))


def child_gradients(backend, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """``{"layer<k>/grad_norm": [(epoch, value), ...]}`` of one run, k = 1 up to its last layer."""
    series = {}
    for k in range(1, MAX_LAYERS + 1):
        points = backend.metric_history(run_id, f"layer{k}/grad_norm")
        if not points:
            break
        series[f"layer{k}/grad_norm"] = points
    return series


def gradient_flow(backend, rows: Sequence[Mapping[str, Any]], swept: Sequence[str],
                  folder: Path) -> list[Path]:
    """``gradient_flow.png`` and ``gradient_flow.csv`` (one row per child and epoch kind:
    label, run_id, epoch, ``layer1``, ``layer2``, ...) for the children that logged gradient
    norms; nothing if none did (a sweep run with ``diagnostics=off``)."""
    from nnexp.report.dynamics import flow_points, gradient_flow_figure

    children, table = {}, []
    for row in rows:
        if not row.get("run_id"):
            continue
        best = row.get("best_epoch")
        best = int(best) if isinstance(best, (int, float)) and math.isfinite(best) and best >= 1 else None
        points = flow_points(child_gradients(backend, row["run_id"]), best)
        if points is None:
            continue
        label = _label(row, swept)
        if label in children:
            label = f"{label} ({row['run_id'][:8]})"
        children[label] = points
        for when in ("first", "best"):
            table.append({"child": label, "run_id": row["run_id"], "epoch": when,
                          **{f"layer{k}": v for k, v in sorted(points[when].items())}})
    if not children:
        return []
    csv_path = folder / "gradient_flow.csv"
    columns = list(dict.fromkeys(c for entry in table for c in entry))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)
    return [gradient_flow_figure(children, folder / "gradient_flow.png"), csv_path]
