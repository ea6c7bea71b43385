"""Pictures of training: learning curves of one run, and comparisons across a sweep.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no GUI backend, no global
state), so plotting is safe in worker processes and on machines without a display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path


# Largest value drawn: a diverging run's loss can near the float maximum (1.8e308), where
# matplotlib's axis transforms become singular and the figure cannot be drawn at all.
DRAWABLE_LIMIT = 1e100


def _drawable(value: float) -> float:
    """``value``, or NaN (a gap in the line) when it is not finite or too large to draw."""
    return value if math.isfinite(value) and abs(value) <= DRAWABLE_LIMIT else math.nan


def preload() -> None:
    """Import matplotlib's figure, Agg canvas and font list (about 0.6 s the first time in a
    process) ahead of the first plot; parallel sweeps do it in their workers at start-up."""
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401
    from matplotlib.ticker import MaxNLocator  # noqa: F401

    font_manager.findfont("DejaVu Sans")


def _figure(n_panels: int, width: float = 5.0, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins: matplotlib's constrained layout would cost ~0.3 s per figure, which is a
    # third of a short run's whole time
    figure = Figure(figsize=(width * n_panels, height))
    inch = 1 / (width * n_panels)  # margins in inches: room for tick labels and the y label
    figure.subplots_adjust(left=0.8 * inch, right=1 - 0.15 * inch, bottom=0.14, top=0.88, wspace=0.3)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, n_panels, squeeze=False)[0]


def _epoch_axis(axis) -> None:
    """Epochs are whole numbers: no 1.25 ticks on short runs."""
    from matplotlib.ticker import MaxNLocator

    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _log_y(axis) -> None:
    """A log y axis with plain tick labels ("0.1", "2e-05") at 1, 2 and 5 times the powers of
    ten (at most 8, thinned by matplotlib over wide ranges) and no minor ticks.

    Why: matplotlib's default labels are typeset as TeX (mathtext), 0.05-0.15 s of a figure's
    0.25 s; and labelled minor ticks are many tick objects per log panel: without them a 7-layer
    ``dynamics.png`` takes 0.21 s of CPU instead of 0.286 s (best of 4 alternating draws)."""
    from matplotlib.ticker import LogFormatter, LogLocator, NullLocator

    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0), numticks=8))
    axis.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_locator(NullLocator())


def learning_curves(rows: Sequence[Mapping[str, float]], path: str | Path, *,
                    best_epoch: int | None = None, title: str = "") -> Path:
    """Loss and accuracy per epoch, train and validation, with the best epoch marked.

    ``rows`` are per-epoch dicts with train_loss, train_acc and optionally val_loss, val_acc
    (as :meth:`nnexp.core.History.rows` returns them); epochs are numbered from 1.
    """
    figure, (loss_axis, acc_axis) = _figure(2)
    epochs = range(1, len(rows) + 1)
    for axis, metric, label in ((loss_axis, "loss", "loss"), (acc_axis, "acc", "accuracy")):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            if rows and key in rows[0]:
                axis.plot(epochs, [_drawable(row[key]) for row in rows], style, label=split)
        if best_epoch is not None:
            axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
        _epoch_axis(axis)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    losses = [_drawable(row[k]) for row in rows for k in ("train_loss", "val_loss") if k in row]
    losses = [loss for loss in losses if math.isfinite(loss)]
    if losses and min(losses) > 0:  # losses span decades: a log axis shows the late epochs too
        _log_y(loss_axis)
        loss_axis.set_ylabel("loss (log)")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
    return Path(path)


def overlay_curves(histories: Mapping[str, Mapping[str, Sequence[tuple[int, float]]]],
                   path: str | Path) -> Path:
    """Validation loss and accuracy of many runs on shared axes, one line per run.

    ``histories`` maps a run's name to ``{metric: [(epoch, value), ...]}`` for val_loss and
    val_acc (train_loss is drawn instead where a run has no validation curve).
    """
    figure, (loss_axis, acc_axis) = _figure(2, width=6.0, height=4.2)
    for name, metrics in sorted(histories.items()):
        loss = metrics.get("val_loss") or metrics.get("train_loss") or []
        if loss:
            line, = loss_axis.plot(*zip(*sorted(loss)), label=name, linewidth=1.2)
            accuracy = metrics.get("val_acc") or []
            if accuracy:
                acc_axis.plot(*zip(*sorted(accuracy)), color=line.get_color(), linewidth=1.2)
    _log_y(loss_axis)
    for axis, label in ((loss_axis, "validation loss (log)"), (acc_axis, "validation accuracy")):
        _epoch_axis(axis)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    if histories:
        loss_axis.legend(fontsize="small", ncols=1 + len(histories) // 12)
    figure.savefig(path, dpi=100)
    return Path(path)


def _as_number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def score_against(rows: Sequence[Mapping], key: str, group_key: str | None, path: str | Path,
                  score: str = "best_val_loss") -> Path:
    """``score`` of every finished run against the swept value ``key``, one line per value of
    ``group_key`` (e.g. best validation loss against lr, one line per optimizer).

    Numeric values go on a log axis when they are positive and span more than a factor of 10;
    other values are placed in order of first appearance. Diverged and failed runs are left out
    (their score is not finite) and counted in the title.
    """
    figure, (axis,) = _figure(1, width=6.0, height=4.2)
    usable = [r for r in rows if _as_number(r.get(score)) is not None and math.isfinite(float(r[score]))
              and r.get("outcome") in ("finished", "early_stopped")]
    values = [r.get(key) for r in usable]
    numeric = all(_as_number(v) is not None for v in values) and values
    positions = ({v: _as_number(v) for v in values} if numeric
                 else {v: i for i, v in enumerate(dict.fromkeys(values))})
    groups: dict = {}
    for row in usable:
        groups.setdefault(row.get(group_key) if group_key else "all runs", []).append(row)
    for group, members in sorted(groups.items(), key=lambda item: str(item[0])):
        points = sorted((positions[r.get(key)], float(r[score])) for r in members)
        axis.plot(*zip(*points), marker="o", label=f"{group_key}={group}" if group_key else group)
    if numeric:
        xs = [x for x in positions.values()]
        if min(xs) > 0 and max(xs) / min(xs) >= 10:
            axis.set_xscale("log")
    else:
        axis.set_xticks(list(positions.values()), [str(v) for v in positions])
    left_out = len(rows) - len(usable)
    axis.set_title(f"{score} against {key}" + (f" ({left_out} diverged/failed left out)" if left_out else ""))
    axis.set_xlabel(key)
    axis.set_ylabel(score)
    axis.grid(alpha=0.3)
    if groups:
        axis.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    return Path(path)
