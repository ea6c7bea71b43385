"""Pictures of training dynamics: ``dynamics.png`` of one run and a sweep's gradient flow.

Both read the per-layer metrics of :mod:`nnexp.core.diagnostics` (``layer<k>/<statistic>``) as
``{metric: [(epoch, value), ...]}``, what a tracking backend's ``metric_history`` returns, so a
run's figure and ``python -m nnexp.compare`` draw from the same numbers. Layer k has the same
colour in every panel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnexp.plots import _drawable, _epoch_axis, _log_y

Series = Mapping[str, Sequence[tuple[int, float]]]
_LAYER_METRIC = re.compile(r"^layer(\d+)/(.+)$")


def by_layer(series: Series, statistic: str) -> dict[int, list[tuple[int, float]]]:
    """``{k: sorted [(epoch, value)]}`` of ``layer<k>/<statistic>``, layers in order."""
    found = {}
    for key, points in series.items():
        match = _LAYER_METRIC.match(key)
        if match and match.group(2) == statistic and points:
            found[int(match.group(1))] = sorted(points)
    return dict(sorted(found.items()))


def layer_colour(k: int, n_layers: int):
    """Layer k's colour (tab10 up to 10 layers, then evenly along viridis)."""
    from matplotlib import colormaps

    if n_layers <= 10:
        return colormaps["tab10"](k - 1)
    return colormaps["viridis"]((k - 1) / max(n_layers - 1, 1))


def _grid(rows: int, columns: int, width: float, height: float):
    """A figure of ``rows x columns`` panels (flattened, row by row) on the Agg canvas, with
    fixed margins (constrained layout costs ~0.3 s a figure)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * columns, height * rows))
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.92, wspace=0.25, hspace=0.3)
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(rows, columns, squeeze=False).ravel())


def _positive(points):
    """Points for a log axis: zero, negative or non-finite values become gaps."""
    return [(e, v if math.isfinite(v) and v > 0 else math.nan) for e, v in points]


def _panel(axis, lines: Mapping[int, list], n_layers: int, *, log: bool, style: str = "-",
           label: bool = False) -> None:
    for k, points in lines.items():
        points = _positive(points) if log else [(e, _drawable(v)) for e, v in points]
        epochs, values = zip(*points)
        axis.plot(epochs, values, style, color=layer_colour(k, n_layers), linewidth=1.4,
                  marker="o" if len(points) == 1 else None, label=f"layer {k}" if label else None)
    if log and any(lines.values()):
        _log_y(axis)


def _fraction_panel(axis, series: Series, n_layers: int) -> None:
    """Dead (ReLU, solid) and saturated (sigmoid/tanh, dashed) fractions; act_std if neither."""
    dead, saturated = by_layer(series, "dead_fraction"), by_layer(series, "saturated_fraction")
    if dead or saturated:
        _panel(axis, dead, n_layers, log=False)
        _panel(axis, saturated, n_layers, log=False, style="--")
        kinds = [name for name, lines in (("dead (ReLU, solid)", dead),
                                          ("saturated (dashed)", saturated)) if lines]
        axis.set_ylabel("fraction " + " / ".join(kinds))
        axis.set_ylim(-0.03, 1.03)
    else:
        _panel(axis, by_layer(series, "act_std"), n_layers, log=False)
        axis.set_ylabel("activation std")


def dynamics_figure(series: Series, path: str | Path, *, title: str = "") -> Path:
    """Four panels: gradient norm per layer (log), update ratio (log, the 1e-3 rule marked),
    dead or saturated fraction, and distinct units of the hidden layers."""
    figure, axes = _grid(2, 2, width=5.5, height=3.4)
    grads = by_layer(series, "grad_norm")
    layers = sorted({int(m.group(1)) for m in map(_LAYER_METRIC.match, series) if m})
    n_layers = max(layers, default=0)
    grad_axis, ratio_axis, fraction_axis, distinct_axis = axes
    _panel(grad_axis, grads, n_layers, log=True, label=True)
    grad_axis.set_ylabel("gradient norm ||dL/dW|| (log)")
    _panel(ratio_axis, by_layer(series, "update_ratio"), n_layers, log=True)
    ratio_axis.axhline(1e-3, color="grey", linestyle=":", linewidth=1)
    ratio_axis.set_ylabel("update ratio ||dW|| / ||W|| (log)")
    _fraction_panel(fraction_axis, series, n_layers)
    _panel(distinct_axis, by_layer(series, "distinct_units"), n_layers, log=False)
    distinct_axis.set_ylabel("distinct units (hidden layers)")
    distinct_axis.set_ylim(bottom=0)
    for axis in axes:
        _epoch_axis(axis)
        axis.grid(alpha=0.3)
    if grads:
        grad_axis.legend(fontsize="small", ncols=1 + len(grads) // 8)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=90)
    return Path(path)


# ---------------------------------------------------------------------- a sweep's gradient flow
def flow_points(series: Series, best_epoch: int | None) -> dict[str, dict[int, float]] | None:
    """``{"first": {k: grad norm}, "best": {k: ...}}`` of one run: layer k's ``grad_norm`` at
    its first logged epoch and at ``best_epoch`` (the last logged one if None or missing);
    None if the run logged no gradient norms."""
    grads = by_layer(series, "grad_norm")
    if not grads:
        return None
    first = {k: points[0][1] for k, points in grads.items()}
    best = {}
    for k, points in grads.items():
        values = dict(points)
        best[k] = values.get(best_epoch, points[-1][1]) if best_epoch else points[-1][1]
    return {"first": first, "best": best}


def gradient_flow_figure(children: Mapping[str, Mapping[str, Mapping[int, float]]],
                         path: str | Path, *, title: str = "") -> Path:
    """Gradient norm against layer for each run: first epoch dashed, best epoch solid, one
    colour per run. ``children``: run name -> :func:`flow_points`."""
    from matplotlib import colormaps

    from nnexp.plots import _figure

    figure, (axis,) = _figure(1, width=7.5, height=4.6)
    figure.subplots_adjust(right=0.68)
    cmap = colormaps["tab10" if len(children) <= 10 else "viridis"]
    for i, (name, points) in enumerate(sorted(children.items())):
        colour = cmap(i if len(children) <= 10 else i / max(len(children) - 1, 1))
        for when, style in (("first", "--"), ("best", "-")):
            layers = sorted(points[when])
            axis.plot(layers, [v for _, v in _positive([(k, points[when][k]) for k in layers])],
                      style, marker="o", markersize=3, color=colour, linewidth=1.2,
                      label=name if when == "best" else None)
    _log_y(axis)
    axis.set_xlabel("layer (1 = first weight layer)")
    axis.set_ylabel("gradient norm ||dL/dW|| (log)")
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)
    axis.set_title(title or "gradient flow: first epoch dashed, best epoch solid")
    if children:
        axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.savefig(path, dpi=90)
    return Path(path)
