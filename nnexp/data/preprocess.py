"""Array preparation: stratified splits, feature scaling fitted on the training split, targets.

Everything here is vectorised NumPy and works on index arrays where it can, so that large image
sets are gathered once (as uint8) and cast to the run's dtype once.
"""

from __future__ import annotations

import numpy as np

SCALINGS = ("standardize", "minmax", "none")
TARGETS = ("one_hot", "binary")

# (shift, scale): a feature x becomes (x - shift) / scale; None means no scaling.
Scaler = tuple[np.ndarray, np.ndarray] | None


def stratified_split(
    y: np.ndarray, n_held: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(kept, held)``, ``held`` having ``n_held`` samples.

    Each class gives ``n_held * n_c / n`` of its ``n_c`` samples to ``held``, rounded so that the
    counts add up exactly (largest remainders first, ties to the larger class), which keeps class
    ratios within one sample per class. Samples are drawn at random within each class.

    Args:
        y: ``(n,)`` non-negative integer labels.
        n_held: how many samples to hold out, ``0 <= n_held <= n``.
        rng: the source of randomness; the same state gives the same split.

    Returns:
        Two sorted int64 index arrays that partition ``range(n)``.
    """
    n = len(y)
    counts = np.bincount(y)
    # Integer arithmetic: the quotas counts * n_held / n add up to n_held exactly.
    take, remainder = np.divmod(counts * n_held, max(n, 1))
    short = n_held - int(take.sum())
    if short > 0:
        # Largest remainder first (each such class has room for one more); np.lexsort sorts by
        # its last key first.
        order = np.lexsort((-counts, -remainder))
        take[order[:short]] += 1
    # Group the indices by class with a random order inside each class, then keep the first
    # `take[c]` of every group: a random stratified sample without a Python loop over classes.
    perm = rng.permutation(n)
    grouped = perm[np.argsort(y[perm], kind="stable")]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    labels = y[grouped]
    rank = np.arange(n) - starts[labels]
    chosen = rank < take[labels]
    return np.sort(grouped[~chosen]), np.sort(grouped[chosen])


def fit_scaler(kind: str, X: np.ndarray, value_range: tuple[float, float] | None = None) -> Scaler:
    """Fit a scaling on the training features ``X`` ``(n, d)``; return ``(shift, scale)`` or None.

    - ``standardize``: shift = per-feature mean, scale = per-feature standard deviation; a
      feature that is constant on the training split gets scale 1 (it becomes 0, not NaN).
    - ``minmax``: maps ``value_range`` to [0, 1] when the range is known (pixels), else the
      training min/max of each feature (a constant feature gets scale 1). Validation and test
      values outside the training range fall outside [0, 1]; that is information, not an error.
    - ``none``: None.

    Statistics are computed in float64 whatever the input dtype. Returns ``(1, d)`` float64 arrays.
    """
    if kind == "none":
        return None
    d = X.shape[1]
    if kind == "minmax" and value_range is not None:
        low, high = value_range
        return np.full((1, d), float(low)), np.full((1, d), float(high - low))
    if kind == "standardize":
        shift = X.mean(axis=0, dtype=np.float64, keepdims=True)
        scale = X.std(axis=0, dtype=np.float64, keepdims=True)
    elif kind == "minmax":
        shift = X.min(axis=0, keepdims=True).astype(np.float64)
        scale = X.max(axis=0, keepdims=True).astype(np.float64) - shift
    else:
        raise ValueError(f"unknown scaling {kind!r}")  # load() validates; this is a bug
    # Rounding leaves a constant float feature a std of ~1e-16 * |mean|, not 0: treat that as 0.
    # Its computed mean is off by as much, so shift by its actual value: it becomes exactly 0.
    constant = (scale <= 1e-12 * np.maximum(np.abs(shift), 1.0))[0]
    scale[:, constant] = 1.0
    if len(X):
        shift[:, constant] = X[0, constant]
    return shift, scale


def transform(X: np.ndarray, scaler: Scaler, dtype: np.dtype) -> np.ndarray:
    """Return ``(X - shift) / scale`` as a new C-contiguous ``dtype`` array of X's shape.

    The arithmetic runs in the wider of X's dtype and ``dtype`` and is rounded to ``dtype`` once:
    uint8 pixels for a float32 run are computed in float32 (half the memory traffic of float64),
    float64 tables in float64 (rounding 3.7 to float32 before subtracting it would leave 5e-8).
    """
    if scaler is None:
        out = np.empty(X.shape, dtype=dtype)
        out[...] = X
        return out
    work = np.promote_types(X.dtype, dtype)
    shift, scale = (a.astype(work) for a in scaler)
    out = np.empty(X.shape, dtype=work)
    # Divide rather than multiply by 1/scale: 255 / 255 is exactly 1, 255 * (1/255) may not be.
    if shift.any():
        np.subtract(X, shift, out=out)
        np.divide(out, scale, out=out)
    else:  # pixels scaled from (0, 255): one pass over the data instead of two
        np.divide(X, scale, out=out)
    return out if work == dtype else out.astype(dtype)


def encode_targets(y: np.ndarray, n_classes: int, kind: str, dtype: np.dtype) -> np.ndarray:
    """Return targets for integer labels ``y`` ``(n,)``.

    ``one_hot``: ``(n, n_classes)`` with a single 1 a row (softmax outputs); ``binary``:
    ``(n, 1)`` 0/1 column, 1 for class 1 (a single sigmoid output; two classes only).
    """
    if kind == "binary":
        return y.astype(dtype).reshape(-1, 1)
    Y = np.zeros((len(y), n_classes), dtype=dtype)
    Y[np.arange(len(y)), y] = 1
    return Y
