"""MNIST and Fashion-MNIST: locate, download, verify and load the four IDX files of each.

The files of a data set live in one sub-folder of the data root (``<root>/mnist``,
``<root>/fashion-mnist``: the two sets share file names). The root is the ``root`` option, else
``$NNEXP_DATA_DIR``, else ``data/`` under the working directory. Each file may be gzipped
(``train-images-idx3-ubyte.gz``, as distributed) or raw (the same name without ``.gz``).

Loading never trusts a file: each is verified (see :mod:`nnexp.data.idx`) the first time its
exact bytes are seen, and its parsed array is cached under its checksum (:mod:`nnexp.data.cache`).
Checksums of the official files are checked on download; on load the structure is checked
instead, so that an unpacked or re-compressed copy of the same data also loads.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnexp.data import cache, idx
from nnexp.data.base import Source, check_bool, check_urls
from nnexp.data.files import sha256_file
from nnexp.errors import DataError

TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
STEMS = TRAIN + TEST


@dataclass(frozen=True)
class IdxDataSet:
    """One MNIST-format data set.

    Attributes:
        name: registry name, e.g. ``"mnist"``.
        folder: its sub-folder of the data root.
        class_names: one per label value 0..9.
        sha256: official ``.gz`` file name -> its SHA-256 (from the publishers' files).
        mirrors: default base URLs to download from, tried in order.
    """

    name: str
    folder: str
    class_names: tuple[str, ...]
    sha256: dict[str, str]
    mirrors: tuple[str, ...]


MNIST = IdxDataSet(
    name="mnist",
    folder="mnist",
    class_names=tuple(str(d) for d in range(10)),
    sha256={
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
)

FASHION_MNIST = IdxDataSet(
    name="fashion_mnist",
    folder="fashion-mnist",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    sha256={
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
)

IDX_SETS = {s.name: s for s in (MNIST, FASHION_MNIST)}


def data_root(root: str | os.PathLike | None) -> Path:
    """Return the data root: ``root`` if given, else ``$NNEXP_DATA_DIR``, else ``./data``."""
    if root is None:
        root = os.environ.get("NNEXP_DATA_DIR") or Path.cwd() / "data"
    return Path(root).expanduser()


def _find(folder: Path, stem: str) -> Path | None:
    """Return the gzipped or raw file for ``stem`` in ``folder``, or None; a symbolic link
    that leads nowhere (a loop, a missing target) is reported as such, not as missing."""
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
        if path.is_symlink():
            _broken_link(path)
    return None


def _broken_link(path: Path) -> None:
    """Raise the DataError that says why the symbolic link ``path`` reaches no file."""
    try:
        path.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError(f"data file {path} is a symlink loop (it leads back to itself through "
                            f"{os.readlink(path)}); replace it with the file or a link to it") from None
        raise DataError(f"data file {path} is a symlink to {os.readlink(path)}, which cannot be opened "
                        f"({error.strerror}); fix the link or replace it with the file") from None
    raise DataError(f"data file {path} is a symlink to {os.readlink(path)}, which is not a file; "
                    f"fix the link or replace it with the file")


def download(spec: IdxDataSet, root=None, mirrors=None, *, timeout: float | None = None) -> Path:
    """Make sure the four official files of ``spec`` are in its folder, verified; return it.

    Files already there with the right checksum are kept; missing ones and ones whose checksum
    differs are downloaded (replacing the old file only once the new one is verified).
    """
    from nnexp.data.download import TIMEOUT, fetch_files

    folder = data_root(root) / spec.folder
    wanted = {
        name: sha
        for name, sha in spec.sha256.items()
        if not (folder / name).is_file() or sha256_file(folder / name) != sha
    }
    if wanted:
        fetch_files(wanted, folder, mirrors or spec.mirrors, dataset=spec.name,
                    timeout=TIMEOUT if timeout is None else timeout)
    return folder


def _locate(spec: IdxDataSet, root, download_missing: bool, mirrors) -> dict[str, Path]:
    """Return stem -> file for the four files, downloading missing ones if allowed."""
    folder = data_root(root) / spec.folder
    found = {stem: _find(folder, stem) for stem in STEMS}
    missing = [f"{stem}.gz" for stem, path in found.items() if path is None]
    if not missing:
        return found
    if not download_missing:
        raise DataError(
            f"{spec.name}: missing from {folder}: {', '.join(missing)}; put them there, point "
            f"data.root or $NNEXP_DATA_DIR at the folder holding {spec.folder}/, or run "
            f"`python -m nnexp.data download {spec.name}` (downloading is off: data.download=false)"
        )
    from nnexp.data.download import fetch_files

    fetch_files({name: spec.sha256[name] for name in missing}, folder, mirrors, dataset=spec.name)
    return {stem: _find(folder, stem) for stem in STEMS}


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images (n, rows, cols), labels (n,))`` uint8, from the cache when it is valid."""
    images = idx.read_header(images_path, idx.IMAGES_MAGIC)
    labels = idx.read_header(labels_path, idx.LABELS_MAGIC)
    idx.check_pair(images, labels)
    keys = sha256_file(images_path), sha256_file(labels_path)
    cached = cache.lookup(keys[0], images.shape), cache.lookup(keys[1], labels.shape)
    if cached[0] is not None and cached[1] is not None:
        return cached
    arrays = idx.parse_pair(images, labels)
    for key, array in zip(keys, arrays):
        cache.store(key, array)
    return arrays


def load_idx_set(spec: IdxDataSet, *, root, download: bool, mirrors) -> Source:
    """Return the official train and test splits of ``spec`` as a :class:`Source`.

    ``X``: ``(60000, 784)`` uint8 (read-only memory map when cached), ``y``: ``(60000,)``;
    ``X_test``/``y_test`` likewise with 10,000 rows (other counts and image sizes are accepted
    as long as the files agree with themselves and each other).
    """
    download = check_bool(spec.name, "download", download)
    mirrors = check_urls(spec.name, "mirrors", mirrors)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise DataError(f"{spec.name}: data.root must be a folder path or null, got {root!r}")
    files = _locate(spec, root, download, mirrors)
    hint = f" (`python -m nnexp.data download {spec.name}` fetches a verified one)"
    try:
        X, y = _load_pair(files[TRAIN[0]], files[TRAIN[1]])
        X_test, y_test = _load_pair(files[TEST[0]], files[TEST[1]])
    except DataError as e:
        raise DataError(str(e) + hint) from e
    if X.shape[1:] != X_test.shape[1:]:
        raise DataError(
            f"{spec.name}: training images are {X.shape[1:]} pixels but test images "
            f"{X_test.shape[1:]} in {files[TRAIN[0]].parent}; replace them with matching files"
        )
    n_classes = len(spec.class_names)
    for path, labels in ((files[TRAIN[1]], y), (files[TEST[1]], y_test)):
        if labels.size and int(labels.max()) >= n_classes:
            raise DataError(
                f"data file {path} has label {int(labels.max())}, but {spec.name} has "
                f"{n_classes} classes (0..{n_classes - 1}); replace it with an intact copy{hint}"
            )
    # Images become rows of rows*cols pixels; reshape of a C-contiguous map is free.
    return Source(
        X=X.reshape(len(X), -1),
        y=y.astype(np.int64),
        class_names=spec.class_names,
        X_test=X_test.reshape(len(X_test), -1),
        y_test=y_test.astype(np.int64),
        value_range=(0.0, 255.0),
    )


def load_mnist(*, rng, root=None, download=True, mirrors=MNIST.mirrors) -> Source:
    """Loader for ``mnist``: 60,000 training and 10,000 test images of handwritten digits."""
    return load_idx_set(MNIST, root=root, download=download, mirrors=mirrors)


def load_fashion_mnist(*, rng, root=None, download=True, mirrors=FASHION_MNIST.mirrors) -> Source:
    """Loader for ``fashion_mnist``: 60,000 training and 10,000 test images of clothing."""
    return load_idx_set(FASHION_MNIST, root=root, download=download, mirrors=mirrors)
