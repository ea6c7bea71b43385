"""Turn a validated config dict into core objects: the one place where names become objects.

``"adam"`` → :class:`~nnexp.core.Adam`, ``"step"`` → :class:`~nnexp.core.StepDecay`, a model
section plus a data set → :class:`~nnexp.core.MLP`. Tables, not ``if``/``elif`` chains: adding
an optimizer is one entry in ``nnexp.core.OPTIMIZERS`` and one YAML file in
``conf/optimizer/``; a test builds every key of every table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The name → class tables live with the classes in the core; this module only applies them.
from nnexp.core import MLP, OPTIMIZERS, SCHEDULES, EarlyStopping
from nnexp.errors import ConfigError

__all__ = ["OPTIMIZERS", "SCHEDULES", "binary_targets", "build_early_stopping", "build_model",
           "build_optimizer", "layer_sizes"]


def _construct(group: str, table: Mapping[str, type], section: Mapping[str, Any], **extra):
    """``table[section["name"]](**rest of section, **extra)``; a bad keyword names the key."""
    options = {k: v for k, v in section.items() if k != "name"}
    try:
        return table[section["name"]](**options, **extra)
    except (TypeError, ValueError) as error:
        text = str(error)
        if text.split(" ", 1)[0] in options:    # the core names its arguments: name the key
            raise ConfigError(f"{group}.{text}") from None
        if isinstance(error, TypeError):        # e.g. an unexpected keyword argument
            raise ConfigError(f"{group}={section['name']}: {text} "
                              f"(see conf/{group}/{section['name']}.yaml for its keys)") from None
        raise ConfigError(f"{group}: {text}") from None


def build_optimizer(cfg: Mapping[str, Any]):
    """The optimizer of ``cfg["optimizer"]`` with the learning-rate schedule of ``cfg["schedule"]``."""
    schedule = _construct("schedule", SCHEDULES, cfg["schedule"])
    return _construct("optimizer", OPTIMIZERS, cfg["optimizer"], schedule=schedule)


def build_early_stopping(cfg: Mapping[str, Any]) -> EarlyStopping | None:
    section = dict(cfg["early_stopping"])
    if not section.pop("enabled"):
        return None
    try:
        return EarlyStopping(**section)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"early_stopping: {error}") from None


def binary_targets(cfg: Mapping[str, Any], n_classes: int) -> bool:
    """A sigmoid output on a two-class data set gets one unit and a 0/1 target column;
    every other model gets one output unit per class and one-hot targets."""
    return cfg["model"]["output"] == "sigmoid" and n_classes == 2


def layer_sizes(cfg: Mapping[str, Any], n_inputs: int, n_outputs: int) -> list[int]:
    """``[n_inputs, *hidden, n_outputs]``: the widths of every layer, input included."""
    return [n_inputs, *cfg["model"]["hidden"], n_outputs]


def build_model(cfg: Mapping[str, Any], n_inputs: int, n_outputs: int, dtype: str | None = None) -> MLP:
    """The MLP of ``cfg["model"]`` for a data set with these input and output sizes."""
    model = cfg["model"]
    for key in ("init_kwargs", "activation_kwargs"):
        if not isinstance(model.get(key) or {}, Mapping):
            raise ConfigError(f"model.{key} must be a mapping of options, e.g. "
                              f"+model.{key}.<option>=<value>, got {model[key]!r}")
    try:   # (init_kwargs, activation_kwargs: {} or absent means the defaults)
        return MLP(layer_sizes(cfg, n_inputs, n_outputs), activation=model["activation"],
                   output=model["output"], loss=model["loss"], init=model["init"],
                   dtype=dtype or cfg["dtype"], seed=cfg["seed"],
                   init_kwargs=model.get("init_kwargs") or {},
                   activation_kwargs=model.get("activation_kwargs") or {})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model: {error}") from None

