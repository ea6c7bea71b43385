"""The data set registry and :func:`load`: a name and options in, a ready :class:`Dataset` out.

``load`` runs the same stages for every data set, in this order:

1. fetch the raw samples with the registered loader (:class:`~nnexp.data.base.Source`);
2. split: the official test split (MNIST), or a stratified ``test_fraction`` of the data; then
   ``limit`` subsamples what is left for training (stratified), then ``val_fraction`` of that
   becomes the validation split (stratified);
3. fit the scaling on the training split only and apply it to all three, casting to ``dtype``
   once;
4. encode the targets (one-hot, or a 0/1 column for a sigmoid output).

Randomness: ``seed`` feeds two independent streams, one for generating synthetic data and one
for the splits, so the same name, options and seed always give identical arrays, and changing
a split option does not move the spiral's points.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnexp.data import mnist, synthetic, tabular
from nnexp.data.base import Source, check_choice, check_float, check_int
from nnexp.data.preprocess import SCALINGS, Scaler, TARGETS, encode_targets, fit_scaler, stratified_split, transform
from nnexp.errors import DataError

# How a data set's test (and validation) split is made.
OFFICIAL = "official"  # the publisher's test split; validation drawn from the training split
FRACTION = "fraction"  # a stratified test_fraction of all samples, then validation from the rest
REUSE = "reuse"  # every split is all the data (xor: see synthetic.load_xor for why)

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Ready arrays for one run.

    Attributes:
        name: registry name of the data set.
        train, val, test: ``(X, Y)`` pairs; ``X`` is ``(n, n_inputs)``, ``Y`` is
            ``(n, n_outputs)``, both C-contiguous in ``dtype``. ``val`` is None when
            ``val_fraction`` is 0.
        y_train, y_val, y_test: the same samples' integer class indices, ``(n,)`` int64
            (``y_val`` None with ``val``).
        class_names: one name per class, in class-index order.
        n_inputs: number of features.
        n_outputs: width of ``Y``: the number of classes (one-hot) or 1 (binary).
        dtype: dtype of every ``X`` and ``Y``.
        scaler: the ``(shift, scale)`` fitted on the raw training features (``X = (raw - shift)
            / scale``), or None without scaling: a logged model applies it to raw inputs.
        raw_example: a few raw test rows ``(k, n_inputs)``, the logged model's input example.
    """

    name: str
    train: Split
    val: Split | None
    test: Split
    y_train: np.ndarray
    y_val: np.ndarray | None
    y_test: np.ndarray
    class_names: tuple[str, ...]
    n_inputs: int
    n_outputs: int
    dtype: np.dtype
    scaler: Scaler = None
    raw_example: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        """Number of classes (also for binary targets, where it is 2)."""
        return len(self.class_names)

    def __repr__(self) -> str:
        n_val = 0 if self.y_val is None else len(self.y_val)
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, val={n_val}, "
            f"test={len(self.y_test)}, n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, "
            f"dtype={self.dtype})"
        )


