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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnexp.data import kept, mnist, synthetic, tabular
from nnexp.data.base import Source, check_choice, check_float, check_int
from nnexp.data.preprocess import SCALINGS, TARGETS, Scaler, encode_targets
from nnexp.data.split import FRACTION, OFFICIAL, REUSE, scaled_features, split_rows
from nnexp.errors import DataError

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
        generated: the samples are drawn from ``rng`` (synthetic sets), so they follow the seed
            and are never kept between calls.
    """

    fetch: Callable[..., Source]
    split: str
    scaling: str
    val_fraction: float = 0.0
    test_fraction: float | None = None
    generated: bool = False

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
    "xor": Loader(synthetic.load_xor, REUSE, "none", generated=True),
    "spiral": Loader(synthetic.load_spiral, FRACTION, "none", 0.2, 0.2, generated=True),
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


def _check_dtype(dtype: Any) -> np.dtype:
    """The core decides which dtypes exist (:func:`nnexp.core._checks.resolve_dtype`)."""
    from nnexp.core._checks import resolve_dtype

    try:
        return resolve_dtype(dtype)
    except ValueError as error:
        raise DataError(str(error)) from None


def load(
    name: str, *, dtype: Any = "float64", targets: str = "one_hot", seed: int = 0, reuse: bool = False,
    **options: Any
) -> Dataset:
    """Load data set ``name`` and return its train/val/test arrays, ready for training.

    Args:
        name: a key of :data:`DATASETS`.
        dtype: "float32" or "float64" (or the np.dtype): dtype of every returned X and Y.
        targets: "one_hot" (Y ``(n, n_classes)``) or "binary" (Y ``(n, 1)`` of 0/1; two-class
            data sets only).
        seed: non-negative int; the same name, options and seed give identical arrays.
        reuse: keep the fetched samples (and, where the scaling ignores the split, their scaled
            form) for the next call with the same data set and options in this process: the
            jobs of a sweep (:mod:`nnexp.data.kept`). The arrays are the same either way; with
            ``reuse`` the official test split's are shared between calls and read-only.
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
    kept_as = (name, repr(sorted(specific.items()))) if reuse and not loader.generated else None

    def fetch():
        return loader.fetch(rng=np.random.default_rng(data_seed), **specific)

    src = kept.remember("source", kept_as, fetch) if kept_as is not None else fetch()
    n_classes = len(src.class_names)
    if targets == "binary" and n_classes != 2:
        raise DataError(
            f"{name} has {n_classes} classes but targets=binary needs exactly 2; "
            "use targets=one_hot with a softmax output"
        )

    rows = split_rows(name, loader.split, src, common, np.random.default_rng(split_seed))
    scaled_as = None if kept_as is None else (*kept_as, common["scaling"], dtype.str)
    scaler, features = scaled_features(src, rows, common["scaling"], dtype, scaled_as)
    y_test = src.y_test if rows.test is None else src.y[rows.test]

    def ready(part, r, y):
        return features(part, r), encode_targets(y, n_classes, targets, dtype)

    y_train = src.y[rows.train]
    y_val = None if rows.val is None else src.y[rows.val]
    return Dataset(
        name=name,
        train=ready("train", rows.train, y_train),
        val=None if rows.val is None else ready("val", rows.val, y_val),
        test=ready("test", rows.test, y_test),
        y_train=np.ascontiguousarray(y_train),
        y_val=None if y_val is None else np.ascontiguousarray(y_val),
        y_test=np.ascontiguousarray(y_test),
        class_names=src.class_names,
        n_inputs=src.X.shape[1],
        n_outputs=1 if targets == "binary" else n_classes,
        dtype=dtype,
        scaler=scaler,
        raw_example=np.array(src.X_test[:5] if rows.test is None else src.X[rows.test[:5]]),
    )
