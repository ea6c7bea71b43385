"""The loader interface: what a data set loader returns, and the checks its options go through.

A loader (one value of :data:`nnexp.data.DATASETS`) fetches the raw samples of one data set as a
:class:`Source`; :func:`nnexp.data.load` then splits, scales and encodes them. The ``check_*``
helpers turn a bad option into a one-line :class:`~nnexp.errors.DataError` that names the data set,
the option (as ``data.<option>``, the way it is overridden on the command line) and the valid range;
the range rules themselves are the core's (``nnexp.core._checks``), written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnexp.core._checks import count, number
from nnexp.errors import DataError


@dataclass(frozen=True, eq=False)
class Source:
    """Raw samples of one data set, before splitting, scaling and target encoding.

    Attributes:
        X: ``(n, n_features)`` numeric array, one sample a row (uint8 pixels or float64 tables;
            may be a read-only memory map).
        y: ``(n,)`` integer class indices in ``[0, len(class_names))``.
        class_names: one name per class, in class-index order.
        X_test, y_test: the official test split (MNIST), or None when the test split is drawn
            from ``X``.
        value_range: the known ``(low, high)`` range of every feature (pixels: ``(0, 255)``);
            ``minmax`` scaling maps it to [0, 1] instead of fitting a per-feature min/max, which
            would blow up a pixel that is almost always 0. None: fit on the training split.
    """

    X: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    value_range: tuple[float, float] | None = None


def _fail(dataset: str, option: str, value: Any, expected: str) -> DataError:
    return DataError(f"{dataset}: data.{option} must be {expected}, got {value!r}")


def check_int(dataset: str, option: str, value: Any, *, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``[low, high]``: the
    core's rule (:func:`nnexp.core._checks.count`), named as ``data.<option>``."""
    try:
        return count(value, f"data.{option}", minimum=low, maximum=high)
    except (TypeError, ValueError) as error:
        raise DataError(f"{dataset}: {error}") from None


def check_float(
    dataset: str,
    option: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is a real number within the given interval: the core's
    rule (:func:`nnexp.core._checks.number`), named as ``data.<option>``."""
    try:
        return number(value, f"data.{option}", low=low, high=high, low_open=low_open, high_open=high_open)
    except (TypeError, ValueError) as error:
        raise DataError(f"{dataset}: {error}") from None


def check_choice(dataset: str, option: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(dataset, option, value, "one of " + ", ".join(choices))
    return value


def check_bool(dataset: str, option: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (YAML true/false)."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(dataset, option, value, "true or false")
    return bool(value)


def check_urls(dataset: str, option: str, value: Any) -> tuple[str, ...]:
    """Return ``value`` as a tuple of http(s):// or file:// URLs (a non-empty list is required)."""
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(
            isinstance(u, str) and u.startswith(("http://", "https://", "file://")) for u in value
        )
    )
    if not ok:
        raise _fail(dataset, option, value, "a non-empty list of http://, https:// or file:// URLs")
    return tuple(value)
