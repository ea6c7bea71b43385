"""What nnexp knows about Hydra's launchers: which ones may run a job on another machine.

:class:`StoreReachCallback` (registered in ``conf/config.yaml``) warns, before a sweep's jobs
start, when the launcher may run them elsewhere (Ray, SLURM) but the tracking store is a SQLite
file that only this folder reaches: a relative ``sqlite:///`` path, or no URI at all (the
default store under the working folder). A job on another node, or a Ray worker in the
raylet's folder, would write into a store of its own. The sweep still runs, since on a single
machine with a shared folder it works; the one line says what to use instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError, NnexpError

# Launcher classes (hydra.launcher._target_) whose jobs may run on another machine or in
# another working folder; submitit_local and joblib run them here, in this folder.
RAY_LAUNCHERS = (
    "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
    "hydra_plugins.hydra_ray_launcher.ray_aws_launcher.RayAWSLauncher",
)
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
REMOTE_LAUNCHERS = (*RAY_LAUNCHERS, SLURM_LAUNCHER)


def runs_elsewhere(launcher_target: str | None) -> bool:
    """True when jobs of this launcher class may run outside this process's folder or machine."""
    return launcher_target in REMOTE_LAUNCHERS


def local_only_store(uri: str | None) -> bool:
    """True for a store only this folder reaches: unset (the default) or a relative SQLite path.

    ``sqlite:///mlruns/mlflow.db`` is relative (three slashes, then the path);
    ``sqlite:////shared/mlflow.db`` is absolute and may be on a shared filesystem.
    """
    if not uri:
        return True
    return uri.startswith("sqlite:///") and not os.path.isabs(uri.removeprefix("sqlite:///"))


def reach_warning(launcher_choice: str, launcher_target: str | None, uri: str | None) -> str | None:
    """The one-line warning for this launcher and store, or None when the store is reachable."""
    if not runs_elsewhere(launcher_target) or not local_only_store(uri):
        return None
    store = uri or "the default sqlite:///mlruns/mlflow.db"
    return (f"nnexp: warning: hydra/launcher={launcher_choice} may run jobs on other machines or "
            f"folders, but the tracking store ({store}) is a SQLite file only this folder reaches: "
            f"use tracking.uri=http://<server>:5000 (a tracking server, README \"Team setup\") or "
            f"an absolute sqlite:////<shared filesystem>/mlflow.db")


POOL_LAUNCHER = "hydra_plugins.nnexp_pool.pool_launcher.PoolLauncher"
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def worker_count(n_jobs: int) -> int:
    """Worker processes of the pool launcher for ``n_jobs`` (-1: one per CPU)."""
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


def worker_count_problem(launcher_target: str | None, n_jobs: Any) -> str | None:
    """What is wrong with ``n_jobs`` for the pool or joblib launcher, or None."""
    whole = isinstance(n_jobs, int) and not isinstance(n_jobs, bool)
    if launcher_target == POOL_LAUNCHER and not (whole and (n_jobs >= 1 or n_jobs == -1)):
        return f"hydra.launcher.n_jobs must be a whole number >= 1, or -1 for one per CPU, got {n_jobs!r}"
    if launcher_target == JOBLIB_LAUNCHER and n_jobs is not None and not (whole and n_jobs != 0):
        return f"hydra.launcher.n_jobs must be a whole number other than 0 (-1: one per CPU), got {n_jobs!r}"
    return None


def check_workers(launcher_choice: str, launcher_target: str | None, n_jobs: Any) -> None:
    """Refuses a worker count the pool or joblib launcher cannot use, before any run is created
    (they would fail only once the sweep's parent run exists)."""
    problem = worker_count_problem(launcher_target, n_jobs)
    if problem:
        raise ConfigError(f"{problem} (hydra/launcher={launcher_choice})")


def check_engine(launcher_choice: str, launcher_target: str | None) -> None:
    """Refuses a SLURM sweep where SLURM's commands are missing, before any run is created.

    submitit would otherwise fail after the parent run exists, with a RuntimeError about ``srun``.
    """
    if launcher_target == SLURM_LAUNCHER:
        missing = [name for name in ("sbatch", "srun") if shutil.which(name) is None]
        if missing:
            raise ConfigError(f"hydra/launcher={launcher_choice} needs SLURM's {' and '.join(missing)} on "
                              f"PATH (run on a SLURM login node, or use hydra/launcher=submitit_local)")


# Each job's result line as nnexp.cli prints it ("job 3 (seed=3 ...): test_acc=..." or
# "nnexp: job 3 (...) failed: ...").
JOB_LINE = r"^(nnexp: )?job [0-9]+ \("


def keep_job_lines(launcher_target: str | None, environ=os.environ) -> None:
    """Keep Ray from folding the jobs' result lines into one.

    Ray's driver prints its workers' output with "log deduplication" on: lines that differ only
    in numbers are printed once and counted, and the count ("[repeated 6x across cluster]") comes
    with the next batch, which a sweep that has ended never prints. An 8-job sweep showed 2 of
    its 8 job lines. Ray reads ``RAY_DEDUP_LOGS_ALLOW_REGEX`` (lines it never folds) when it is
    imported, after this; a value the user set is kept."""
    if launcher_target in RAY_LAUNCHERS and "ray" not in sys.modules:
        environ.setdefault("RAY_DEDUP_LOGS_ALLOW_REGEX", JOB_LINE)


class StoreReachCallback(Callback):
    """Checks the engine and prints :func:`reach_warning` before a multirun's jobs are launched;
    keeps Ray from folding the job lines (:func:`keep_job_lines`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        target = OmegaConf.select(config, "hydra.launcher._target_")
        choice = OmegaConf.select(config, "hydra.runtime.choices")
        name = (choice or {}).get("hydra/launcher") or str(target).rsplit(".", 1)[-1]
        try:
            check_engine(str(name), target)
            check_workers(str(name), target, OmegaConf.select(config, "hydra.launcher.n_jobs"))
        except NnexpError as error:
            # Hydra turns a callback's exceptions into warnings and launches anyway; SystemExit
            # passes through, and this callback runs before the sweep's parent run is created.
            print(f"nnexp: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        keep_job_lines(target)
        uri = OmegaConf.select(config, "tracking.uri") or os.environ.get("MLFLOW_TRACKING_URI")
        message = reach_warning(str(name), target, uri)
        if message:
            print(message, file=sys.stderr, flush=True)
