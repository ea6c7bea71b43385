"""Sweeps: a Hydra multirun recorded as one parent MLflow run with a nested child per job.

:class:`SweepCallback` is registered in ``conf/config.yaml`` (``hydra.callbacks``). Before any
job starts it opens the store, creates the experiment and the parent run (so parallel jobs
never race on creating the database or the experiment) and hands the parent's id and the
experiment's name to the jobs in ``nnexp_sweep.json`` in the sweep folder, which every job can
read whichever process or launcher runs it. When the sweep ends it writes the summary
(:mod:`nnexp.summary`) into the parent and ends it.

With the joblib launcher the worker processes are started, and import what a job needs
(NumPy, nnexp, matplotlib: about 1 s), while the parent is still opening the store and
creating the parent run (:func:`warm_up_workers`).

Each job writes ``nnexp_result.json`` into its Hydra output folder, also when it fails before
its MLflow run exists (a bad value in one job of a sweep), so the summary can count it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

RESULT_FILE = "nnexp_result.json"
SWEEP_FILE = "nnexp_sweep.json"
TAG_SWEEP = "nnexp.sweep"
TAG_SWEEP_KEY = "nnexp.sweep_key"
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

# The summary of the last sweep of this process, read by __main__ for the exit status.
last_summary: dict[str, Any] | None = None
# The parent run while a sweep is under way, ended as KILLED by __main__ on Ctrl-C.
active_parent = None


def swept_keys(config: DictConfig) -> list[str]:
    """The config keys a sweep varies: ``a=1,2`` overrides and ``hydra.sweeper.params``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    parser = OverridesParser.create()
    for override in parser.parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():
            keys.append(override.get_key_element())
    params = OmegaConf.select(config, "hydra.sweeper.params")
    if params:
        keys.extend(str(key) for key in params.keys() if str(key) not in keys)
    return keys


