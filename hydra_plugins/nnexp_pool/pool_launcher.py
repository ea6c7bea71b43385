"""``hydra/launcher=pool``: a sweep's jobs on ``n_jobs`` local worker processes.

Like Hydra's joblib launcher (one job per worker at a time, each job composed and run in its
worker exactly as Hydra's ``run_job`` runs it), but a worker that dies (SIGKILL, the OOM
killer) costs only its own job: that job is recorded FAILED in the sweep's store, a new
worker takes its place, and the remaining jobs run (:mod:`nnexp.sweep.pool`). Hydra discovers
this module because it lives in the ``hydra_plugins`` namespace; it imports nothing of nnexp
until a sweep is launched, since Hydra imports every plugin at start-up.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


@dataclass
class PoolLauncherConf:
    _target_: str = "hydra_plugins.nnexp_pool.pool_launcher.PoolLauncher"
    # worker processes; -1: one per CPU (os.cpu_count())
    n_jobs: int = -1


ConfigStore.instance().store(group="hydra/launcher", name="pool", node=PoolLauncherConf,
                             provider="nnexp")


def execute_job(index: int, overrides: Sequence[str], hydra_context: HydraContext,
                config: DictConfig, task_function: TaskFunction,
                singleton_state: dict[Any, Any], composed: DictConfig | None = None) -> JobReturn:
    """One job in a worker: its config (``composed`` by the sweeper's check, or composed here
    from the sweep's), then Hydra's ``run_job``."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = (composed if composed is not None
                    else hydra_context.config_loader.load_sweep_config(config, list(overrides)))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{index}"
        sweep_config.hydra.job.num = index
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


class PoolLauncher(Launcher):
    def __init__(self, n_jobs: int = -1) -> None:
        from nnexp.launchers import POOL_LAUNCHER, worker_count_problem

        problem = worker_count_problem(POOL_LAUNCHER, n_jobs)
        if problem:
            raise ValueError(problem)
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def workers(self) -> int:
        from nnexp.launchers import worker_count

        return worker_count(self.n_jobs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from pathlib import Path

        from nnexp.sweep.pool import Lost, run_tasks

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        workers = self.workers()
        log.info(f"Pool({workers} workers) is launching {len(job_overrides)} jobs")
        log.info(f"Launching jobs, sweep output dir : {self.config.hydra.sweep.dir}")
        for index, overrides in enumerate(job_overrides):
            log.info(f"\t#{initial_job_idx + index} : {' '.join(filter_overrides(overrides))}")
        state = Singleton.get_state()
        # a job the sweeper composed for its check travels composed (0.6 ms to pickle, against
        # 55 ms to compose again in the worker): see nnexp/sweep/compose_once.py
        take = getattr(self.hydra_context.config_loader, "take", lambda config, overrides: None)
        tasks = [(execute_job, (initial_job_idx + index, list(overrides), self.hydra_context,
                                self.config, self.task_function, state, take(self.config, overrides)))
                 for index, overrides in enumerate(job_overrides)]

        def lost(index: int, what: Lost) -> None:
            from nnexp.sweep.job import record_lost_job

            record_lost_job(self.config.hydra.overrides.hydra, initial_job_idx + index,
                            list(job_overrides[index]), what.pid, what.cause)

        from nnexp.sweep.workers import children_draw_figures, summary_preload

        results = run_tasks(tasks, workers, on_lost=lost, figures=children_draw_figures(self.config),
                            while_waiting=summary_preload)
        return [result if not isinstance(result, Lost) else
                JobReturn(overrides=list(job_overrides[index]), status=JobStatus.COMPLETED,
                          _return_value=math.inf)       # the sweep goes on; the store says FAILED
                for index, result in enumerate(results)]
