"""Check a composed run configuration's structure before anything runs.

One source of truth per rule: whether a *value* is valid is decided by the core's constructors
(optimizers, schedules, :class:`~nnexp.core.MLP`, :class:`~nnexp.core.EarlyStopping`) and the
data loaders; :mod:`nnexp.build` calls them and turns their errors into one-line messages that
name the dotted key. This module checks what no constructor can:

- **unknown keys**, which Hydra lets in with ``+key=value`` and which would otherwise be logged
  as params of a run that never used them (``+optimzer.lr=0.1`` → "did you mean
  optimizer.lr?"). What is allowed is derived from the structure, so that a new constructor
  argument or YAML key is accepted without editing a list here: top-level keys from
  ``conf/config.yaml``, each group's keys from the signature of the constructor that reads it
  and from the group's YAML files (see :func:`sections`);
- **missing keys**: a constructor argument without a default that the config does not set;
- the keys only the training loop and the recorder read, once the run exists (``epochs``,
  ``batch_size``, ``mode``, ``progress``, ``tracking.*``, ``diagnostics.*``,
  ``gradcheck.at_epoch``): checked here so that a bad one is refused before;
- combinations: early stopping without a validation set.

Then it builds the optimizer, schedule and early stopping once (cheap, nothing allocated) so
that their values are checked before data load, and estimates the memory of the hidden layers
(a lower bound); the model is checked when it is built, its full memory estimated just before
(:mod:`nnexp.build`).

The input is a plain dict (``OmegaConf.to_container(cfg, resolve=True)``): this module knows
nothing of Hydra, so the same checks serve the command line, the tests and the Python API.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnexp.errors import ConfigError

# The config groups as the installed package has them: conf/ of the checkout under an editable
# install (mapped to nnexp.conf by setuptools' finder, no nnexp/conf folder exists), the
# package's own copy in a wheel.
CONF = Path(str(importlib.resources.files("nnexp.conf")))


@dataclass
class Section:
    """The keys one part of the config may hold: ``allowed`` (``open`` when the constructor
    takes ``**kwargs``: anything), and ``required`` (constructor arguments without a default)."""

    allowed: set[str] = field(default_factory=set)
    required: set[str] = field(default_factory=set)
    open: bool = False

    def add(self, constructor: Callable | None, skip: Mapping[str, str] | set = frozenset()) -> None:
        """The keyword arguments of ``constructor`` (its ``__init__`` for a class) but ``skip``."""
        if constructor is None:
            return
        for p in inspect.signature(constructor).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                self.open = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in skip:
                self.allowed.add(p.name)
                if p.default is p.empty:
                    self.required.add(p.name)


@functools.cache
def _yaml(path: Path) -> dict:
    import yaml

    loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
    return loaded if isinstance(loaded, dict) else {}


def _yaml_keys(group: str, option: Any = None) -> set[str]:
    """Keys of ``conf/<group>/<option>.yaml``, or of every option of the group."""
    paths = [CONF / group / f"{option}.yaml"] if isinstance(option, str) else sorted((CONF / group).glob("*.yaml"))
    return {k for path in paths for k in _yaml(path) if k != "defaults"}


def _root() -> tuple[dict, list[str]]:
    """``conf/config.yaml`` without ``defaults``/``hydra``, and the groups its defaults choose."""
    root = _yaml(CONF / "config.yaml")
    groups = [k for entry in root.get("defaults", []) if isinstance(entry, dict)
              for k, v in entry.items() if v is not None and "/" not in k]
    return {k: v for k, v in root.items() if k not in ("defaults", "hydra")}, groups


def _group_section(group: str, section: Mapping[str, Any]) -> Section:
    """The keys of group ``group`` given the chosen option's section (see the module docstring)."""
    from nnexp import build
    from nnexp.data import DATASETS

    name = section.get("name")
    out = Section(allowed={"name"} if "name" in section or group in ("optimizer", "schedule", "data")
                  else set())
    if group in ("optimizer", "schedule"):
        table = build.OPTIMIZERS if group == "optimizer" else build.SCHEDULES
        if name not in table:
            raise ConfigError(f"{group}.name must be one of: {', '.join(sorted(table))}, got {name!r} "
                              f"(choose one with {group}=<name>)")
        out.add(table[name], skip={"schedule"})
        out.allowed |= _yaml_keys(group, name)
    elif group == "data":
        if name not in DATASETS:
            raise ConfigError(f"data.name must be one of: {', '.join(DATASETS)}, got {name!r} "
                              f"(choose one with data=<name>)")
        out.allowed |= set(DATASETS[name].defaults) | _yaml_keys(group, name)
    elif group == "model":
        out.add(build.MLP, skip=build.MODEL_ARGUMENTS)
        out.allowed |= {"hidden"} | _yaml_keys(group)
        out.required.add("hidden")
    elif group == "early_stopping":
        out.allowed |= {"enabled"} | _yaml_keys(group)
        if section.get("enabled"):
            out.add(build.EarlyStopping)
    else:   # diagnostics, and any group a later change adds: its YAML files say what it holds
        out.allowed |= _yaml_keys(group)
    return out


