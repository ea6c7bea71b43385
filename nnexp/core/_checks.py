"""Argument checks shared by the core: one wording for every "unknown name" and "bad number" error.

Errors are ``ValueError`` (a bad value) or ``TypeError`` (a value of the wrong kind, or an
unknown keyword), each a single line that names the offending value and the valid choices, so
that the application can show them to the user as they are.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

#: The floating-point types the core computes in, by name.
DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}


def choose(table: Mapping[str, Any], name: Any, kind: str) -> Any:
    """``table[name]``, or an error that lists ``sorted(table)``."""
    choices = ", ".join(sorted(table))
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a name (str), got {name!r}; choose one of: {choices}")
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {choices}") from None


def resolve_dtype(dtype: Any) -> np.dtype:
    """``"float32"``/``"float64"`` (or the matching NumPy type) → ``np.dtype``; nothing else."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    # `is None` first: np.dtype.__eq__ coerces None to float64, so None "is in" DTYPES
    if resolved is None or resolved not in DTYPES.values():
        raise ValueError(f"unknown dtype {dtype!r}; choose one of: {', '.join(DTYPES)}")
    return resolved


def call_with_options(fn: Callable, options: Mapping[str, Any] | None, what: str, *args):
    """``fn(*args, **options)``, refusing option names that ``fn`` does not declare.

    Python's own message ("got an unexpected keyword argument") does not list what *is*
    accepted; this one does.
    """
    options = dict(options or {})
    accepted = [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) if accepted else "(none)"
        raise TypeError(f"unknown option {unknown[0]!r} for {what}; valid options: {valid}")
    return fn(*args, **options)


def positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """``value`` as a finite float that is > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def fraction(value: Any, name: str, *, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1) (or (0, 1) with ``low_open``): decay rates, slopes."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0) or (low_open and value == 0.0):
        interval = "(0, 1)" if low_open else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return value


def decay_factor(value: Any, name: str) -> float:
    """``value`` as a float in (0, 1]: a factor that shrinks a rate (1 keeps it; above 1 would
    make a "decay" grow the learning rate without bound)."""
    value = positive(value, name)
    if value > 1.0:
        raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
    return value


def count(value: Any, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int >= ``minimum`` (and <= ``maximum``); bools are refused: ``True`` is
    not a count."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def number(value: Any, name: str, *, low: float, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (None: no upper
    bound), each end closed unless ``*_open``; e.g. ``[0.0, 1.0)`` for a split fraction."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    bound = f">= {low}" if high is None else f"in {left}{low}, {high}{right}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number {bound}, got {value!r}")
    v = float(value)
    if (not math.isfinite(v) or v < low or (low_open and v == low)
            or (high is not None and (v > high or (high_open and v == high)))):
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return v
