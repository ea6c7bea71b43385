"""``mode=gradcheck``: compare the configured model's backprop with central differences, in
float64, at initialisation or after ``gradcheck.at_epoch`` epochs, and record the verdict as a
run (:func:`run_gradcheck`, called by :func:`nnexp.app.run`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import nnexp
from nnexp.app import RunResult, load_data, open_experiment, run_name
from nnexp.config import flatten

# gradcheck mode: how many training samples, the largest relative error that passes, and the
# denominator floor: gradient entries below it (rounding noise around 1e-9 on real data) are
# compared by absolute error / floor instead of a meaningless relative error
GRADCHECK_SAMPLES = 16
GRADCHECK_TOLERANCE = 1e-6
GRADCHECK_FLOOR = 1e-4


def _gradcheck_rows(net, train):
    """The first :data:`GRADCHECK_SAMPLES` training rows none of whose ReLU inputs sits on the
    kink (central differences are meaningless there); says how many were skipped."""
    import numpy as np

    from nnexp.core.gradcheck_detail import near_kinks

    X, Y = train
    kinked = near_kinks(net, X[:GRADCHECK_SAMPLES * 4])
    keep = np.flatnonzero(~kinked)[:GRADCHECK_SAMPLES]
    skipped = int(np.count_nonzero(kinked[:keep[-1] + 1])) if keep.size else int(kinked.sum())
    if skipped:
        print(f"gradcheck: skipped {skipped} training row(s) with a ReLU input within 1e-4 of its "
              f"kink (e.g. a row at the origin with zero biases), where central differences "
              f"are not a derivative")
    if not keep.size:
        keep = np.arange(min(GRADCHECK_SAMPLES, X.shape[0]))
    return X[keep], Y[keep]


def run_gradcheck(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (),
                  parent_run_id: str | None = None, experiment: str | None = None,
                  store=None) -> RunResult:
    """Compare backprop with central differences for the configured model, in float64.

    Uses the first :data:`GRADCHECK_SAMPLES` training samples; prints the max relative error of
    every parameter array and logs them as metrics ``gradcheck_W1``, ``gradcheck_b1``, ...
    The run is FINISHED when every error is below :data:`GRADCHECK_TOLERANCE`, else FAILED.
    """
    from nnexp import build, tracking
    from nnexp.core.gradcheck_detail import worst_entries

    data = load_data(cfg, dtype="float64")
    net = build.build_model(cfg, data.n_inputs, data.n_outputs, dtype="float64")
    at_epoch = cfg.get("gradcheck", {}).get("at_epoch", 0)
    if at_epoch:   # the check at a chosen point of training, not only at initialisation
        from nnexp.core import fit

        fit(net, build.build_optimizer(cfg), train=data.train, epochs=at_epoch,
            batch_size=cfg["batch_size"], seed=cfg["seed"])
        print(f"gradcheck after {at_epoch} epoch(s) of training")
    X, Y = _gradcheck_rows(net, data.train)
    found = worst_entries(net, X, Y, floor=GRADCHECK_FLOOR)
    errors = {name: entry.error for name, entry in found.items()}
    worst = max(errors.values())
    passed = worst < GRADCHECK_TOLERANCE
    for name, entry in found.items():
        print(f"{name:>6}  max relative error {entry.error:.3e} at {name}{list(entry.index)}: analytic "
              f"{entry.analytic:.6e}, numerical {entry.numeric:.6e}  "
              f"{'ok' if entry.error < GRADCHECK_TOLERANCE else 'FAIL'}")

    store = store or open_experiment(cfg, experiment)
    mlflow_run = tracking.TrackedRun.start(
        store, f"gradcheck-{run_name(cfg)}", parent_run_id=parent_run_id,
        tags={"nnexp.version": nnexp.__version__, "nnexp.mode": "gradcheck",
              "nnexp.overrides": " ".join(overrides) or "(none)"})
    try:
        mlflow_run.log_params(flatten(cfg))
        metrics = {f"gradcheck_{name}": error for name, error in errors.items()}
        metrics["gradcheck_max"] = worst
        mlflow_run.log_metrics(metrics)
    finally:
        mlflow_run.end("FINISHED" if passed else "FAILED",
                       error=None if passed else f"gradient check failed: max relative error {worst:.2e}")
    return RunResult(mlflow_run.run_id, "FINISHED" if passed else "FAILED",
                     "gradcheck", metrics, store.experiment_name, store.uri)
