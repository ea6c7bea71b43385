"""Refuse a sweep that cannot compose before it touches anything.

Hydra's sweepers check their jobs (``Sweeper.validate_batch_is_legal``: every job's config is
composed) only once the sweep has begun, after the sweep callback has opened the store, created
the parent run and the sweep's folder. A typo in a swept option (``optimizer=sgd,nosuch``), an
override of a key that does not exist (``model.hiden=[4],[8]``) or an unknown key added to every
job (``+optimizer.foo=1``) then left a FAILED parent run, an experiment and a ``multirun/``
folder behind, for input that was simply wrong.

:func:`check_sweep_composes` composes a few probe jobs first, with Hydra's own
``load_sweep_config``, and checks their keys as a run would (:func:`nnexp.config.check_keys`).
The probes are chosen so that every swept option of a config group is composed at least once:
probe ``i`` takes the ``i``-th value (wrapping around) of every swept override, so a sweep of
``seed=0,...,7`` needs one probe and ``optimizer=sgd,adam,rmsprop lr=0.1,0.01`` three. Plain
values (``lr=abc``) are not the probes' business: a bad value fails its own job and the sweep
counts it. An error that appears only for one combination of two groups is still found by
Hydra's own check, later (the parent is then ended FAILED, as before).

The jobs' overrides are built the way :class:`hydra._internal.core_plugins.basic_sweeper.BasicSweeper`
builds them: the sweeper's ``params`` first, then the command line's overrides, one entry per
key (the later wins). Sweeps Hydra's grammar cannot enumerate (an Optuna ``interval(...)``)
leave that key out of the probes.
"""

from __future__ import annotations

import contextlib

from omegaconf import DictConfig, OmegaConf


def _overrides(config: DictConfig) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    given = OmegaConf.select(config, "hydra.sweeper.params")
    params = []
    for key, value in (OmegaConf.to_container(given) if given else {}).items():
        with contextlib.suppress(OverrideParseException):   # another sweeper's own grammar
            params.append(parser.parse_override(f"{key}={value}"))
    return params + parser.parse_overrides([str(line) for line in config.hydra.overrides.task])


def _values(override) -> list[str] | None:
    """Each job's ``key=value`` for this override, or None when Hydra cannot list them."""
    from hydra.errors import HydraException

    key = override.get_key_element()
    if not override.is_sweep_override():
        return [override.input_line]
    try:
        return [f"{key}={value}" for value in override.sweep_string_iterator()]
    except HydraException:   # an interval or a glob: enumerated by the sweeper itself
        return None


def probe_jobs(config: DictConfig, is_group) -> list[list[str]]:
    """Overrides of the probe jobs (see the module docstring); ``is_group(key)`` tells whether a
    key names a config group."""
    per_key: dict[str, list[str]] = {}
    for override in _overrides(config):
        values = _values(override)
        if values:
            per_key[override.get_key_element()] = values   # the later wins, as in Hydra's sweeper
        else:
            per_key.pop(override.get_key_element(), None)
    swept_groups = [values for key, values in per_key.items()
                    if len(values) > 1 and is_group(key.lstrip("+~").split("@")[0])]
    count = max((len(values) for values in swept_groups), default=1)
    return [[values[i % len(values)] for values in per_key.values()] for i in range(count)]


def check_sweep_composes(config: DictConfig) -> None:
    """Raise Hydra's composition error, or nnexp's :class:`~nnexp.errors.ConfigError` for an
    unknown key, that the sweep of ``config`` (the multirun's config) would meet."""
    from hydra.core.global_hydra import GlobalHydra

    from nnexp.config import check_keys

    loader = GlobalHydra.instance().config_loader()

    def is_group(key: str) -> bool:
        return bool(loader.get_group_options(key))

    for overrides in probe_jobs(config, is_group):
        task = OmegaConf.to_container(loader.load_sweep_config(config, overrides))
        task.pop("hydra", None)     # what the task function receives (Hydra's run_job)
        check_keys(task)
