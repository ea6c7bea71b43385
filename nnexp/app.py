"""One experiment, read top to bottom: config → data → build → fit → log.

:func:`run` takes a plain, resolved config dict (what ``conf/`` composes) and knows nothing of
Hydra, so the command line, the sweep machinery, the tests and a Python user all go through
the same function. MLflow is reached only through :mod:`nnexp.tracking`.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nnexp
from nnexp.config import flatten, validate
from nnexp.errors import interrupt_behind, raise_hidden_interrupt

TAG_CONFIG_HASH = "nnexp.config_hash"
UNHASHED_KEYS = {"progress", "tracking.resume", "tracking.run_name", "tracking.log_model",
                 "tracking.child_figures"}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``signum``), raised in the main thread so that a run ends as KILLED
    like on Ctrl-C."""

    def __init__(self, message: str = "terminated by SIGTERM", signum: int = signal.SIGTERM):
        super().__init__(message)
        self.signum = signum

    def __reduce__(self):   # keeps the signal when sent between processes (joblib workers)
        return type(self), (str(self), self.signum)


@dataclass
class RunResult:
    """What a run produced: its MLflow id and status, and the numbers a sweeper optimises."""

    run_id: str | None
    status: str  # FINISHED, FAILED, KILLED, or SKIPPED (resume found it already FINISHED)
    stop_reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    experiment: str = ""
    tracking_uri: str = ""
    predict_command: str = ""   # `mlflow models predict` on the run's LoggedModel, if one was logged

    @property
    def objective(self) -> float:
        """Best validation loss (lower is better); +inf for a run that never had a finite one."""
        value = self.metrics.get("best_val_loss", math.inf)
        return value if math.isfinite(value) else math.inf


def run_name(cfg: Mapping[str, Any]) -> str:
    """A readable name such as ``adam-lr0.001-16x8`` unless the config names the run; a model
    that is not plain ReLU says how: ``sgd-lr0.002-50x50-sigmoid-bn-drop0.2``."""
    if cfg["tracking"].get("run_name"):
        return cfg["tracking"]["run_name"]
    model = cfg["model"]
    widths = "x".join(str(w) for w in model["hidden"])
    name = f"{cfg['optimizer']['name']}-lr{cfg['optimizer']['lr']:g}-{widths}"

    def per_layer(value) -> str:
        return ".".join(map(str, value)) if isinstance(value, list) else str(value)

    if model.get("activation", "relu") != "relu":
        name += f"-{per_layer(model['activation'])}"
    if model.get("batch_norm"):
        name += "-bn" if model["batch_norm"] is True else f"-bn{per_layer(model['batch_norm'])}"
    if model.get("dropout"):
        name += f"-drop{per_layer(model['dropout'])}"
    return name


def _git_commit() -> str | None:
    """The commit of the nnexp source tree, when it is a git checkout (not in a wheel)."""
    from nnexp.tracking.tags import git_commit

    return git_commit()


def _blas_threads() -> str:
    """Threads the BLAS library under NumPy will use (1 per job in a parallel sweep)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # it comes with scikit-learn; without it we just do not say
        return "unknown"
    counts = {str(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"}
    return ",".join(sorted(counts)) or "unknown"


# The data set of the last sweep job in this process, kept for the next job: the jobs of a
# sweep (all of them with the basic launcher, several per worker with joblib) mostly share one
# data config, and loading MNIST in float64 makes 440 MB of new arrays each time (0.15-0.5 s
# here). One entry, so a sweep over data options holds one data set at a time.
_sweep_data: dict[str, Any] = {}


def _read_only(data):
    """``data`` with every array made read-only: a run that writes into shared data fails loudly
    instead of changing the next job's."""
    for part in (data.train, data.val, data.test):
        for array in part or ():
            array.flags.writeable = False
    for array in (data.y_train, data.y_val, data.y_test):
        if array is not None:
            array.flags.writeable = False
    return data


