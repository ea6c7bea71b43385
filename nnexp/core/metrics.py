"""Class labels from scores, and accuracy: the one definition every part of nnexp uses.

A score matrix ``S`` of shape ``(n_samples, n_columns)`` (network outputs or targets) gives one
label per row:

- more than one column (softmax, multi-column sigmoid or identity outputs, one-hot targets):
  ``argmax_j S_ij``;
- a single column (a sigmoid output, a 0/1 target column): ``[S_i0 > 0.5]``.

So targets and predictions go through the same rule, and ``accuracy(P, Y)`` is the fraction of
rows whose labels agree.
"""

from __future__ import annotations

import numpy as np


def _threshold(S: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.greater(S[0], 0.5, out=out)          # bool -> intp is a safe cast


def _argmax(S: np.ndarray, out: np.ndarray) -> np.ndarray:
    return S.argmax(axis=0, out=out)               # the method skips np.argmax's wrapper


def labeler(n_columns: int):
    """The labelling rule for ``n_columns`` outputs, as a function ``(S, out) -> out`` on
    *transposed* scores ``S`` of shape ``(n_columns, n_samples)`` (the network's internal
    layout), writing into a preallocated ``intp`` array: one NumPy call per batch."""
    return _threshold if n_columns == 1 else _argmax


def to_labels(S: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Integer labels, shape ``(n_samples,)``; written into ``out`` (dtype ``intp``) if given.

    A 1-D ``S`` is read as a single column.
    """
    S = np.asarray(S)
    if S.ndim == 1:
        S = S.reshape(-1, 1)
    if out is None:
        out = np.empty(S.shape[0], np.intp)
    return labeler(S.shape[1])(S.T, out)


def accuracy(P: np.ndarray, Y: np.ndarray) -> float:
    """Fraction of rows where ``to_labels(P)`` equals ``to_labels(Y)``; nan for no rows."""
    P, Y = np.asarray(P), np.asarray(Y)
    if P.shape[0] != Y.shape[0]:
        raise ValueError(f"accuracy: P has {P.shape[0]} rows but Y has {Y.shape[0]}")
    if P.shape[0] == 0:
        return float("nan")
    return np.count_nonzero(to_labels(P) == to_labels(Y)) / P.shape[0]
