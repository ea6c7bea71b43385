"""Worker processes of parallel launchers (joblib, pool): one BLAS thread each, joblib's started
and warmed up early, and all stopped cleanly when the sweep is interrupted.

With the joblib launcher the worker processes are started, and import what a job needs (NumPy,
nnexp, matplotlib: about 1 s), while the driver is still opening the store and creating the
parent run (:func:`warm_up_workers`). On an interrupt the driver sends each worker SIGTERM and
waits for it (:func:`stop_workers`): the worker's job ends its run as KILLED with every epoch
logged, writes its record and leaves (:func:`nnexp.sweep.job.leave_worker`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import raise_hidden_interrupt

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# how long the driver waits for interrupted workers to close their runs before killing them
STOP_GRACE_SECONDS = 6.0


def limit_blas_threads(config: DictConfig) -> None:
    """With jobs in parallel processes, give each one BLAS thread (pool, joblib: ``n_jobs``) or
    as many as the CPUs it asks for (submitit, local or SLURM: ``cpus_per_task``), so that
    cores are not oversubscribed.

    The variables must be set before the workers start and import NumPy (a submitit job, local
    or under SLURM's default ``--export=ALL``, inherits them); this process's own NumPy is
    already loaded and keeps its threads (it does not train in a parallel sweep).
    """
    threads = None
    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs")
    if n_jobs is not None and n_jobs != 1:
        threads = 1
    elif "submitit" in str(OmegaConf.select(config, "hydra.launcher._target_") or ""):
        threads = OmegaConf.select(config, "hydra.launcher.cpus_per_task")
    if threads:
        for variable in BLAS_THREAD_VARIABLES:
            os.environ[variable] = str(threads)


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


def prepare_worker(figures: bool = True, data: dict | None = None) -> int:
    """Run in each worker before the jobs: import nnexp's run path and NumPy, and matplotlib if
    its jobs draw ``figures`` (``tracking.child_figures=all``; about 0.6 s of a worker's start
    otherwise spent for nothing), and load the jobs' ``data`` (:func:`jobs_data`), so that the
    worker's first job starts as fast as its later ones. (MLflow is not needed: jobs write to
    the store the parent has made through :mod:`nnexp.tracking.sqlite_backend`.)"""
    import nnexp.app
    import nnexp.build  # noqa: F401
    import nnexp.core  # noqa: F401
    import nnexp.progress  # noqa: F401
    import nnexp.sweep.job  # noqa: F401
    import nnexp.tracking  # noqa: F401

    if figures:
        import nnexp.plots

        nnexp.plots.preload()
    if data is not None:
        try:   # what another seed can use again stays in nnexp.data.kept
            nnexp.app.load_data(data, reuse=True)
        except Exception as error:  # noqa: BLE001 - the job itself reports what is wrong with its data
            raise_hidden_interrupt(error)
    return os.getpid()


def jobs_data(config: DictConfig) -> dict | None:
    """What :func:`nnexp.app.load_data` needs to load the data set every job of this sweep uses
    (the sweep's own ``data``, ``dtype`` and seed 0), or None when the jobs may differ in it
    (the sweep varies ``data``, ``dtype`` or an ``experiment`` preset) or it cannot be read."""
    from nnexp.sweep.identity import swept_keys

    varied = [key.lstrip("+~") for key in swept_keys(config)]
    if any(key == "dtype" or key.startswith(("data", "experiment")) for key in varied):
        return None
    try:
        return {"data": OmegaConf.to_container(config.data, resolve=True), "dtype": str(config.dtype),
                "seed": 0, "model": {"output": str(config.model.output)}}
    except Exception:  # noqa: BLE001 - an optimisation; the jobs load their data themselves
        return None


def summary_preload() -> None:
    """Import matplotlib (``nnexp.plots.preload``, about 0.3 s) in a driver whose jobs run in
    other processes, while it waits for them: the sweep's summary draws its plots without
    paying for the import at the end. Best effort."""
    try:
        import nnexp.plots

        nnexp.plots.preload()
    except Exception:  # noqa: BLE001, S110 - the summary imports it when it draws
        pass


def children_draw_figures(config: DictConfig) -> bool:
    """Whether every job of this sweep draws its own figures (``tracking.child_figures=all``)."""
    return OmegaConf.select(config, "tracking.child_figures", default="best") == "all"


def warm_up_workers(config: DictConfig) -> threading.Thread | None:
    """Start the parallel launcher's worker processes now, each running :func:`prepare_worker`.

    ``hydra/launcher=pool``: its workers are started here and taken over by the launcher
    (:func:`nnexp.sweep.pool.prestart`); returns None.

    joblib: in a background thread; returns the thread (its ``worker_pids`` are the warmed
    processes once it is done), or None for another launcher or one job at a time.

    Nothing waits for it: while the workers import, the parent creates the parent run and
    Hydra composes every job's config to validate the sweep (about 0.1 s a job). The
    launcher's own ``Parallel`` call, with the same arguments, reuses the same loky executor
    even while the warm-up call is still running, and its jobs queue behind the warm-up tasks.
    Best effort: if it fails, each worker imports what it needs in its first job instead.
    """
    from nnexp.launchers import POOL_LAUNCHER, worker_count

    figures, data = children_draw_figures(config), jobs_data(config)
    if OmegaConf.select(config, "hydra.launcher._target_") == POOL_LAUNCHER:
        from nnexp.sweep.pool import prestart

        prestart(worker_count(OmegaConf.select(config, "hydra.launcher.n_jobs")), figures, data)
        return None
    arguments = _joblib_arguments(config)
    if arguments is None:
        return None

    def warm() -> None:
        try:
            from joblib import Parallel, delayed, effective_n_jobs

            workers = effective_n_jobs(arguments.get("n_jobs") or 1)
            thread.worker_pids = set(Parallel(**arguments)(delayed(prepare_worker)(figures, data)
                                                          for _ in range(workers)))
            summary_preload()   # the driver waits on the launcher's own call from now on
        except Exception as error:  # noqa: BLE001 - an optimisation; the jobs still run without it
            print(f"sweep: workers not warmed up ({type(error).__name__}: {error})",
                  file=sys.stderr, flush=True)

    thread = threading.Thread(target=warm, name="nnexp-warm-up-workers", daemon=True)
    thread.worker_pids = set()
    thread.start()
    return thread


def is_joblib(config: DictConfig) -> bool:
    return "joblib" in str(OmegaConf.select(config, "hydra.launcher._target_") or "")


def has_local_workers(config: DictConfig) -> bool:
    """Whether the launcher runs jobs in worker processes of this driver (joblib, pool), which
    the driver stops on an interrupt (:func:`stop_workers`)."""
    from nnexp.launchers import POOL_LAUNCHER

    return is_joblib(config) or OmegaConf.select(config, "hydra.launcher._target_") == POOL_LAUNCHER


def _children(pid: int) -> list[tuple[int, str, str]]:
    """``(pid, state, command line)`` of the live child processes of ``pid`` (Linux ``/proc``;
    state ``T`` is a stopped process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), fields[0], command))
        except (OSError, ValueError, IndexError):
            continue   # gone meanwhile
    return found


