"""The command line: Hydra composes the config, :func:`nnexp.app.run` does the rest.

This is the only module that imports Hydra (besides the sweep callback, which Hydra itself
loads by name). It converts the composed config to a plain dict, reads the overrides and
multirun state from Hydra, and returns the sweep objective (the best validation loss).
"""

from __future__ import annotations

import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

@hydra.main(version_base="1.3", config_path="pkg://nnexp.conf", config_name="config")
def hydra_app(cfg: DictConfig) -> float:
    """Hydra task function: one job of a run or a sweep; returns the objective to minimise."""
    from nnexp import outcome

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, hydra_cfg)
    from nnexp import app

    try:
        result = app.run(_plain(cfg), overrides=list(hydra_cfg.overrides.task),
                         choices=_choices(hydra_cfg), show_progress=None if cfg.get("progress") else False)
    except Exception as error:  # noqa: BLE001 - re-raised by __main__ once Hydra has returned
        outcome.current().error = error
        return math.inf
    outcome.current().result = result
    print(summary_line(result), flush=True)
    return result.objective


def _plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def _choices(hydra_cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each of our config groups (Hydra's own groups left out)."""
    return {str(group): str(option) for group, option in hydra_cfg.runtime.choices.items()
            if not str(group).startswith("hydra/") and option is not None}


def _sweep_job(cfg: DictConfig, hydra_cfg: DictConfig) -> float:
    """One job of a sweep (see :mod:`nnexp.sweep.job`): never raises for a failed run, so the
    other jobs and the sweep's summary go on."""
    from nnexp.sweep.job import run_job

    overrides = list(hydra_cfg.overrides.task)
    # a bar per job only when jobs run one after another in this terminal
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    show = None if cfg.get("progress") and n_jobs in (None, 1) else False
    objective, report = run_job(_plain(cfg), job=hydra_cfg.job.num, overrides=overrides,
                                choices=_choices(hydra_cfg), show_progress=show)
    failed = report.startswith("nnexp: ")
    print(report, file=sys.stderr if failed else sys.stdout, flush=True)
    return objective


def summary_line(result, multirun: bool = False) -> str:
    """One line at the end of a run: the scores, the status, the run id and how to look at it."""
    m = result.metrics
    if result.stop_reason == "gradcheck":
        scores = f"gradcheck max relative error {m['gradcheck_max']:.2e}"
    else:
        scores = (f"test_acc={m['test_acc']:.4f} test_loss={m['test_loss']:.4f} "
                  f"best_epoch={int(m['best_epoch'])}/{int(m['epochs_run'])} ({result.stop_reason})")
    where = f"run {result.run_id} [{result.status}] in experiment '{result.experiment}'"
    hint = "" if multirun else " · compare runs: python -m nnexp.ui"
    predict = getattr(result, "predict_command", "")
    model = f"\npredict with its model: {predict}" if predict and not multirun else ""
    return f"{scores} · {where}{hint}{model}"
