"""Validate a composed run configuration before anything runs.

Hydra composes the config and rejects unknown keys and unknown group options; this module
checks what Hydra cannot: types and ranges of every value, names that must be in one of our
tables, and combinations that cannot work (an output/loss pair the core refuses). Each problem
is raised as one :class:`~nnexp.errors.ConfigError` whose message names the dotted key, the bad
value and what would be valid, e.g. ``lr must be a number > 0, got -0.1``.

The input is a plain dict (``OmegaConf.to_container(cfg, resolve=True)``): this module knows
nothing of Hydra, so the same checks serve the command line, the tests and the Python API.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nnexp.errors import ConfigError

# A check takes a value and returns an error message fragment ("must be ..."), or None if fine.
Check = Callable[[Any], "str | None"]


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if isinstance(value, str) else repr(value)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False) -> Check:
    """A real (or integer) number in a range; booleans and strings are refused."""
    kind = "a whole number" if integer else "a number"
    bounds = []
    if lo is not None:
        bounds.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        bounds.append(f"{'<' if hi_open else '<='} {hi:g}")
    wanted = f"must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "")

    def check(value: Any) -> str | None:
        numeric = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not numeric or not math.isfinite(value):
            return wanted
        if lo is not None and (value <= lo if lo_open else value < lo):
            return wanted
        if hi is not None and (value >= hi if hi_open else value > hi):
            return wanted
        return None

    return check


def one_of(choices: Callable[[], list[str]] | list[str]) -> Check:
    """A string from a fixed list (or from a table looked up when checked)."""

    def check(value: Any) -> str | None:
        valid = sorted(choices() if callable(choices) else choices)
        if not isinstance(value, str) or value not in valid:
            return f"must be one of: {', '.join(valid)}"
        return None

    return check


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def optional(inner: Check) -> Check:
    """``null`` or whatever ``inner`` accepts."""

    def check(value: Any) -> str | None:
        if value is None:
            return None
        problem = inner(value)
        return None if problem is None else f"{problem}, or null"

    return check


def text(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty string"


def layer_widths(value: Any) -> str | None:
    """Hidden layer sizes: a non-empty list of whole numbers >= 1, e.g. [16, 8]."""
    wanted = "must be a non-empty list of layer widths >= 1, e.g. [16,8]"
    if not isinstance(value, list) or not value:
        return wanted
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in value):
        return wanted
    return None


def _core_names(table: str) -> Callable[[], list[str]]:
    """Valid names from a table of the core, imported only when a check needs it."""

    def names() -> list[str]:
        from nnexp import core

        return list(getattr(core, table))

    return names


def _data_names() -> list[str]:
    from nnexp.data import DATASETS

    return list(DATASETS)


def _optimizer_names() -> list[str]:
    from nnexp.build import OPTIMIZERS

    return list(OPTIMIZERS)


def _schedule_names() -> list[str]:
    from nnexp.build import SCHEDULES

    return list(SCHEDULES)


# Every key a run reads, with its check. Keys of the optimizer and schedule groups differ from
# option to option, so they are checked by their leaf name wherever they appear (see below).
CHECKS: dict[str, Check] = {
    "mode": one_of(["train", "gradcheck"]),
    "lr": number(0, lo_open=True),
    "epochs": number(1, integer=True),
    "batch_size": optional(number(1, integer=True)),
    "seed": number(0, integer=True),
    "dtype": one_of(["float32", "float64"]),
    "progress": boolean,
    "model.hidden": layer_widths,
    "model.activation": one_of(_core_names("ACTIVATIONS")),
    "model.output": one_of(_core_names("OUTPUTS")),
    "model.loss": one_of(_core_names("LOSSES")),
    "model.init": one_of(_core_names("INITIALIZERS")),
    "optimizer.name": one_of(_optimizer_names),
    "schedule.name": one_of(_schedule_names),
    "data.name": one_of(_data_names),
    "early_stopping.enabled": boolean,
    "early_stopping.monitor": one_of(["val_loss", "val_acc"]),
    "early_stopping.patience": number(1, integer=True),
    "early_stopping.min_delta": number(0),
    "early_stopping.restore_best": boolean,
    "gradcheck.at_epoch": number(0, integer=True),
    "diagnostics.enabled": boolean,
    "diagnostics.every": optional(number(1, integer=True)),
    "diagnostics.samples_per_epoch": number(1, integer=True),
    "tracking.uri": optional(text),
    "tracking.experiment": optional(text),
    "tracking.run_name": optional(text),
    "tracking.log_model": boolean,
    "tracking.resume": boolean,
}

# Hyper-parameters of optimizers and schedules, by leaf name (e.g. optimizer.momentum).
HYPERPARAMETER_CHECKS: dict[str, Check] = {
    "lr": number(0, lo_open=True),
    "weight_decay": number(0),
    "momentum": number(0, 1, hi_open=True),
    "rho": number(0, 1, hi_open=True),
    "beta1": number(0, 1, hi_open=True),
    "beta2": number(0, 1, hi_open=True),
    "eps": number(0, lo_open=True),
    "step_size": number(1, integer=True),
    "gamma": number(0, 1, lo_open=True),
    "decay_rate": number(0),
}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": [16]}}`` → ``{"model.hidden": [16]}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _fail(key: str, problem: str, value: Any) -> ConfigError:
    return ConfigError(f"{key} {problem}, got {_describe(value)} (override it with {key}=...)")


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first invalid value of a resolved config dict.

    Checks run in the order of :data:`CHECKS` so that the message is about the most basic
    problem first (a type before a combination).
    """
    flat = flatten(cfg)
    for key, check in CHECKS.items():
        if key not in flat:
            group = key.partition(".")[0]
            if group in ("early_stopping", "diagnostics") and not flat.get(f"{group}.enabled"):
                continue  # `early_stopping=off` and `diagnostics=off` carry only `enabled`
            raise ConfigError(f"{key} is missing from the config (set it with +{key}=...)")
        problem = check(flat[key])
        if problem:
            raise _fail(key, problem, flat[key])

    for group in ("optimizer", "schedule"):
        for key, value in flat.items():
            leaf = key.removeprefix(f"{group}.")
            if key.startswith(f"{group}.") and leaf in HYPERPARAMETER_CHECKS:
                problem = HYPERPARAMETER_CHECKS[leaf](value)
                if problem:
                    raise _fail(key, problem, value)

    from nnexp.core import check_output_loss

    try:
        check_output_loss(flat["model.output"], flat["model.loss"])
    except ValueError as error:
        raise ConfigError(f"model.output/model.loss: {error}") from None

    if flat.get("early_stopping.enabled") and cfg["data"].get("val_fraction", 1) == 0:
        raise ConfigError(
            "early_stopping needs a validation set, but data.val_fraction is 0 "
            "(set data.val_fraction=0.2 or early_stopping=off)")
