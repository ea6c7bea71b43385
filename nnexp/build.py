"""Turn a validated config dict into core objects: the one place where names become objects.

``"adam"`` → :class:`~nnexp.core.Adam`, ``"step"`` → :class:`~nnexp.core.StepDecay`, a model
section plus a data set → :class:`~nnexp.core.MLP`. Tables, not ``if``/``elif`` chains: adding
an optimizer is one entry in ``nnexp.core.OPTIMIZERS`` and one YAML file in
``conf/optimizer/``; a test builds every key of every table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The name → class tables live with the classes in the core; this module only applies them.
from nnexp.core import MLP, OPTIMIZERS, SCHEDULES, EarlyStopping
from nnexp.errors import ConfigError

__all__ = ["MODEL_ARGUMENTS", "OPTIMIZERS", "SCHEDULES", "binary_targets", "build_early_stopping",
           "build_model", "build_optimizer", "check_dtype", "config_error", "layer_sizes"]

#: MLP arguments that do not come from ``model.<same name>``, and the key each comes from;
#: every other key of the model section is passed to the MLP as it is.
MODEL_ARGUMENTS = {"sizes": "model.hidden", "dtype": "dtype", "seed": "seed"}


def config_error(error: Exception, keys: Mapping[str, str], group: str) -> ConfigError:
    """A constructor's ``ValueError``/``TypeError`` as one line naming the key to override.

    ``keys`` maps the constructor's argument names to dotted config keys; the argument the
    message names first is the one blamed (the core's messages start with it: "lr must be a
    finite number > 0, got -0.1").
    """
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unexpected:
        key = f"{group}.{unexpected.group(1)}"
        return ConfigError(f"{key} is not an option of {group} ({text}); remove it")
    index = re.search(r"\bsizes\[(\d+)\]", text)
    if index and "sizes" in keys:   # sizes = [n_inputs, *hidden, n_outputs]: hidden[i - 1]
        text = text.replace(index.group(0), f"{keys['sizes']}[{int(index.group(1)) - 1}]")
        text = text.removeprefix("layer width ")
        return ConfigError(f"{text} (override it with {keys['sizes']}=...)")
    hits = [(m.start(), -len(name), name) for name in keys
            if (m := re.search(rf"(?<![\w.]){re.escape(name)}\b", text))]
    if not hits:
        return ConfigError(f"{group}: {text}")
    name = min(hits)[2]
    if text.startswith("unknown option") and f"{name}_kwargs" in keys:   # init -> init_kwargs
        name = f"{name}_kwargs"
    key = keys[name]
    text = key + text[len(name):] if text.startswith(name) else f"{key}: {text}"
    return ConfigError(f"{text} (override it with {key}=...)")


def _keys(group: str, section: Mapping[str, Any]) -> dict[str, str]:
    return {k: f"{group}.{k}" for k in section}


def _construct(group: str, table: Mapping[str, type], section: Mapping[str, Any], **extra):
    """``table[section["name"]](**rest of section, **extra)``; an error names the key."""
    options = {k: v for k, v in section.items() if k != "name"}
    try:
        return table[section["name"]](**options, **extra)
    except (TypeError, ValueError) as error:
        raise config_error(error, _keys(group, options), group) from None


def check_dtype(cfg: Mapping[str, Any]) -> None:
    """``cfg["dtype"]`` as the core decides (:func:`nnexp.core._checks.resolve_dtype`)."""
    from nnexp.core._checks import resolve_dtype

    try:
        resolve_dtype(cfg["dtype"])
    except (TypeError, ValueError) as error:
        raise config_error(error, {"dtype": "dtype"}, "dtype") from None


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
        raise config_error(error, _keys("early_stopping", section), "early_stopping") from None


def binary_targets(cfg: Mapping[str, Any], n_classes: int) -> bool:
    """A sigmoid output on a two-class data set gets one unit and a 0/1 target column;
    every other model gets one output unit per class and one-hot targets."""
    return cfg["model"]["output"] == "sigmoid" and n_classes == 2


def layer_sizes(cfg: Mapping[str, Any], n_inputs: int, n_outputs: int) -> list[int]:
    """``[n_inputs, *hidden, n_outputs]``: the widths of every layer, input included."""
    return [n_inputs, *cfg["model"]["hidden"], n_outputs]


def build_model(cfg: Mapping[str, Any], n_inputs: int, n_outputs: int, dtype: str | None = None,
                n_train: int | None = None) -> MLP:
    """The MLP of ``cfg["model"]`` for a data set with these input and output sizes: every key
    of the section but ``hidden`` is passed as the MLP's argument of the same name. Refused
    first if its estimated memory (:mod:`nnexp.core.memory`; with ``n_train`` training rows,
    fit's copy of them and a full batch are counted too) exceeds what is available."""
    options = {k: v for k, v in cfg["model"].items() if k != "hidden"}
    for key in ("init_kwargs", "activation_kwargs"):
        if not isinstance(options.get(key) or {}, Mapping):
            raise ConfigError(f"model.{key} must be a mapping of options, e.g. "
                              f"+model.{key}.<option>=<value>, got {options[key]!r}")
    sizes = layer_sizes(cfg, n_inputs, n_outputs)
    keys = _keys("model", options) | MODEL_ARGUMENTS
    dtype = dtype or cfg["dtype"]
    check_memory(cfg, sizes, dtype, n_train)
    try:
        return MLP(sizes, dtype=dtype, seed=cfg["seed"], **options)
    except (TypeError, ValueError) as error:
        raise config_error(error, keys, "model") from None


def check_memory(cfg: Mapping[str, Any], sizes: list[int] | None = None, dtype: str | None = None,
                 n_train: int | None = None) -> None:
    """Raise ConfigError if training ``sizes`` needs more memory than this process may use.

    Without ``sizes`` (before the data set is loaded, so its widths are unknown) the hidden
    layers alone are estimated, ``[1, *hidden, 1]``: a lower bound, enough to refuse a model
    that cannot fit before any data is allocated either."""
    least = sizes is None
    if least:
        hidden = cfg["model"]["hidden"]
        sizes = [1, *hidden, 1] if isinstance(hidden, list) else []
    dtype = dtype or cfg["dtype"]
    from nnexp.core import memory
    from nnexp.core._checks import resolve_dtype

    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in sizes):
        return   # the MLP refuses these, naming the width
    try:
        dtype = resolve_dtype(dtype)
    except (TypeError, ValueError):
        return   # so does the MLP
    slots = memory.optimizer_slots(build_optimizer(cfg), dtype)
    need = memory.estimate(sizes, dtype, batch_size=cfg.get("batch_size"), optimizer_slots=slots,
                           n_train=n_train)
    free, where = memory.available()
    if free is not None and need.total > free:
        raise ConfigError(
            f"model.hidden={list(cfg['model']['hidden'])} needs {'at least' if least else 'about'} "
            f"{memory.gigabytes(need.total)} "
            f"to train ({need.parameters:,} parameters in {dtype.name}: the weights, their gradients, "
            f"{cfg['optimizer']['name']}'s {slots} arrays and the best epoch's copy), but about "
            f"{memory.gigabytes(free)} is available ({where}); choose a smaller model.hidden "
            f"(or dtype=float32)")



def build_augment(cfg: Mapping[str, Any], data):
    """The ``augment(X, rng)`` of ``cfg["data"]["augment"]`` for :func:`nnexp.core.fit`, or None.

    ``shift: N`` moves each training image by up to N pixels each epoch; what comes in at the
    edge is the background, a raw pixel of 0 after the data set's scaling."""
    shift = (cfg["data"].get("augment") or {}).get("shift", 0)
    if shift == 0:
        return None
    from nnexp.data.augment import image_shifter

    fill = 0.0
    if data.scaler is not None:            # raw 0 -> (0 - shift) / scale, per pixel
        offset, scale = data.scaler
        fill = (0.0 - offset) / scale
    try:
        return image_shifter(cfg["data"]["name"], shift, fill)
    except ValueError as error:
        raise ConfigError(f"{error} (override it with data.augment.shift=0)") from None
