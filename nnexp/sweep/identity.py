"""What a sweep is: the keys it varies, its identity for resume, and where its runs are filed.

Everything here reads the multirun's composed config (before any job exists) and decides
once: a sweep that would split across stores or experiments is refused here, in one line.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from nnexp.errors import ConfigError, raise_hidden_interrupt

# Overrides that change only how a sweep is shown or recorded, not what it computes: they are
# left out of the sweep's identity, so `tracking.resume=true` finds the sweep run without it.
RECORDING_ONLY = ("tracking.resume", "tracking.run_name", "tracking.log_model", "tracking.child_figures",
                  "progress")
# Keys that cannot vary inside one sweep: its children live in the parent's store and experiment.
UNSWEEPABLE = {
    "tracking.uri": "a sweep's runs live in its parent's store; run one sweep per store "
                    "(e.g. MLFLOW_TRACKING_URI=sqlite:///a.db python -m nnexp -m ...)",
    "tracking.experiment": "a sweep's runs are filed under its parent's experiment; run one sweep "
                           "per experiment (tracking.experiment=NAME, not swept)",
}


def _parsed(config: DictConfig):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))


def _key(override) -> str:
    return override.get_key_element().lstrip("+~")


def _params(config: DictConfig) -> dict:
    params = OmegaConf.select(config, "hydra.sweeper.params")
    return {str(k).lstrip("+~"): str(v) for k, v in OmegaConf.to_container(params).items()} if params else {}


def swept_keys(config: DictConfig) -> list[str]:
    """The config keys a sweep varies: ``a=1,2`` overrides and ``hydra.sweeper.params``."""
    keys = [override.get_key_element() for override in _parsed(config) if override.is_sweep_override()]
    keys += [key for key in _params(config) if key not in keys]
    return keys


def sweep_key(config: DictConfig) -> str:
    """Identifies "the same sweep": its overrides and sweep parameters, without the switches of
    :data:`RECORDING_ONLY` (in either place)."""
    overrides = sorted(o.input_line for o in _parsed(config) if _key(o) not in RECORDING_ONLY)
    params = {k: v for k, v in _params(config).items() if k not in RECORDING_ONLY}
    text = json.dumps({"overrides": overrides, "params": params or None}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded_overrides(config: DictConfig) -> list[str]:
    """The command line's overrides as the parent records them."""
    return list(config.hydra.overrides.task)


def check_sweepable(config: DictConfig) -> None:
    """Refuse, before any job, a sweep whose children would land outside its parent's store or
    experiment: ``tracking.uri`` or ``tracking.experiment`` varied by the sweep."""
    for key in swept_keys(config):
        reason = UNSWEEPABLE.get(key.lstrip("+~"))
        if reason:
            raise ConfigError(f"{key.lstrip('+~')} cannot be swept: {reason}")


def _data_options(config: DictConfig) -> list[str] | None:
    """The data sets a sweep varies (``data=spiral,xor`` or a sweeper parameter ``data``), in
    order, or None when it uses one data set. A range or glob that Hydra expands later gives
    ``["several"]``."""
    for override in _parsed(config):
        if _key(override) in ("data", "data.name") and override.is_sweep_override():
            try:
                return [str(v) for v in override.sweep_iterator()]
            except Exception as error:  # noqa: BLE001 - an interval or glob: the values are not listed
                raise_hidden_interrupt(error)
                return ["several"]
    value = _params(config).get("data") or _params(config).get("data.name")
    if value is None:
        return None
    inner = value.split("(", 1)[-1].rstrip(")") if "(" in value else value
    return [v.strip() for v in inner.split(",") if v.strip()] or ["several"]


def experiment_name(config: DictConfig) -> str:
    """The experiment of the sweep's parent and every child: ``tracking.experiment``, else the
    data set's name; a sweep over data sets is filed under their names joined by ``+``
    (``spiral+xor``), never under a data set it does not use."""
    chosen = OmegaConf.select(config, "tracking.experiment")
    if chosen:
        return str(chosen)
    datasets = _data_options(config)
    if datasets and len(set(datasets)) > 1:
        return "+".join(dict.fromkeys(datasets))
    if datasets:
        return datasets[0]
    return str(OmegaConf.select(config, "data.name"))
