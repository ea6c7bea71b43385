"""One job of a sweep, wherever it runs: join the parent from the job's own context, train,
and record the job's outcome in the store.

Each job writes its record twice on the parent run, as the tag ``nnexp.job.<num>``: once
``RUNNING`` when it starts and once with its outcome (status, stop reason, run id, error) when
it ends, also when it fails before its own run exists (a bad value in one job). A record still
``RUNNING`` when the sweep ends is a job whose process died (SIGKILL, a lost node): the summary
counts it FAILED. Nothing goes to the sweep folder.

In a worker process that serves several jobs (joblib, Ray) an interrupt ends the run as KILLED,
writes the record and leaves the process at once (:func:`leave_worker`), so that a worker being
stopped never picks up the next queued job. A submitit job (SLURM, submitit_local) is a process
of its own: there the interrupt (``scancel`` sends SIGTERM, then SIGKILL after the cluster's
``KillWait``) makes the job *return*, so that submitit writes its result file. The driver
waits on that file, or else on ``sacct``, which a cluster without accounting cannot answer: a
job that left without a result would keep the driver waiting for ever.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from nnexp.sweep.context import JobContext
from nnexp.sweep.signals import InterruptHandlers
from nnexp.sweep.tags import JOB_RECORD_PREFIX, TAG_INVOCATION, TAG_JOB

MAX_ERROR = 1000   # characters of a job's error kept in its record (tags hold up to 8000)


def record_job(store, context: JobContext, job: int, record: Mapping[str, Any]) -> None:
    """Write ``record`` as the parent's tag ``nnexp.job.<job>``; a store that takes no writes
    for a while (a lock, a full disk) is waited for as a run's writes are
    (:class:`nnexp.tracking.outage.Retrier`: ``StoreUnavailable`` past the wait)."""
    from nnexp.tracking.outage import Retrier

    text = json.dumps({**record, "invocation": context.invocation}, default=str, sort_keys=True)
    Retrier(store.uri).call(lambda: store.backend.log_batch(context.parent_run_id,
                                                            tags={f"{JOB_RECORD_PREFIX}{job}": text}))


# The sweep's store as this process opened it, for its next jobs: opening checks the file, ends
# stale runs and writes pending replays, which a process needs once, not once a job.
_opened: dict[tuple[str, str], Any] = {}


def store_of(context: JobContext):
    """The store and experiment of ``context``, opened once per process."""
    from nnexp import tracking

    key = (context.tracking_uri, context.experiment)
    if key not in _opened:
        _opened[key] = tracking.open_store(*key)
    return _opened[key]


def read_job_records(tags: Mapping[str, str], invocation: str | None = None) -> dict[int, dict[str, Any]]:
    """The job records among a parent's tags, by job number (``invocation``: that call's only)."""
    records = {}
    for key, value in tags.items():
        number = key.removeprefix(JOB_RECORD_PREFIX)
        if not key.startswith(JOB_RECORD_PREFIX) or not number.isdigit():
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue
        if invocation is None or record.get("invocation") == invocation:
            records[int(number)] = record
    return dict(sorted(records.items()))


def record_lost_job(hydra_overrides, job: int, overrides: Sequence[str], pid: int, cause: str) -> None:
    """In the driver, for a job whose worker process died (``cause``: "killed by SIGKILL"):
    print one line and record the job FAILED unless the job recorded its own end (an
    interrupted worker writes KILLED before it leaves). Its run, if it had one, is ended
    FAILED by the summary (:func:`nnexp.tracking.store.mark_stale_runs_failed`)."""
    print(f"sweep: job {job} ({' '.join(overrides)}): its worker process {pid} {cause}; "
          f"the other jobs go on", file=sys.stderr, flush=True)
    context = JobContext.from_overrides(hydra_overrides)
    if context is None:
        return
    from nnexp.sweep.tags import TAG_SWEEP_RUN

    store = store_of(context)
    backend, experiments = store.backend, [store.experiment_id]
    (parent,) = backend.find_runs(experiments, tags={TAG_SWEEP_RUN: context.parent_run_id})
    own = read_job_records(parent.tags, context.invocation).get(job)
    if own is not None and own.get("status") != "RUNNING":
        return
    runs = backend.find_runs(experiments, tags={TAG_JOB: str(job), TAG_INVOCATION: context.invocation})
    record_job(store, context, job, {
        "job": job, "overrides": list(overrides), "pid": pid, "status": "FAILED",
        "stop_reason": "error", "run_id": runs[0].run_id if runs else None,
        "error": f"the job's worker process {pid} {cause}"})


def run_job(cfg: dict, *, job: int, overrides: Sequence[str], choices: Mapping[str, str],
            show_progress: bool | None) -> tuple[float, str]:
    """Run one job; returns its objective (best validation loss, +inf if none) and a one-line
    report for the terminal. Never raises for a failed run, so the other jobs go on; an
    interrupt is re-raised (in the driver), ends the worker process (joblib, Ray) or ends the
    job with an infinite objective (a submitit job: see the module docstring)."""
    from nnexp import app
    from nnexp.cli import summary_line

    context = JobContext.from_environ()
    if context is None:   # the sweep callback was taken out of the config: a plain run per job
        result = app.run(cfg, overrides=overrides, choices=choices, show_progress=show_progress)
        return result.objective, summary_line(result, multirun=True)
    if not in_submitit_job():
        return _joined_job(cfg, context, job, overrides, choices, show_progress)
    # submitit bypasses SIGTERM in its jobs: ours turns it into an interrupt from the first line
    handlers = InterruptHandlers().install()
    try:
        return _joined_job(cfg, context, job, overrides, choices, show_progress)
    except KeyboardInterrupt as interrupt:
        return math.inf, f"nnexp: job {job} ({' '.join(overrides)}) killed: {interrupt}"
    finally:
        handlers.restore()


def in_submitit_job() -> bool:
    """Whether this process is one submitit job (submitit exports ``SUBMITIT_EXECUTOR``)."""
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def _joined_job(cfg: dict, context: JobContext, job: int, overrides: Sequence[str],
                choices: Mapping[str, str], show_progress: bool | None) -> tuple[float, str]:
    """:func:`run_job` for a job of a sweep: its run nested in the context's parent."""
    from nnexp import app, tracking
    from nnexp.cli import summary_line
    from nnexp.errors import one_line

    if isinstance(cfg.get("data"), dict) and "root" in cfg["data"]:
        cfg["data"]["root"] = context.data_root_for(cfg["data"]["root"])
    store = store_of(context)
    base = {"job": job, "overrides": list(overrides), "pid": os.getpid()}
    record_job(store, context, job, {**base, "status": "RUNNING"})
    try:
        result = app.run(cfg, overrides=overrides, choices=choices, show_progress=show_progress,
                         parent_run_id=context.parent_run_id, store=store,
                         run_tags={TAG_JOB: str(job), TAG_INVOCATION: context.invocation})
    except KeyboardInterrupt as interrupt:
        with tracking.interrupts_held():
            record_job(store, context, job, {**base, "status": "KILLED", "stop_reason": "killed",
                                             "run_id": getattr(interrupt, "nnexp_run_id", None),
                                             "error": str(interrupt) or "interrupted"})
        if not context.in_driver() and not in_submitit_job():
            leave_worker(interrupt)
        raise
    except Exception as error:  # noqa: BLE001 - recorded; the sweep goes on
        message = one_line(error)
        record_job(store, context, job, {**base, "status": "FAILED", "stop_reason": "error",
                                         "run_id": getattr(error, "nnexp_run_id", None),
                                         "error": message[:MAX_ERROR]})
        return math.inf, f"nnexp: job {job} ({' '.join(overrides)}) failed: {message}"
    record_job(store, context, job, {**base, "status": result.status, "stop_reason": result.stop_reason,
                                     "run_id": result.run_id, "objective": result.objective,
                                     "config_hash": app.config_hash(cfg)})
    return result.objective, f"job {job} ({' '.join(overrides)}): {summary_line(result, multirun=True)}"


def leave_worker(interrupt: BaseException) -> None:
    """End this worker process now (its run and record are closed): 128 + the signal number.

    When the driver is stopping its workers (:func:`nnexp.sweep.workers.stop_workers`), the
    worker stops itself instead and the driver kills it: an exit would make loky kill the other
    workers while they may still be closing their runs."""
    from nnexp.outcome import EXIT_SIGNAL_BASE
    from nnexp.sweep.workers import parent_is_stopping_workers

    signum = getattr(interrupt, "signum", 2)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if parent_is_stopping_workers():
        os.kill(os.getpid(), signal.SIGSTOP)
    os._exit(EXIT_SIGNAL_BASE + signum)
