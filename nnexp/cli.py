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

# The outcome of the last single run, read by __main__ to choose the exit status and to
# report an error in one line (raised inside Hydra, Hydra would log it on lines of its own).
last_result = None
last_error: Exception | None = None


@hydra.main(version_base="1.3", config_path="pkg://nnexp.conf", config_name="config")
def hydra_app(cfg: DictConfig) -> float:
    """Hydra task function: one job of a run or a sweep; returns the objective to minimise."""
    global last_result, last_error
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return _sweep_job(cfg, hydra_cfg)
    from nnexp import app

    try:
        result = app.run(_plain(cfg), overrides=list(hydra_cfg.overrides.task),
                         choices=_choices(hydra_cfg), show_progress=None if cfg.get("progress") else False)
    except Exception as error:  # noqa: BLE001 - re-raised by __main__ once Hydra has returned
        last_error = error
        return math.inf
    last_result = result
    print(summary_line(result), flush=True)
    return result.objective


def _plain(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def _choices(hydra_cfg: DictConfig) -> dict[str, str]:
    """The option chosen in each of our config groups (Hydra's own groups left out)."""
    return {str(group): str(option) for group, option in hydra_cfg.runtime.choices.items()
            if not str(group).startswith("hydra/") and option is not None}


def _sweep_job(cfg: DictConfig, hydra_cfg: DictConfig) -> float:
    """One job of a sweep: never raises for a failed run, so the other jobs and the sweep's
    summary go on; its outcome is written to ``nnexp_result.json`` in the job's folder."""
    from nnexp import app, sweep
    from nnexp.errors import one_line

    overrides = list(hydra_cfg.overrides.task)
    record = {"job": hydra_cfg.job.num, "overrides": overrides}
    # a bar per job only when jobs run one after another in this terminal
    n_jobs = OmegaConf.select(hydra_cfg, "launcher.n_jobs")
    show = None if cfg.get("progress") and n_jobs in (None, 1) else False
    try:
        parent = sweep.read_sweep_file(hydra_cfg.sweep.dir)
        result = app.run(_plain(cfg), overrides=overrides, choices=_choices(hydra_cfg), show_progress=show,
                         parent_run_id=parent.get("parent_run_id"), experiment=parent.get("experiment"))
    except Exception as error:  # noqa: BLE001 - recorded; the sweep goes on
        record.update(status="FAILED", stop_reason="error", error=one_line(error),
                      run_id=getattr(error, "nnexp_run_id", None), objective=math.inf)
        print(f"nnexp: job {hydra_cfg.job.num} ({' '.join(overrides)}) failed: {one_line(error)}",
              file=sys.stderr, flush=True)
    else:
        record.update(status=result.status, stop_reason=result.stop_reason, run_id=result.run_id,
                      objective=result.objective, metrics=result.metrics)
        print(f"job {hydra_cfg.job.num} ({' '.join(overrides)}): {summary_line(result, multirun=True)}",
              flush=True)
    sweep.write_job_result(hydra_cfg.runtime.output_dir, record)
    return record["objective"]


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
