"""Compose each job of a sweep once: the config the sweeper validated is the one its job runs.

Hydra's sweepers check a batch before launching it by composing every job's config
(``Sweeper.validate_batch_is_legal``), and the launcher then composes each job again
(``ConfigLoader.load_sweep_config``), the same call with the same arguments. One composition of
nnexp's config takes about 0.055 s here, so the second one was 0.45 s of an 8-job sweep.

:class:`ComposedOnce` wraps Hydra's config loader. The sweeper asks it to compose a job ahead
(:meth:`ComposedOnce.compose_ahead`); the launcher's ``load_sweep_config`` for the same master
config and overrides then receives that config, once, and every other request goes to Hydra's
loader unchanged. Guards:

- a kept config is handed out at most once (the launcher writes ``hydra.job.id`` into it), and
  nobody else ever sees it;
- the key holds the master config's identity and its ``hydra.overrides.hydra`` as they were when
  the job was composed, so a changed master composes anew;
- at most :data:`KEEP_AT_MOST` configs are kept (a 10,000-job sweep composes the rest twice);
- pickled (joblib, Ray and submitit ship the loader to their workers), it keeps nothing.

``tests/sweep/test_compose_once.py`` compares what it hands out with Hydra's own composition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from omegaconf import DictConfig, OmegaConf

# configs kept between validation and launch; each is ~20 KB pickled, a few hundred KB as objects
KEEP_AT_MOST = 512


def _key(master_config: DictConfig, overrides: Sequence[str]) -> tuple:
    hydra_overrides = OmegaConf.to_container(master_config.hydra.overrides.hydra)
    return id(master_config), tuple(hydra_overrides), tuple(overrides)


class ComposedOnce(ConfigLoader):
    """Hydra's ``loader`` that answers a launcher's request for a job composed ahead with that
    config instead of composing it again; everything else is the loader's own."""

    def __init__(self, loader: ConfigLoader):
        self.loader = loader
        self._kept: dict[tuple, DictConfig] = {}

    def compose_ahead(self, master_config: DictConfig, overrides: Sequence[str]) -> None:
        """Compose the job of ``overrides`` now (raising as composition does) and keep it for the
        launcher's request."""
        config = self.loader.load_sweep_config(master_config, list(overrides))
        if len(self._kept) < KEEP_AT_MOST:
            self._kept[_key(master_config, overrides)] = config

    def forget(self) -> None:
        """Drop what no launcher asked for (a launcher that composes in its workers)."""
        self._kept.clear()

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        kept = self._kept.pop(_key(master_config, sweep_overrides), None)
        if kept is not None:
            return kept
        return self.loader.load_sweep_config(master_config, sweep_overrides)

    def take(self, master_config: DictConfig, overrides: Sequence[str]) -> DictConfig | None:
        """The config composed ahead for ``overrides``, handed out once, or None (a launcher that
        ships composed configs to its workers: :mod:`hydra_plugins.nnexp_pool`)."""
        return self._kept.pop(_key(master_config, overrides), None)

    # -- the rest of Hydra's ConfigLoader interface, unchanged ---------------------------------
    def load_configuration(self, config_name, overrides, run_mode, from_shell=True,
                           validate_sweep_overrides=True) -> DictConfig:
        return self.loader.load_configuration(config_name, overrides, run_mode, from_shell=from_shell,
                                              validate_sweep_overrides=validate_sweep_overrides)

    def get_search_path(self):
        return self.loader.get_search_path()

    def get_sources(self):
        return self.loader.get_sources()

    def list_groups(self, parent_name: str):
        return self.loader.list_groups(parent_name)

    def get_group_options(self, group_name, results_filter=ObjectType.CONFIG, config_name=None,
                          overrides=None):
        return self.loader.get_group_options(group_name, results_filter=results_filter,
                                             config_name=config_name, overrides=overrides)

    def compute_defaults_list(self, config_name, overrides, run_mode) -> Any:
        return self.loader.compute_defaults_list(config_name, overrides, run_mode)

    def __getstate__(self) -> dict:
        return {"loader": self.loader, "_kept": {}}