def sections(cfg: Mapping[str, Any]) -> dict[str, Section]:
    """``{"": top-level keys, "tracking": ..., "optimizer": ..., ...}`` for this config."""
    root, groups = _root()
    top = Section(allowed=set(root) | set(groups), required=set(root) | set(groups))
    found = {"": top}
    for key, value in root.items():       # tracking, gradcheck: nested in config.yaml itself
        if isinstance(value, dict):
            found[key] = Section(allowed=set(value), required=set(value))
    for group in groups:
        if isinstance(cfg.get(group), Mapping):
            found[group] = _group_section(group, cfg[group])
    return found


def _first_leaf(prefix: str, value: Any) -> str:
    """``optimzer`` holding ``{"lr": 0.1}`` → ``optimzer.lr``: the key as the user typed it."""
    while isinstance(value, Mapping) and len(value) == 1:
        (key, value), = value.items()
        prefix = f"{prefix}.{key}"
    return prefix


def _unknown(dotted: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(dotted, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "python -m nnexp --cfg job lists every key"
    return ConfigError(f"unknown config key {dotted} ({hint}); it would be recorded but never used: "
                       f"remove it or correct its name")


def _section_names() -> set[str]:
    """The config's sections: its groups and the nested parts of ``config.yaml`` (``tracking``)."""
    root, groups = _root()
    return set(groups) | {name for name, value in root.items() if isinstance(value, dict)}


def every_key() -> list[str]:
    """Every dotted key that some choice of the config groups allows (for "did you mean")."""
    root, groups = _root()
    keys = set(root) | set(groups)
    for name, value in root.items():
        if isinstance(value, dict):
            keys |= {f"{name}.{k}" for k in value}
    for group in groups:
        for path in sorted((CONF / group).glob("*.yaml")):
            try:
                keys |= {f"{group}.{k}" for k in _group_section(group, _yaml(path)).allowed}
            except ConfigError:   # an option that names no constructor: nothing to suggest from it
                continue
    return sorted(keys)


def unknown_override(error: BaseException) -> str | None:
    """nnexp's one line for Hydra's refusal of an override whose key the config does not have
    (``model.hiden=[4]``), or None for any other error.

    Hydra's own line ends "To append to your config use +model.hiden=[4]", which only leads to
    nnexp's refusal of the unknown key; this names the key and the likely one instead."""
    import re

    # Hydra's ConfigCompositionException for a key missing from the config (other refusals to
    # override, e.g. a group missing from the defaults list, are worded otherwise)
    found = re.match(r"Could not override '([^']+)'\.\s*To append to your config use \+", str(error))
    if not found:
        return None
    key = found.group(1)
    known = every_key()
    inside_a_value = set(known) - _section_names()
    parts = key.split(".")
    if any(".".join(parts[:i]) in inside_a_value for i in range(1, len(parts))):
        return None   # a new entry of a dict-valued key (model.init_kwargs.std): Hydra's "+" is right
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "python -m nnexp --cfg job lists every key"
    return f"unknown config key {key} ({hint}): correct its name or remove it"


def check_keys(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first unknown or missing key (see the module docstring).

    Values of constructor arguments are not looked into (``model.init_kwargs`` is a dict the
    initializer checks); nested sections of ``config.yaml`` (``tracking``) are."""
    found = sections(cfg)
    valid = sorted({f"{name}.{k}" if name else k for name, s in found.items() for k in s.allowed}
                   - set(found))
    for name, section in found.items():
        part = cfg if not name else cfg.get(name, {})
        prefix = f"{name}." if name else ""
        if not isinstance(part, Mapping):
            raise ConfigError(f"{name} must be a section of keys, got {part!r} (see conf/config.yaml)")
        for key in part:
            if key not in section.allowed and not section.open:
                raise _unknown(_first_leaf(prefix + str(key), part[key]), valid)
        for key in sorted(section.required - set(part)):
            raise ConfigError(f"{prefix}{key} is missing from the config (set it with +{prefix}{key}=...)")


# -- the keys no constructor reads before the run exists --------------------------------------

def _whole(low: int, *, optional: bool = False) -> Callable[[Any], str | None]:
    wanted = f"must be a whole number >= {low}" + (", or null" if optional else "")

    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else wanted

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and value.strip()) else \
        "must be a non-empty string, or null"


def _hidden(value: Any) -> str | None:
    """The config's own notion (the MLP takes all widths): a non-empty list; widths by MLP."""
    return None if isinstance(value, list) and value else \
        "must be a non-empty list of layer widths >= 1, e.g. [16,8]"


#: Keys read by the training loop, the recorder or the report once the run exists (``fit`` and
#: the diagnostics check them again, too late to refuse them without a FAILED run), and
#: ``model.hidden``, the config's own notion (the MLP takes every width: ``build.layer_sizes``).
OWN_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "mode": lambda v: None if v in ("train", "gradcheck") else "must be one of: gradcheck, train",
    "epochs": _whole(1),
    "batch_size": _whole(1, optional=True),
    "progress": _boolean,
    "model.hidden": _hidden,
    "gradcheck.at_epoch": _whole(0),
    "diagnostics.enabled": _boolean,
    "diagnostics.every": _whole(1, optional=True),
    "diagnostics.samples_per_epoch": _whole(1),
    "tracking.uri": _text,
    "tracking.experiment": _text,
    "tracking.run_name": _text,
    "tracking.log_model": _boolean,
    "tracking.resume": _boolean,
    "tracking.child_figures": lambda v: None if v in ("best", "all") else "must be one of: all, best",
}


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if isinstance(value, str) else repr(value)


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


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (one line naming the key) for the first problem of a resolved
    config dict: structure first, then the loop's keys, then the cheap constructors' verdicts."""
    check_keys(cfg)
    flat = flatten(cfg)
    for key, check in OWN_CHECKS.items():
        if key in flat:   # diagnostics=off carries only `enabled`
            problem = check(flat[key])
            if problem:
                raise ConfigError(f"{key} {problem}, got {_describe(flat[key])} (override it with {key}=...)")

    from nnexp import build

    build.check_dtype(cfg)
    build.build_optimizer(cfg)
    build.build_early_stopping(cfg)
    build.check_memory(cfg)   # the hidden layers alone, before the data set is loaded
    if flat.get("early_stopping.enabled") and cfg["data"].get("val_fraction", 1) == 0:
        raise ConfigError(
            "early_stopping needs a validation set, but data.val_fraction is 0 "
            "(set data.val_fraction=0.2 or early_stopping=off)")
