"""The sweep's driver side: :class:`SweepCallback`, registered in ``conf/config.yaml``.

Before any job is composed it refuses sweeps that would split across stores or experiments,
or that cannot compose (:mod:`nnexp.sweep.preflight`); then it opens the store, creates (or, on
resume, reopens) the parent run, gives the sweep a folder of its own, and appends the job
context (:mod:`nnexp.sweep.context`) to the overrides every job is composed from. When the
sweep ends it writes the summary read back from the store (:mod:`nnexp.sweep.summary`) into the
parent and ends it.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from nnexp.errors import interrupt_behind, raise_hidden_interrupt
from nnexp.sweep import identity, preflight, tags, workers
from nnexp.sweep.context import JobContext, _quoted, absolute_uri
from nnexp.sweep.signals import InterruptHandlers, raise_if_swallowed
from nnexp.sweep.streams import tolerate_closed_stdout


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
            # a Ctrl-C that a library's failing clean-up turned into this error stays a Ctrl-C
            # (re-raising the error later would replace the context that still names it)
            raise_hidden_interrupt(error)
            raise SweepAborted(error) from error

    return guarded


def _own_folder(config: DictConfig) -> None:
    """Give the sweep a folder nobody else uses: Hydra's default ``multirun/<date>/<time>`` is
    shared by sweeps started in the same second, so a ``-2``, ``-3``... is added to the one that
    comes second (``mkdir`` is atomic). A folder the user chose (``hydra.sweep.dir=...``) is kept."""
    if any(str(o).startswith("hydra.sweep.dir=") for o in config.hydra.overrides.hydra):
        return
    base = Path(str(config.hydra.sweep.dir))
    base.parent.mkdir(parents=True, exist_ok=True)
    folder, n = base, 1
    while True:
        try:
            folder.mkdir()
            break
        except FileExistsError:
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
    if folder != base:
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = str(folder)
        _append_overrides(config, [f"hydra.sweep.dir='{_quoted(str(folder))}'"])


def _append_overrides(config: DictConfig, overrides: list[str]) -> None:
    """Overrides every job of this sweep is composed with (Hydra's ``load_sweep_config`` starts
    each job from ``hydra.overrides.hydra``)."""
    with read_write(config.hydra.overrides), open_dict(config.hydra.overrides):
        config.hydra.overrides.hydra = [*config.hydra.overrides.hydra, *overrides]


def _start_parent(store, config: DictConfig, key: str, invocation: str):
    from nnexp.tracking import TrackedRun

    keys = identity.swept_keys(config)
    recorded = identity.recorded_overrides(config)
    name = (OmegaConf.select(config, "tracking.run_name")
            or f"sweep-{'-'.join(keys) or 'multirun'}-{time.strftime('%Y%m%d-%H%M%S')}")
    parent = TrackedRun.start(store, name, tags={
        tags.TAG_SWEEP: "parent", tags.TAG_SWEEP_KEY: key, tags.TAG_INVOCATION: invocation,
        tags.TAG_OVERRIDES: " ".join(recorded) or "(none)", tags.TAG_SWEPT: ",".join(keys),
        "nnexp.sweeper": str(OmegaConf.select(config, "hydra.sweeper._target_")),
        "nnexp.launcher": str(OmegaConf.select(config, "hydra.launcher._target_")),
        "nnexp.sweep_dir": str(Path(config.hydra.sweep.dir).resolve()),
    })
    parent.set_tags({tags.TAG_SWEEP_RUN: parent.run_id})
    params = OmegaConf.select(config, "hydra.sweeper.params")
    parent.log_params({"sweep.overrides": " ".join(recorded),
                       **({f"sweep.params.{k}": v for k, v in OmegaConf.to_container(params).items()}
                          if params else {})})
    return parent


def _reopen_parent(store, key: str, invocation: str):
    """The latest parent run of the same sweep, RUNNING again and owned by this driver (its
    process tags are this process's, so its jobs do not take it for a stale run); an error the
    previous driver's death left on it is moved to ``nnexp.previous_error``."""
    import os
    import socket

    from nnexp.tracking import TAG_ERROR, TrackedRun
    from nnexp.tracking.store import TAG_HOST, TAG_PID

    runs = store.backend.find_runs([store.experiment_id], tags={tags.TAG_SWEEP_KEY: key,
                                                                tags.TAG_SWEEP: "parent"}, limit=1)
    if not runs:
        return None
    found = runs[0]
    moved = {"nnexp.previous_error": found.tags[TAG_ERROR], TAG_ERROR: ""} if found.tags.get(TAG_ERROR) else {}
    store.backend.log_batch(found.run_id, tags={TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname(),
                                                tags.TAG_INVOCATION: invocation, **moved})
    store.backend.set_status(found.run_id, "RUNNING", end=False)
    return TrackedRun.attach(store, found.run_id)


# Ray's exit hook waits this long for its workers' last log lines before it disconnects
RAY_LOG_GRACE_SECONDS = 0.5


def _leave_ray(jobs_returned: float) -> None:
    """Disconnect from Ray (``ray.shutdown()``) once the sweep is summarised, if a Ray launcher
    connected this process.

    Left to Ray's own exit hook, the disconnection sleeps 0.5 s first, so that the log lines
    the workers printed last reach this terminal, then takes 0.3-0.4 s: 0.93 s of a sweep's end
    on a running cluster (py-spy). Called here, the sleep is only what is left of those 0.5 s
    since the jobs returned (nothing, after a summary's plots), and the hook then finds nothing
    to do. A local Ray (``hydra/launcher=ray``) is stopped by the same call, as at exit."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return
    time.sleep(max(0.0, RAY_LOG_GRACE_SECONDS - (time.monotonic() - jobs_returned)))
    ray.shutdown()


class SweepCallback(Callback):
    """Parent MLflow run around a multirun; a no-op for single runs."""

    def __init__(self) -> None:
        self.store = self.parent = self.context = self.handlers = self.model_helper = None

    def __getstate__(self) -> dict:
        # Launchers pickle Hydra's context, callbacks included, to every job: the driver's open
        # store and parent stay here (a job learns its parent from its JobContext).
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    @_abort_on_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from nnexp import outcome, tracking

        out = outcome.current()
        out.summary = None
        identity.check_sweepable(config)
        tolerate_closed_stdout()
        workers.limit_blas_threads(config)  # before any worker process starts
        workers.warm_up_workers(config)  # not waited for: see warm_up_workers
        # before the store, the parent or a folder exist; after the warm-up, so that the workers
        # start 0.05 s sooner (a refused sweep's warmed workers leave with this process)
        preflight.check_sweep_composes(config)
        uri = absolute_uri(tracking.resolve_uri(OmegaConf.select(config, "tracking.uri")), Path.cwd())
        experiment = identity.experiment_name(config)
        self.store = store = tracking.open_store(uri, experiment)
        key, invocation = identity.sweep_key(config), uuid.uuid4().hex[:12]
        _own_folder(config)
        parent = _reopen_parent(store, key, invocation) if OmegaConf.select(config, "tracking.resume") else None
        self.parent = out.parent = parent or _start_parent(store, config, key, invocation)
        root = OmegaConf.select(config, "data.root", default=None)
        self.context = JobContext.for_driver(self.parent.run_id, experiment, uri, invocation, data_root=root)
        _append_overrides(config, self.context.overrides())
        stop = workers.stop_workers if workers.has_local_workers(config) else None
        self.handlers = InterruptHandlers(before_raise=stop).install()
        self.model_helper = None
        from nnexp.tracking import model_helper

        if OmegaConf.select(config, "tracking.log_model", default=True):
            import atexit

            self.model_helper = model_helper.ModelHelper.start(uri)   # warms up MLflow while the jobs train
            if self.model_helper is not None:
                atexit.register(self.model_helper.stop)   # an interrupted sweep stops it too
        else:
            model_helper.stop_early()
        print(f"sweep: parent run {self.parent.run_id} in experiment '{experiment}' ({uri})", flush=True)

    @_abort_on_error
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from nnexp import outcome
        from nnexp.sweep import summary

        jobs_returned = time.monotonic()
        if self.handlers is not None:
            self.handlers.restore()
        out, parent = outcome.current(), self.parent
        if parent is None:
            return
        # the jobs are over (no worker to stop), but a signal during the summary must still end
        # the parent KILLED: SIGTERM's and SIGHUP's default actions would leave it RUNNING
        summary_handlers = InterruptHandlers().install()
        interrupted = False
        try:
            helper = self.model_helper

            def ask_for_model(best) -> None:   # logged by the helper while the plots are drawn
                if helper is not None and summary.best_model_missing(parent, best):
                    helper.ask(best["run_id"])

            out.summary = summary.summarise_sweep(parent, self.context.invocation, identity.swept_keys(config),
                                                  on_best=ask_for_model)
            best, predict = out.summary["best"], None
            if best and OmegaConf.select(config, "tracking.child_figures", default="best") == "best":
                summary.draw_best_figures(parent, best)
            if best and OmegaConf.select(config, "tracking.log_model", default=True):
                predict = summary.log_best_model(parent, best, helper)   # once, for the best child only
            counts = out.summary["counts"]
            status = "FAILED" if counts["jobs"] and counts["failed"] == counts["jobs"] else "FINISHED"
            raise_if_swallowed()   # a Ctrl-C that a library swallowed still ends the sweep KILLED
            parent.end(status, error=None if status == "FINISHED" else "every job of the sweep failed")
            print(summary.format_counts(out.summary), flush=True)
            if predict:
                print(f"predict with the best child's model: {predict}", flush=True)
        except BaseException as error:
            # a Ctrl-C while the summary is drawn or logged: __main__ ends the parent KILLED and
            # says so, as for one during the jobs (it was ended FAILED, "summary failed")
            interrupted = interrupt_behind(error) is not None
            if not interrupted:
                parent.end("FAILED", error=f"summary failed: {type(error).__name__}: {error}")
            raise
        finally:
            summary_handlers.restore()
            if self.model_helper is not None:
                import atexit

                self.model_helper.stop()
                atexit.unregister(self.model_helper.stop)
            if not interrupted:
                out.parent = None
            sys.stdout.flush()
            _leave_ray(jobs_returned)
