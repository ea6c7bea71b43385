"""Embedded tabular data sets read from scikit-learn's bundled files, without importing sklearn.

``import sklearn`` costs about 1.8 s; the files it ships are plain CSV, so we only ask the import
system where the package lives (``find_spec`` of a top-level package does not import it) and
read them with NumPy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from nnexp.data.base import Source
from nnexp.errors import DataError

_BC_CLASSES = ("benign", "malignant")


def sklearn_data_file(name: str) -> Path:
    """Return the path of ``sklearn/datasets/data/<name>``; DataError if it is not installed."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
        if path.is_file():
            return path
    raise DataError(
        f"the embedded data file sklearn/datasets/data/{name} was not found; install "
        "scikit-learn (`pip install scikit-learn`), which ships it"
    )


def _read_csv(path: Path, skiprows: int) -> np.ndarray:
    try:
        return np.loadtxt(path, delimiter=",", skiprows=skiprows, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"cannot parse {path} ({e}); reinstall scikit-learn") from e


def load_breast_cancer(*, rng) -> Source:
    """Loader for ``breast_cancer``: 569 tumours, 30 float64 features, benign/malignant.

    The class order is (benign, malignant), so label 1 -- the sigmoid output of ``targets="binary"``
    -- means malignant, the finding a diagnostic model is asked about. (scikit-learn's file codes
    0 = malignant; we flip it.) 357 benign, 212 malignant.
    """
    path = sklearn_data_file("breast_cancer.csv")
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = _read_csv(path, skiprows=1)
    # The header line is "569,30,malignant,benign": check the body agrees before using it.
    n, d = int(header[0]), int(header[1])
    if data.shape != (n, d + 1) or not np.isin(data[:, -1], (0, 1)).all():
        raise DataError(f"{path} does not hold {n} rows of {d} features and a 0/1 target; reinstall scikit-learn")
    return Source(
        X=np.ascontiguousarray(data[:, :-1]),
        y=1 - data[:, -1].astype(np.int64),
        class_names=_BC_CLASSES,
    )


def load_digits(*, rng) -> Source:
    """Loader for ``digits``: 1,797 8x8 images of digits, 64 float64 features in 0..16, 10 classes."""
    path = sklearn_data_file("digits.csv.gz")
    data = _read_csv(path, skiprows=0)  # np.loadtxt unpacks .gz by itself
    if data.shape[1] != 65 or len(data) == 0:
        raise DataError(f"{path} does not hold rows of 64 pixels and a label; reinstall scikit-learn")
    return Source(
        X=np.ascontiguousarray(data[:, :-1]),
        y=data[:, -1].astype(np.int64),
        class_names=tuple(str(d) for d in range(10)),
        value_range=(0.0, 16.0),  # 4x4 blocks of a 32x32 bitmap: 0..16 pixels on
    )