def load_data(cfg: Mapping[str, Any], dtype: str | None = None, *, reuse: bool = False):
    """The data set of ``cfg["data"]`` in the run's dtype, with the targets its model needs:
    one-hot, or a 0/1 column for a sigmoid output on a two-class set (see build.binary_targets).

    ``reuse`` (sweep jobs): return the arrays of the previous call in this process if it asked
    for the same data set, options, dtype and seed (the same arrays ``load`` would make again),
    read-only; otherwise load and keep these instead, with what another seed can use again
    (``load(reuse=True)``: the samples read, and their scaling where it ignores the split).
    """
    from nnexp.build import binary_targets
    from nnexp.data import load

    # (augment applies to training batches in fit, not to what the loader reads)
    options = {k: v for k, v in cfg["data"].items() if k not in ("name", "augment")}
    name, dtype = cfg["data"]["name"], dtype or cfg["dtype"]
    if reuse:   # the targets depend on the model's output too (binary_targets)
        key = json.dumps([name, dtype, cfg["seed"], cfg["model"]["output"], options], sort_keys=True,
                         default=str)
        if key in _sweep_data:
            return _sweep_data[key]
        _sweep_data.clear()   # first: its arrays can then take this job's (nnexp.data.kept)
    data = load(name, dtype=dtype, targets="one_hot", seed=cfg["seed"], reuse=reuse, **options)
    if binary_targets(cfg, data.n_classes):
        # two-class sets are small and embedded: loading again costs milliseconds
        data = load(name, dtype=dtype, targets="binary", seed=cfg["seed"], reuse=reuse, **options)
    if reuse:
        _sweep_data[key] = _read_only(data)
    return data


