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

Jobs that differ only in plain values (``seed=0,...,7``, ``lr=0.1,0.01``) are not composed one
by one either: the first such job is composed by Hydra and kept as a template, and each other
job with the same config-group choices and the same overrides apart from those values is
*derived* from it (:func:`_derive`, about 5 ms, mostly the copy, against 55-60 ms). Hydra's
composition of a job is its defaults list composed, then its ``key=value`` overrides applied in
order with ``OmegaConf.update(cfg, key, value, merge=True)``, then ``hydra.overrides.task`` and
``hydra.job.override_dirname`` filled in (``ConfigLoaderImpl._load_configuration_impl``); a
derived job is the template's copy with the same updates and the same two fields. Guards: an
override is treated as a plain value only when it is a change (no ``+``, ``++`` or ``~``), of a
key outside ``hydra.``, to a single number, string, boolean or null, of a key that is no config
group, names a value (not a section) in the template, and appears once (neither it nor a section
above or below it is overridden twice); anything else is part of the template's identity, and a
derivation that raises falls back to Hydra's composition, which then raises Hydra's error.

Templates are kept per process (:data:`_templates`, the newest :data:`TEMPLATES_AT_MOST`), so a
launcher whose long-lived workers compose each job (joblib: each task unpickles its own loader)
derives every job after a worker's first one too. (hydra-ray-launcher composes in the driver and
ships the configs; submitit composes each job in a process of its own.) A template's key is what its
composition depends on besides the config files' contents: the primary config's name, the
config search path, the sweep's Hydra overrides (which carry the sweep's own parent run and
invocation, :mod:`nnexp.sweep.context`, so two sweeps never share one) and the job's overrides
other than the plain values.

``tests/sweep/test_compose_once.py`` compares what it hands out, composed or derived, with
Hydra's own composition.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, ValueType
from omegaconf import DictConfig, ListConfig, OmegaConf

from nnexp.errors import raise_hidden_interrupt

# configs kept between validation and launch; each is ~20 KB pickled, a few hundred KB as objects
KEEP_AT_MOST = 512
# templates kept for derivation: one per distinct set of group choices (and other overrides)
TEMPLATES_AT_MOST = 64
# this process's templates, by _template_key (see the module docstring)
_templates: dict[tuple, DictConfig] = {}


def _key(master_config: DictConfig, overrides: Sequence[str]) -> tuple:
    hydra_overrides = OmegaConf.to_container(master_config.hydra.overrides.hydra)
    return id(master_config), tuple(hydra_overrides), tuple(overrides)


def _template_key(master_config: DictConfig, identity: tuple) -> tuple:
    hydra = master_config.hydra
    sources = tuple(f"{source.provider}:{source.path}" for source in hydra.runtime.config_sources)
    return (str(hydra.job.config_name), sources, tuple(OmegaConf.to_container(hydra.overrides.hydra)),
            identity)


def _is_plain_value(override: Override) -> bool:
    """``key=value`` setting one existing value: no group, no ``hydra.`` key, no ``+``/``++``/``~``,
    a single number, string, boolean or null (lists and dicts merge, so they are left to Hydra)."""
    return (override.type == OverrideType.CHANGE and override.package is None
            and override.value_type == ValueType.ELEMENT and not override.is_hydra_override()
            and (override.value() is None or isinstance(override.value(), (str, int, float, bool))))


def _overlaps(key: str, other: str) -> bool:
    return key == other or key.startswith(other + ".") or other.startswith(key + ".")


def _derive(template: DictConfig, master_config: DictConfig, parsed: list[Override],
            values: list[int]) -> DictConfig:
    """The config Hydra composes for the overrides ``parsed``, from ``template``: Hydra's
    composition of overrides that differ from ``parsed`` only at the positions ``values``, each a
    plain value (see the module docstring). Follows ``ConfigLoaderImpl._load_configuration_impl``
    and ``load_sweep_config`` for what they do with such overrides."""
    config = copy.deepcopy(template)
    for index in values:
        OmegaConf.update(config, parsed[index].key_or_group, parsed[index].value(), merge=True)
    task = [override for override in parsed if not override.is_hydra_override()]
    if len(config.hydra.overrides.task) != len(task):
        raise ValueError("the template's task overrides do not line up with the job's")
    for position, override in enumerate(task):
        config.hydra.overrides.task[position] = override.input_line
    # hydra.job.override_dirname as Hydra computes it (config_loader_impl.get_overrides_dirname)
    spec = config.hydra.job.config.override_dirname
    lines = sorted(o.input_line for o in task if o.key_or_group not in spec.exclude_keys)
    config.hydra.job.override_dirname = re.sub(pattern="[=]", repl=spec.kv_sep,
                                               string=spec.item_sep.join(lines))
    OmegaConf.copy_cache(from_config=master_config, to_config=config)
    return config