def worker_pids() -> list[int]:
    """This driver's worker processes: joblib's (loky; its resource tracker left alone) and
    those of ``hydra/launcher=pool`` (:mod:`nnexp.sweep.pool`)."""
    from nnexp.sweep.pool import live_worker_pids

    pool = set(live_worker_pids())
    return [pid for pid, _, command in _children(os.getpid())
            if pid in pool or ("loky" in command and "resource_tracker" not in command)]


def stop_workers(grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGTERM every worker, wait up to ``grace`` seconds until each has closed its run and
    stopped itself (:func:`nnexp.sweep.job.leave_worker`) or left, then SIGKILL them all;
    returns the pids signalled.

    Why workers stop (SIGSTOP) rather than exit: loky's executor watches its workers, and the
    moment one exits it kills all the others, which may still be closing their runs (a run
    left RUNNING). A stopped process is not dead to loky; once every run is closed, the driver
    kills them together."""
    pids = worker_pids()
    for pid in pids:
        with _gone_ok():
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    busy = set(pids)
    while busy and time.monotonic() < deadline:
        busy &= {pid for pid, state, _ in _children(os.getpid()) if state != "T"}
        time.sleep(0.05)
    for pid in busy:
        print(f"sweep: worker {pid} did not stop within {grace:.0f} s; killed", file=sys.stderr, flush=True)
    for pid in pids:
        with _gone_ok():
            os.kill(pid, signal.SIGKILL)
    return pids


def parent_is_stopping_workers() -> bool:
    """Whether this process's parent is a sweep driver inside :func:`stop_workers`: the
    driver ignores SIGTERM from its first interrupt on (:class:`nnexp.sweep.signals.
    InterruptHandlers`), which ``/proc/<ppid>/status`` shows in its ``SigIgn`` mask."""
    try:
        status = Path(f"/proc/{os.getppid()}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


class _gone_ok:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is ProcessLookupError