def open_experiment(cfg: Mapping[str, Any], experiment: str | None = None):
    """The tracking store of ``cfg`` and its experiment (by default named after the data set)."""
    from nnexp import tracking

    uri = tracking.resolve_uri(cfg["tracking"].get("uri"))
    name = experiment or cfg["tracking"].get("experiment") or cfg["data"]["name"]
    return tracking.open_store(uri, name)


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Identifies what a run computes: the resolved config without the keys that only change
    how it is shown or recorded (progress bar, resume switch, run name)."""
    relevant = {k: v for k, v in flatten(cfg).items() if k not in UNHASHED_KEYS}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:24]


def find_finished_run(store, key: str) -> RunResult | None:
    """The latest FINISHED run of this experiment with config hash ``key``, as a SKIPPED result."""
    runs = store.backend.find_runs([store.experiment_id], tags={TAG_CONFIG_HASH: key}, status="FINISHED",
                                   limit=1)
    if not runs:
        return None
    found = runs[0]
    return RunResult(found.run_id, "SKIPPED", found.tags.get("nnexp.stop_reason", "completed"),
                     dict(found.metrics), store.experiment_name, store.uri)


# Signals that end a training run as KILLED besides SIGINT: a scheduler's SIGTERM, and the
# SIGHUP of a closed terminal or SSH session (by default it would kill the process outright
# and leave the run RUNNING).
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _install_sigterm_handler():
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while a run trains; returns the old
    handlers (None outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    from nnexp.sweep.signals import REASONS, note

    def handler(signum, frame):
        note(signum)
        raise Terminated(REASONS[signum], signum)

    return {signum: signal.signal(signum, handler) for signum in ENDING_SIGNALS}


def run(cfg: Mapping[str, Any], *, overrides: Sequence[str] = (), choices: Mapping[str, str] | None = None,
        parent_run_id: str | None = None, experiment: str | None = None,
        show_progress: bool | None = None, store=None,
        run_tags: Mapping[str, str] | None = None) -> RunResult:
    """Validate ``cfg``, train the model it describes and record everything in MLflow.

    Bad input raises :class:`~nnexp.errors.NnexpError` before any MLflow run exists. Once the
    run exists it always ends: FINISHED (completed or early-stopped), FAILED (diverged, with its
    curves kept, or any error, with the message in the ``nnexp.error`` tag) or KILLED (Ctrl-C or
    SIGTERM, with every epoch logged so far); the exception, if any, is re-raised with the run's
    id in its ``nnexp_run_id`` attribute.

    ``choices`` are the config groups' chosen options (``{"model": "small", ...}``), logged as
    params ``group.<name>`` so that runs can be compared by preset;
    ``experiment`` overrides the config's (a sweep files every job under its parent's);
    ``show_progress`` None shows a bar only on a terminal;
    ``store`` an opened tracking store to use instead of the config's (a sweep's job passes its
    parent's, see :mod:`nnexp.sweep.job`), ``tags`` more tags for the run.
    With ``tracking.resume`` true, a config that already has a FINISHED run is not trained
    again: the earlier run's result is returned with status SKIPPED.
    """
    validate(cfg)
    from nnexp.tracking import model_helper

    logs_model = cfg["mode"] == "train" and cfg["tracking"]["log_model"] and parent_run_id is None
    if not logs_model:   # (a sweep's jobs: the sweep took or stopped it before they started)
        model_helper.stop_early()   # started by `python -m nnexp` for a model this run will not log
    if cfg["mode"] == "gradcheck":
        from nnexp.experiment.gradcheck import run_gradcheck

        return run_gradcheck(cfg, overrides=overrides, parent_run_id=parent_run_id,
                             experiment=experiment, store=store)

    # -- data and model: everything that can fail on bad input happens before the run exists --
    from nnexp import build, tracking
    from nnexp.core import fit

    data = load_data(cfg, reuse=parent_run_id is not None)
    net = build.build_model(cfg, data.n_inputs, data.n_outputs, n_train=len(data.y_train))
    optimizer = build.build_optimizer(cfg)
    augment = build.build_augment(cfg, data)
    early_stopping = build.build_early_stopping(cfg)
    store = store or open_experiment(cfg, experiment)
    key = config_hash(cfg)
    params = flatten(cfg) | {f"group.{k}": v for k, v in (choices or {}).items()}
    for name in params:   # MLflow's naming rules, checked before a run exists (both writers)
        tracking.check_key("param", name)
    if cfg["tracking"]["resume"]:
        earlier = find_finished_run(store, key)
        if earlier is not None:
            return earlier
    # the helper `python -m nnexp` started opens MLflow's store while this trains
    helper = model_helper.take_early(store.uri) if logs_model else None

    # -- the run: from here on, every way out ends it -------------------------------------------
    tags = {"nnexp.version": nnexp.__version__, "nnexp.mode": "train",
            "nnexp.data": cfg["data"]["name"], "nnexp.overrides": " ".join(overrides) or "(none)",
            TAG_CONFIG_HASH: key, "nnexp.blas_threads": _blas_threads(), **(run_tags or {})}
    commit = _git_commit()
    if commit:
        tags["nnexp.git_commit"] = commit
    mlflow_run = tracking.TrackedRun.start(store, run_name(cfg), tags=tags, parent_run_id=parent_run_id)
    old_handler = _install_sigterm_handler()
    try:
        mlflow_run.log_params(params)
        from nnexp.progress import ProgressBar

        diagnostics = _diagnostics(cfg, net, data)
        with ProgressBar(cfg["epochs"], run_name(cfg), enabled=show_progress) as bar:
            def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
                if diagnostics is not None:   # the layer statistics go in the same write
                    metrics = diagnostics.add(epoch, metrics)
                mlflow_run.log_epoch(epoch, metrics)
                bar.epoch_done(epoch, metrics)

            history = fit(net, optimizer, train=data.train, val=data.val, epochs=cfg["epochs"],
                          batch_size=cfg["batch_size"], early_stopping=early_stopping,
                          seed=cfg["seed"], on_epoch=on_epoch, progress=bar.batch_progress,
                          on_step=diagnostics.hook if diagnostics is not None else None,
                          augment=augment)

        # The test scores, weights.npz and the logged model are of one set of weights: the best
        # epoch's, or the last epoch's with early_stopping.restore_best=false (a diverged run's
        # are the best epoch's either way: fit restores them).
        if history.best_params is not None and cfg["early_stopping"].get("restore_best", True):
            for live, best in zip(net.params, history.best_params):
                live[...] = best
            for name, live in net.buffers().items():   # batch norm's running statistics
                live[...] = history.best_buffers[name]
        metrics, predicted = final_metrics(net, data, history)
        mlflow_run.log_metrics(metrics)
        mlflow_run.set_tags({tracking.TAG_STOP_REASON: history.stop_reason})
        from nnexp.report.run_figures import RunNumbers, read_confusion

        numbers = RunNumbers(run_name(cfg), history.rows(), history.best_epoch,
                             diagnostics.series if diagnostics is not None else {})
        if cfg["diagnostics"]["enabled"]:   # test_acc/<class> and the confusion matrix
            from nnexp.report.run_report import class_report

            class_metrics, confusion = class_report(net, data, predicted)
            mlflow_run.log_metrics(class_metrics)
            mlflow_run.set_tags(confusion)
            numbers.confusion = read_confusion(confusion)
            metrics |= class_metrics
        # a sweep's child keeps the numbers its figures are drawn from, and what its model is
        # made of; the sweep draws its best child's figures and logs its model
        # (nnexp/report/run_figures.py explains why)
        draw_now = parent_run_id is None or cfg["tracking"]["child_figures"] == "all"
        model = _log_artifacts(mlflow_run, cfg, net, data, numbers if draw_now else None,
                               log_model=logs_model, helper=helper)
        diverged = history.stop_reason == "diverged"
        status = "FAILED" if diverged else "FINISHED"
        from nnexp.sweep.signals import raise_if_swallowed

        raise_if_swallowed()   # a Ctrl-C that a library swallowed still ends the run KILLED
        mlflow_run.end(status, error=f"diverged at epoch {history.epochs_run}: non-finite loss "
                                     f"(try a smaller lr)" if diverged else None)
        predict = model.predict_command(store.uri, tracking.default_uri()) if model else ""
        return RunResult(mlflow_run.run_id, status, history.stop_reason, metrics,
                         store.experiment_name, store.uri, predict)
    except BaseException as error:
        # an interrupt a library's clean-up turned into another error is still an interrupt
        interrupt = interrupt_behind(error)
        if interrupt is not None:
            reason = str(interrupt) or "interrupted by SIGINT (Ctrl-C)"
            with tracking.interrupts_held():  # a second Ctrl-C must not leave the run RUNNING
                mlflow_run.set_tags({tracking.TAG_STOP_REASON: "killed"})
                mlflow_run.end("KILLED", error=reason)
            interrupt.nnexp_run_id = mlflow_run.run_id
            if interrupt is error:
                raise
            raise interrupt from error
        mlflow_run.end("FAILED", error=f"{type(error).__name__}: {error}")
        error.nnexp_run_id = mlflow_run.run_id
        raise
    finally:
        for signum, handler in (old_handler or {}).items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if old_handler is not None:   # the run's handlers are down: what they noted was this run's
            from nnexp.sweep.signals import forget

            forget()


def final_metrics(net, data, history):
    """test_loss, test_acc, best_val_loss, best_epoch and epochs_run, as MLflow metrics, and the
    test rows' predicted labels (the per-class report reads them: one pass over the test set)."""
    import numpy as np

    predicted = np.empty(len(data.test[0]), np.intp)
    test_loss, test_acc = net.evaluate(*data.test, predicted=predicted)
    best_val = history.best("val_loss") if history.val_loss and history.best_epoch else math.nan
    metrics = {"test_loss": float(test_loss), "test_acc": float(test_acc), "best_val_loss": float(best_val),
               "best_epoch": float(history.best_epoch or 0), "epochs_run": float(history.epochs_run)}
    return metrics, predicted


