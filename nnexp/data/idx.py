"""IDX files (the MNIST format): header checks, exact-size verification, parsing via python-mnist.

An IDX file is a big-endian header -- two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions, then one uint32 per dimension -- followed by the items. Images are 3-d
(count, rows, cols, magic 2051), labels 1-d (count, magic 2049). Files named ``*.gz`` are
gzip-compressed (python-mnist's convention), anything else is read raw.

python-mnist reads whatever bytes are there: a truncated file silently gives fewer or shorter
images. So every file is checked here first -- magic number, dimensions, equal counts of images
and labels, and the exact size the header promises -- and each problem is a one-line
:class:`~nnexp.errors.DataError` naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import gzip
import itertools
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnexp.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20

# What to tell the user for any broken file; the caller's data set adds the download command.
_FIX = "replace it with an intact copy"


@dataclass(frozen=True)
class IdxHeader:
    """The header of one IDX file.

    Attributes:
        path: the file.
        shape: the array the file holds, e.g. ``(60000, 28, 28)`` or ``(60000,)``.
    """

    path: Path
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        """Number of items (images or labels): the first dimension."""
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Exact size of the uncompressed file: header plus one byte an item."""
        return 4 + 4 * len(self.shape) + int(np.prod(self.shape))


def _is_gz(path: Path) -> bool:
    return path.name.endswith(".gz")


def _open(path: Path):
    """Open ``path`` for binary reading, through gzip when it is named ``*.gz``."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read data file {path}: {e.strerror}; check it exists and is readable") from e
    if not _is_gz(path):
        return f
    with f:
        start = f.read(2)
    if start != _GZIP_MAGIC:
        raise DataError(
            f"data file {path} is named .gz but is not gzip-compressed (browsers sometimes unpack "
            "downloads); drop the .gz from its name if it is the raw file, or download it again"
        )
    return gzip.open(path, "rb")


def _gzip_error(path: Path, e: Exception) -> DataError:
    return DataError(f"data file {path} is not a valid gzip file ({e}); {_FIX}")


def read_header(path: str | os.PathLike, magic: int) -> IdxHeader:
    """Read and check the header of the IDX file at ``path``; return it.

    ``magic`` is :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`. Reads 16 bytes at most, so it is
    cheap even for a gzipped file. Raises DataError on a wrong magic number or an empty dimension.
    """
    path = Path(path)
    ndim = magic & 0xFF
    what = "image" if magic == IMAGES_MAGIC else "label"
    size = 4 + 4 * ndim
    try:
        with _open(path) as f:
            head = f.read(size)
    except (OSError, EOFError, zlib.error) as e:
        raise _gzip_error(path, e) from e
    if len(head) < 4:
        raise DataError(f"data file {path} is truncated: {len(head)} bytes, too short for an IDX header; {_FIX}")
    (found,) = struct.unpack(">I", head[:4])
    if found != magic:
        raise DataError(
            f"data file {path} is not an IDX {what} file: magic number {found}, expected {magic}; "
            f"check the file name and {_FIX}"
        )
    if len(head) < size:
        raise DataError(f"data file {path} is truncated inside its header ({len(head)} of {size} bytes); {_FIX}")
    shape = struct.unpack(f">{ndim}I", head[4:])
    if 0 in shape[1:] or shape[0] == 0:
        raise DataError(f"data file {path} has an empty dimension in its header {shape}; {_FIX}")
    return IdxHeader(path, tuple(shape))


def verify_size(header: IdxHeader) -> None:
    """Check that the file holds exactly the bytes its header promises; raise DataError if not.

    A raw file is checked with ``stat``; a gzipped one is decompressed in chunks (its CRC is
    checked by gzip at the end), which also catches a truncated or corrupt gzip stream. Reading
    stops one byte past the expected size: a small gzip that expands to gigabytes is "too long"
    after the expected bytes, not after all of them.
    """
    path, expected = header.path, header.nbytes
    if not _is_gz(path):
        size = path.stat().st_size
    else:
        size = 0
        try:
            with _open(path) as f:
                while size <= expected and (chunk := f.read(min(_CHUNK, expected + 1 - size))):
                    size += len(chunk)
        except (OSError, EOFError, zlib.error) as e:
            raise _gzip_error(path, e) from e
    if size != expected:
        held = f"it holds {size}" if size < expected or not _is_gz(path) else "it holds more"
        raise DataError(
            f"data file {path} is {'truncated' if size < expected else 'too long'}: its header "
            f"{header.shape} needs {expected} bytes, {held}; {_FIX}"
        )


def check_pair(images: IdxHeader, labels: IdxHeader) -> None:
    """Raise DataError unless the image and label files describe the same number of samples."""
    if images.count != labels.count:
        raise DataError(
            f"data files {images.path.name} and {labels.path.name} in {images.path.parent} do not "
            f"match: {images.count} images but {labels.count} labels; replace them with a "
            "matching pair"
        )


def _mnist_reader():
    """Return python-mnist's loader class, imported with its one known SyntaxWarning silenced.

    python-mnist 0.7 compares with literals (``is 'lists'``, ``len(batch) is not 2``); CPython
    warns when it first compiles that module ('"is" with a literal', '"is not" with a literal';
    3.12 words them '"is" with 'str' literal'), and under ``-W error`` the warning is an error
    that makes the import fail. Imported here, not at the top, so that ``import nnexp.data``
    stays cheap.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message='"is( not)?" with ', category=SyntaxWarning)
        from mnist import MNIST

    class _Reader(MNIST):
        # python-mnist opens both files of a pair through one `opener` hook and decides gzip or
        # not once per loader (appending ".gz" to the name). We hand it the real file names and
        # decide per file, so a raw image file may sit next to gzipped labels.
        def opener(self, path_fn, *args, **kwargs):
            return _open(Path(path_fn))

    return _Reader


def parse_pair(images: IdxHeader, labels: IdxHeader) -> tuple[np.ndarray, np.ndarray]:
    """Verify an image/label pair completely and parse it with python-mnist.

    Returns ``(images, labels)``: uint8 arrays of shapes ``(count, rows, cols)`` and
    ``(count,)``. Raises DataError if a file is truncated, too long, corrupt or the counts differ.
    """
    check_pair(images, labels)
    verify_size(images)
    verify_size(labels)
    reader = _mnist_reader()()
    try:
        rows, lbls = reader.load(str(images.path), str(labels.path))
    except (OSError, EOFError, zlib.error) as e:  # the file changed since verify_size
        raise _gzip_error(images.path, e) from e
    # python-mnist returns one list of ints per image; joining them into one bytes object is
    # about twice as fast as np.array(rows) and yields uint8 directly (its 'numpy' mode gives int64).
    pixels = np.frombuffer(bytes(itertools.chain.from_iterable(rows)), dtype=np.uint8)
    del rows
    targets = np.frombuffer(lbls, dtype=np.uint8).copy()
    if pixels.size != int(np.prod(images.shape)) or targets.size != labels.count:
        raise DataError(f"data files in {images.path.parent} changed while being read; load again")
    return pixels.reshape(images.shape), targets