def sweep_key(config: DictConfig) -> str:
    """Identifies "the same sweep": the command line's overrides and the sweep's parameters."""
    import hashlib

    params = OmegaConf.select(config, "hydra.sweeper.params")
    text = json.dumps({"overrides": sorted(config.hydra.overrides.task),
                       "params": OmegaConf.to_container(params) if params else None}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _limit_blas_threads(config: DictConfig) -> None:
    """With jobs in parallel processes, give each one BLAS thread so cores are not oversubscribed.

    The variables must be set before the workers start and import NumPy; this process's own
    NumPy is already loaded and keeps its threads (it does not train in a parallel sweep).
    """
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs")
    if n_jobs is not None and n_jobs != 1:
        for variable in BLAS_THREAD_VARIABLES:
            os.environ[variable] = "1"


def _joblib_arguments(config: DictConfig) -> dict[str, Any] | None:
    """The ``joblib.Parallel`` arguments Hydra's joblib launcher will use for this sweep, or None
    when another launcher runs it or jobs run one at a time.

    They must be exactly the launcher's: joblib reuses its worker processes only for a call with
    the same arguments.
    """
    launcher = OmegaConf.select(config, "hydra.launcher")
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return None
    arguments = OmegaConf.to_container(launcher, resolve=True)
    arguments.pop("_target_", None)
    if arguments.get("n_jobs") == 1:
        return None
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    arguments["backend"] = "loky"  # as the launcher does
    process_joblib_cfg(arguments)
    return arguments


def prepare_worker() -> int:
    """Run in each joblib worker before the jobs: import nnexp's run path, NumPy and matplotlib,
    so the worker's first job starts as fast as its later ones. (MLflow is not needed: jobs
    write to the store the parent has made through :mod:`nnexp.tracking.sqlite_backend`.)"""
    import nnexp.app  # noqa: F401
    import nnexp.build  # noqa: F401
    import nnexp.core  # noqa: F401
    import nnexp.plots
    import nnexp.progress  # noqa: F401
    import nnexp.tracking  # noqa: F401

    nnexp.plots.preload()
    return os.getpid()


def warm_up_workers(config: DictConfig) -> threading.Thread | None:
    """Start the joblib launcher's worker processes now, in a background thread, each running
    :func:`prepare_worker`; returns the thread (its ``worker_pids`` are the warmed processes
    once it is done), or None.

    Nothing waits for it: while the workers import, the parent creates the parent run and
    Hydra composes every job's config to validate the sweep (about 0.1 s a job). The
    launcher's own ``Parallel`` call, with the same arguments, reuses the same loky executor
    even while the warm-up call is still running, and its jobs queue behind the warm-up tasks.
    Best effort: if it fails, each worker imports what it needs in its first job instead.
    """
    arguments = _joblib_arguments(config)
    if arguments is None:
        return None

    def warm() -> None:
        try:
            from joblib import Parallel, delayed, effective_n_jobs

            workers = effective_n_jobs(arguments.get("n_jobs") or 1)
            thread.worker_pids = set(Parallel(**arguments)(delayed(prepare_worker)() for _ in range(workers)))
        except Exception as error:  # noqa: BLE001 - an optimisation; the jobs still run without it
            print(f"sweep: workers not warmed up ({type(error).__name__}: {error})",
                  file=sys.stderr, flush=True)

    thread = threading.Thread(target=warm, name="nnexp-warm-up-workers", daemon=True)
    thread.worker_pids = set()
    thread.start()
    return thread


def _write_json(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically: other processes may read it at any moment."""
    from nnexp.data.files import atomic_output

    with atomic_output(path) as f:
        f.write(json.dumps(record, default=str).encode())


def write_sweep_file(sweep_dir: str | Path, parent_run_id: str, experiment: str) -> None:
    """Tell the jobs their parent run and experiment."""
    folder = Path(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / SWEEP_FILE, {"parent_run_id": parent_run_id, "experiment": experiment})


def read_sweep_file(sweep_dir: str | Path) -> dict[str, str]:
    """``{"parent_run_id": ..., "experiment": ...}`` of the sweep in ``sweep_dir``; empty when
    the multirun has no parent (our callback was taken out of the config)."""
    try:
        return json.loads((Path(sweep_dir) / SWEEP_FILE).read_text())
    except FileNotFoundError:
        return {}


class SweepAborted(BaseException):
    """A sweep could not start or finish (e.g. the store cannot be opened).

    Hydra turns an ``Exception`` raised by a callback into a warning and carries on, which would
    launch every job without a parent; a ``BaseException`` gets through to ``__main__``, which
    reports ``error`` in one line.
    """

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _abort_on_error(hook):
    def guarded(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            hook(self, config, **kwargs)
        except Exception as error:  # noqa: BLE001 - re-raised past Hydra's callback guard
            raise SweepAborted(error) from error

    return guarded


class SweepCallback(Callback):
    """Parent MLflow run around a multirun; a no-op for single runs."""

    @_abort_on_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global active_parent, last_summary
        from nnexp import tracking

        last_summary = None
        _limit_blas_threads(config)  # before any worker process starts
        warm_up_workers(config)  # not waited for: see warm_up_workers
        base = OmegaConf.to_container(config, resolve=False)
        base.pop("hydra", None)
        tracking_cfg = base.get("tracking", {})
        uri = tracking.resolve_uri(tracking_cfg.get("uri"))
        experiment = tracking_cfg.get("experiment") or OmegaConf.select(config, "data.name")
        store = tracking.open_store(uri, experiment)
        keys = swept_keys(config)
        key = sweep_key(config)
        parent = None
        if OmegaConf.select(config, "tracking.resume"):
            parent = _reopen_parent(store, key)
        if parent is None:
            name = tracking_cfg.get("run_name") or f"sweep-{'-'.join(keys) or 'multirun'}-{time.strftime('%Y%m%d-%H%M%S')}"
            parent = tracking.TrackedRun.start(store, name, tags={
                TAG_SWEEP: "parent", TAG_SWEEP_KEY: key,
                "nnexp.overrides": " ".join(config.hydra.overrides.task) or "(none)",
                "nnexp.swept": ",".join(keys),
                "nnexp.sweeper": str(OmegaConf.select(config, "hydra.sweeper._target_")),
                "nnexp.launcher": str(OmegaConf.select(config, "hydra.launcher._target_")),
                "nnexp.sweep_dir": str(Path(config.hydra.sweep.dir).resolve()),
            })
            params = OmegaConf.select(config, "hydra.sweeper.params")
            parent.log_params({"sweep.overrides": " ".join(config.hydra.overrides.task),
                               **({f"sweep.params.{k}": v for k, v in OmegaConf.to_container(params).items()}
                                  if params else {})})
        active_parent = parent
        write_sweep_file(config.hydra.sweep.dir, parent.run_id, experiment)
        print(f"sweep: parent run {parent.run_id} in experiment '{experiment}' ({uri})", flush=True)

    @_abort_on_error
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global active_parent, last_summary
        from nnexp import summary

        parent = active_parent
        if parent is None:
            return
        try:
            last_summary = summary.summarise_sweep(parent, Path(config.hydra.sweep.dir), swept_keys(config))
            counts = last_summary["counts"]
            status = "FAILED" if counts["jobs"] and counts["failed"] == counts["jobs"] else "FINISHED"
            parent.end(status, error=None if status == "FINISHED" else "every job of the sweep failed")
            print(summary.format_counts(last_summary), flush=True)
        except BaseException as error:
            parent.end("FAILED", error=f"summary failed: {type(error).__name__}: {error}")
            raise
        finally:
            active_parent = None


def _reopen_parent(store, key: str):
    """The latest parent run of the same sweep, set RUNNING again so resumed children nest in it."""
    from nnexp.tracking import TrackedRun

    runs = store.backend.find_runs([store.experiment_id], tags={TAG_SWEEP_KEY: key}, limit=1)
    if not runs:
        return None
    store.backend.set_status(runs[0].run_id, "RUNNING", end=False)
    return TrackedRun.attach(store, runs[0].run_id)


def abort_active_sweep(status: str, reason: str) -> None:
    """End the parent run of an interrupted sweep (its jobs' runs end themselves)."""
    global active_parent
    if active_parent is not None:
        try:
            active_parent.end(status, error=reason)
        finally:
            active_parent = None


def write_job_result(output_dir: str | Path, record: dict[str, Any]) -> None:
    """Write one job's outcome (status, run id, objective, error) into its folder."""
    _write_json(Path(output_dir) / RESULT_FILE, record)


def read_job_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job's ``nnexp_result.json`` under the sweep folder, in job order."""
    records = []
    for path in sorted(Path(sweep_dir).glob(f"**/{RESULT_FILE}")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            print(f"sweep: unreadable job result {path}: {error}", file=sys.stderr)
    return records