def _diagnostics(cfg, net, data):
    """The run's per-layer statistics (:mod:`nnexp.report.run_report`), None with diagnostics=off."""
    if not cfg["diagnostics"]["enabled"]:
        return None
    from nnexp.report.run_report import EpochDiagnostics, every_for

    return EpochDiagnostics(net, every_for(cfg["diagnostics"], data.train[0].shape[0], cfg["batch_size"]))


def _log_artifacts(mlflow_run, cfg, net, data, numbers, *, log_model: bool, helper=None):
    """config.yaml, weights.npz, the run's figures (``numbers``: what they are drawn from, or
    None to leave them to the sweep) and (optionally) the LoggedModel, which takes raw
    features (:func:`nnexp.tracking.model.log_model`), logged by ``helper`` (a
    :class:`~nnexp.tracking.model_helper.ModelHelper`) if it can, else here; returns the
    LoggedModel or None."""
    import yaml

    from nnexp.report import run_figures

    with tempfile.TemporaryDirectory(prefix="nnexp-") as tmp:
        folder = Path(tmp)
        (folder / "config.yaml").write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
        if numbers is not None and run_figures.draw(numbers, folder):
            mlflow_run.set_tags({run_figures.TAG_FIGURES: "drawn"})
        weights = folder / "weights.npz"
        net.save_npz(weights)
        from nnexp.tracking.model import log_model as log_logged_model
        from nnexp.tracking.model import save_model_inputs

        if not log_model:   # the model can still be logged later (tracking.model.log_model_of_run)
            save_model_inputs(folder, data.scaler, data.raw_example)
        mlflow_run.log_artifacts(folder)
        if not log_model:
            return None

        mlflow_run.flush()   # the model records the run's metrics at log time
        model = _model_by_helper(helper, mlflow_run.run_id, weights, data) if helper is not None else None
        return model or log_logged_model(mlflow_run.store.uri, mlflow_run.run_id, weights, data.scaler,
                                         data.raw_example)


def _model_by_helper(helper, run_id: str, weights: Path, data):
    """The LoggedModel of run ``run_id`` logged by the model helper from a folder of its inputs,
    or None if the helper failed or is gone (the caller then logs it, and reports any error)."""
    import shutil

    from nnexp.tracking.model import WEIGHTS, save_model_inputs

    try:
        with tempfile.TemporaryDirectory(prefix="nnexp-model-inputs-") as tmp:
            inputs = Path(tmp)
            shutil.copyfile(weights, inputs / WEIGHTS)
            save_model_inputs(inputs, data.scaler, data.raw_example)
            return helper.answer() if helper.ask(run_id, inputs) else None
    except Exception as error:  # noqa: BLE001 - the helper is an optimisation
        raise_hidden_interrupt(error)
        return None
    finally:
        helper.stop()
