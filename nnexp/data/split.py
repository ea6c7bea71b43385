"""How a data set is split and scaled: which rows make each split, and their scaled features.

The splits are index arrays into the fetched samples (:class:`Rows`), so that the features are
gathered once, already scaled, in the run's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnexp.data import kept
from nnexp.data.base import Source
from nnexp.data.preprocess import fit_scaler, stratified_split, transform
from nnexp.errors import DataError

# How a data set's test (and validation) split is made.
OFFICIAL = "official"  # the publisher's test split; validation drawn from the training split
FRACTION = "fraction"  # a stratified test_fraction of all samples, then validation from the rest
REUSE = "reuse"  # every split is all the data (xor: see synthetic.load_xor for why)


def _count(name: str, option: str, fraction: float, n: int) -> int:
    """Return how many of ``n`` samples ``fraction`` holds out: at least 1, at most ``n - 1``."""
    k = max(1, round(fraction * n))
    if k >= n:
        raise DataError(
            f"{name}: data.{option}={fraction} of {n} samples leaves none for training; "
            "lower it (or raise data.limit)"
        )
    return k


@dataclass(frozen=True)
class Rows:
    """Which rows of a :class:`Source` each split takes (sorted indices into ``X``); ``test``
    None means the official test split, ``X_test``."""

    train: np.ndarray
    val: np.ndarray | None
    test: np.ndarray | None


def split_rows(name: str, split: str, src: Source, common: Mapping[str, Any], rng) -> Rows:
    """The rows of ``src`` that make the train, validation (None without) and test splits.

    ``split`` is the data set's kind of split (:data:`OFFICIAL`, :data:`FRACTION`, :data:`REUSE`);
    ``common`` holds its checked common options.
    """
    y = src.y
    if split == REUSE:
        every = np.arange(len(y))
        return Rows(every, every, every)
    if split == OFFICIAL:
        pool, test = np.arange(len(y)), None
    else:
        n_test = _count(name, "test_fraction", common["test_fraction"], len(y))
        pool, test = stratified_split(y, n_test, rng)
    limit = common["limit"]
    if limit is not None and limit < len(pool):
        _, keep = stratified_split(y[pool], limit, rng)
        pool = pool[keep]
    val = None
    if common["val_fraction"] > 0:
        n_val = _count(name, "val_fraction", common["val_fraction"], len(pool))
        rest, held = stratified_split(y[pool], n_val, rng)
        val, pool = pool[held], pool[rest]
    return Rows(pool, val, test)


def scaled_features(src: Source, rows: Rows, kind: str, dtype: np.dtype, kept_as: Any):
    """``(scaler, features)``: the scaling fitted on the training rows, and
    ``features(part, rows)``, the scaled ``(len(rows), d)`` features of those rows of ``src.X``
    (None: of ``X_test``) for ``part`` (train, val or test).

    Each split's raw rows are gathered, then scaled. With ``kept_as`` (a key: the jobs of a
    sweep) and a scaling that ignores the split (``none``; ``minmax`` over a known value range),
    every sample is scaled once instead and kept for the next call, and each split's rows are
    gathered from that into the previous call's arrays once nobody holds those
    (:mod:`nnexp.data.kept`). Either way each number is ``transform``'s, bit for bit.
    """
    if kept_as is not None and (kind == "none" or (kind == "minmax" and src.value_range is not None)):
        scaler = fit_scaler(kind, src.X[:0], src.value_range)

        def scale_all():
            both = (transform(src.X, scaler, dtype),
                    None if src.X_test is None else transform(src.X_test, scaler, dtype))
            kept.read_only(*both)
            return both

        X, X_test = kept.remember("scaled", kept_as, scale_all)
        return scaler, lambda part, r: X_test if r is None else kept.gather(part, X, r)
    X_train = src.X[rows.train]
    scaler = fit_scaler(kind, X_train, src.value_range)
    return scaler, lambda part, r: transform(
        src.X_test if r is None else X_train if r is rows.train else src.X[r], scaler, dtype)