@dataclass(frozen=True)
class Loader:
    """One registry entry: how to fetch a data set, how to split it, and its default options.

    Attributes:
        fetch: ``fetch(*, rng, **specific) -> Source``; its keyword parameters after ``rng``
            are the data set's own options and their defaults (e.g. spiral's ``noise``).
        split: OFFICIAL, FRACTION or REUSE.
        scaling, val_fraction, test_fraction: defaults of the common options.
    """

    fetch: Callable[..., Source]
    split: str
    scaling: str
    val_fraction: float = 0.0
    test_fraction: float | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every option this data set accepts, with its default (``conf/data/<name>.yaml``)."""
        common: dict[str, Any] = {"scaling": self.scaling}
        if self.split != REUSE:
            common["val_fraction"] = self.val_fraction
        if self.split == FRACTION:
            common["test_fraction"] = self.test_fraction
        if self.split != REUSE:
            common["limit"] = None
        params = inspect.signature(self.fetch).parameters
        return common | {k: p.default for k, p in params.items() if k != "rng"}


DATASETS: dict[str, Loader] = {
    "breast_cancer": Loader(tabular.load_breast_cancer, FRACTION, "standardize", 0.2, 0.2),
    "digits": Loader(tabular.load_digits, FRACTION, "minmax", 0.2, 0.2),
    "mnist": Loader(mnist.load_mnist, OFFICIAL, "minmax", 0.1),
    "fashion_mnist": Loader(mnist.load_fashion_mnist, OFFICIAL, "minmax", 0.1),
    "xor": Loader(synthetic.load_xor, REUSE, "none"),
    "spiral": Loader(synthetic.load_spiral, FRACTION, "none", 0.2, 0.2),
}


# The options every data set may take (which ones depends on its split), checked before
# anything is fetched so that a typo fails at once, not after a download.
_COMMON_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "scaling": lambda name, v: check_choice(name, "scaling", v, SCALINGS),
    "val_fraction": lambda name, v: check_float(name, "val_fraction", v, low=0.0, high=1.0, high_open=True),
    "test_fraction": lambda name, v: check_float(
        name, "test_fraction", v, low=0.0, high=1.0, low_open=True, high_open=True
    ),
    "limit": lambda name, v: None if v is None else check_int(name, "limit", v, low=1),
}


def _count(name: str, option: str, fraction: float, n: int) -> int:
    """Return how many of ``n`` samples ``fraction`` holds out: at least 1, at most ``n - 1``."""
    k = max(1, round(fraction * n))
    if k >= n:
        raise DataError(
            f"{name}: data.{option}={fraction} of {n} samples leaves none for training; "
            "lower it (or raise data.limit)"
        )
    return k


def _split(name: str, loader: Loader, src: Source, common: Mapping[str, Any], rng) -> tuple:
    """Return ``(train, val, test)`` as ``(X, y)`` pairs of raw (unscaled) arrays; val may be None.

    ``common`` holds the checked common options of ``loader``'s split kind.
    """
    X, y = src.X, src.y
    if loader.split == REUSE:
        return (X, y), (X, y), (X, y)
    if loader.split == OFFICIAL:
        pool = np.arange(len(y))
        test = (src.X_test, src.y_test)
    else:
        n_test = _count(name, "test_fraction", common["test_fraction"], len(y))
        pool, held = stratified_split(y, n_test, rng)
        test = (X[held], y[held])
    limit = common["limit"]
    if limit is not None and limit < len(pool):
        _, keep = stratified_split(y[pool], limit, rng)
        pool = pool[keep]
    val = None
    if common["val_fraction"] > 0:
        n_val = _count(name, "val_fraction", common["val_fraction"], len(pool))
        rest, held = stratified_split(y[pool], n_val, rng)
        val = (X[pool[held]], y[pool[held]])
        pool = pool[rest]
    return (X[pool], y[pool]), val, test


def _check_dtype(dtype: Any) -> np.dtype:
    """The core decides which dtypes exist (:func:`nnexp.core._checks.resolve_dtype`)."""
    from nnexp.core._checks import resolve_dtype

    try:
        return resolve_dtype(dtype)
    except ValueError as error:
        raise DataError(str(error)) from None


def load(
    name: str, *, dtype: Any = "float64", targets: str = "one_hot", seed: int = 0, **options: Any
) -> Dataset:
    """Load data set ``name`` and return its train/val/test arrays, ready for training.

    Args:
        name: a key of :data:`DATASETS`.
        dtype: "float32" or "float64" (or the np.dtype): dtype of every returned X and Y.
        targets: "one_hot" (Y ``(n, n_classes)``) or "binary" (Y ``(n, 1)`` of 0/1; two-class
            data sets only).
        seed: non-negative int; the same name, options and seed give identical arrays.
        **options: the data set's options (``Loader.defaults`` lists them and their defaults):
            ``scaling`` (standardize | minmax | none), ``val_fraction`` in [0, 1),
            ``test_fraction`` in (0, 1) (data sets without an official test split), ``limit``
            (None or int >= 1: stratified subsample of the training data, before the
            validation split), and per-set ones such as ``root``, ``download``, ``mirrors``
            (MNIST) or ``n_classes``, ``n_per_class``, ``noise`` (spiral).

    Returns:
        A :class:`Dataset`.

    Raises:
        DataError: unknown name or option, a value out of range, or data that are missing,
            corrupt or cannot be downloaded.
    """
    loader = DATASETS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise DataError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)} (data=<name>)")
    dtype = _check_dtype(dtype)
    if targets not in TARGETS:
        raise DataError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    defaults = loader.defaults
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise DataError(
            f"{name}: unknown data option {', '.join(f'data.{k}' for k in unknown)}; "
            f"valid options are {', '.join(defaults) or 'none'}"
        )
    opts = defaults | options
    common = {k: check(name, opts[k]) for k, check in _COMMON_CHECKS.items() if k in opts}
    specific = {k: v for k, v in opts.items() if k not in _COMMON_CHECKS}

    data_seed, split_seed = np.random.SeedSequence(int(seed)).spawn(2)
    src = loader.fetch(rng=np.random.default_rng(data_seed), **specific)
    n_classes = len(src.class_names)
    if targets == "binary" and n_classes != 2:
        raise DataError(
            f"{name} has {n_classes} classes but targets=binary needs exactly 2; "
            "use targets=one_hot with a softmax output"
        )

    train, val, test = _split(name, loader, src, common, np.random.default_rng(split_seed))
    scaler = fit_scaler(common["scaling"], train[0], src.value_range)

    def ready(part):
        X, y = part
        return transform(X, scaler, dtype), encode_targets(y, n_classes, targets, dtype)

    return Dataset(
        name=name,
        train=ready(train),
        val=None if val is None else ready(val),
        test=ready(test),
        y_train=np.ascontiguousarray(train[1]),
        y_val=None if val is None else np.ascontiguousarray(val[1]),
        y_test=np.ascontiguousarray(test[1]),
        class_names=src.class_names,
        n_inputs=train[0].shape[1],
        n_outputs=1 if targets == "binary" else n_classes,
        dtype=dtype,
        scaler=scaler,
        raw_example=np.array(test[0][:5]),
    )
