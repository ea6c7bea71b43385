"""``hydra/sweeper=nnexp_basic``: Hydra's basic sweeper (grid of ``key=a,b`` overrides and
``hydra.sweeper.params``, ``max_batch_size``), whose batch check composes each job once for its
launcher instead of once for the check and again in the launcher.

Everything else is :class:`hydra._internal.core_plugins.basic_sweeper.BasicSweeper`'s: the same
options, the same order of jobs, the same errors before any job starts. Hydra imports every
plugin at start-up, so this module imports nothing of nnexp until a sweep is set up.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class ComposeOnceSweeperConf:
    _target_: str = "hydra_plugins.nnexp_sweeper.basic_sweeper.ComposeOnceSweeper"
    # jobs per batch (null: every job in one batch), as Hydra's basic sweeper
    max_batch_size: Optional[int] = None  # noqa: UP045 - OmegaConf reads the annotation
    # swept values as in `key=a,b` on the command line, e.g. {lr: "0.1,0.01"}
    params: Optional[dict[str, str]] = None  # noqa: UP045


ConfigStore.instance().store(group="hydra/sweeper", name="nnexp_basic", node=ComposeOnceSweeperConf,
                             provider="nnexp")


class ComposeOnceSweeper(BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        from nnexp.sweep.compose_once import ComposedOnce

        self.composed = ComposedOnce(hydra_context.config_loader)
        # the launcher gets the same context with the wrapped loader, so its request for a job's
        # config is answered with the one composed by the check below
        super().setup(hydra_context=HydraContext(config_loader=self.composed, callbacks=hydra_context.callbacks),
                      task_function=task_function, config=config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        self.composed.forget()   # the previous batch's, if its launcher composed elsewhere
        for overrides in batch:
            self.composed.compose_ahead(self.config, overrides)