class ComposedOnce(ConfigLoader):
    """Hydra's ``loader`` that answers a launcher's request for a job composed ahead with that
    config instead of composing it again, and derives jobs that differ only in plain values from
    one composed template; everything else is the loader's own."""

    def __init__(self, loader: ConfigLoader):
        self.loader = loader
        self._kept: dict[tuple, DictConfig] = {}
        self._groups: dict[str, bool] = {}

    def compose_ahead(self, master_config: DictConfig, overrides: Sequence[str]) -> None:
        """Compose the job of ``overrides`` now (raising as composition does) and keep it for the
        launcher's request."""
        config = self.compose(master_config, overrides)
        if len(self._kept) < KEEP_AT_MOST:
            self._kept[_key(master_config, overrides)] = config

    def compose(self, master_config: DictConfig, overrides: Sequence[str]) -> DictConfig:
        """The job's config as Hydra's ``load_sweep_config`` composes it: derived from a template
        when the guards allow (see the module docstring), else composed by Hydra."""
        shape = self._shape(overrides)
        if shape is None:
            return self.loader.load_sweep_config(master_config, list(overrides))
        parsed, values, identity = shape
        key = _template_key(master_config, identity)
        if key in _templates:
            try:
                return _derive(_templates[key], master_config, parsed, values)
            except Exception as error:   # noqa: BLE001 - Hydra's own composition says what is wrong
                raise_hidden_interrupt(error)
        config = self.loader.load_sweep_config(master_config, list(overrides))
        if self._fits(config, [parsed[i].key_or_group for i in values]):
            while len(_templates) >= TEMPLATES_AT_MOST:     # a long-lived worker's older sweeps
                del _templates[next(iter(_templates))]
            _templates[key] = copy.deepcopy(config)
        return config

    def _shape(self, overrides: Sequence[str]) -> tuple[list[Override], list[int], tuple] | None:
        """The parsed overrides, the positions of the plain values among them, and what else
        identifies the job (the other overrides as written, the plain values' keys); None when
        the overrides do not parse (Hydra's composition says why)."""
        try:
            parsed = OverridesParser.create().parse_overrides(list(overrides))
        except Exception as error:   # noqa: BLE001
            raise_hidden_interrupt(error)
            return None
        keys = [override.key_or_group for override in parsed]
        values = [index for index, override in enumerate(parsed)
                  if _is_plain_value(override) and not self._is_group(override.key_or_group)
                  and sum(_overlaps(override.key_or_group, other) for other in keys) == 1]
        identity = tuple(("value", override.key_or_group) if i in values else ("as written", override.input_line)
                         for i, override in enumerate(parsed))
        return parsed, values, identity

    def _is_group(self, key: str) -> bool:
        if key not in self._groups:
            self._groups[key] = bool(self.loader.get_group_options(key))
        return self._groups[key]

    @staticmethod
    def _fits(config: DictConfig, keys: list[str]) -> bool:
        """Whether every plain-value key names a value of ``config`` (not a section, not a group
        choice), so that other values of those keys can be derived from it."""
        choices = config.hydra.runtime.choices
        for key in keys:
            if key in choices:
                return False
            try:
                value = OmegaConf.select(config, key, throw_on_missing=False)
            except Exception as error:   # noqa: BLE001 - an interpolation that does not resolve yet
                raise_hidden_interrupt(error)
                return False
            if isinstance(value, (DictConfig, ListConfig)):
                return False
        return True

    def forget(self) -> None:
        """Drop what no launcher asked for (a launcher that composes in its workers)."""
        self._kept.clear()

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        kept = self._kept.pop(_key(master_config, sweep_overrides), None)
        if kept is not None:
            return kept
        return self.compose(master_config, sweep_overrides)

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
        return {"loader": self.loader, "_kept": {}, "_groups": {}}
