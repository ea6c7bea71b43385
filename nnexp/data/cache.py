"""Cache of parsed arrays: uint8 ``.npy`` files keyed by the SHA-256 of their source file.

Parsing MNIST through python-mnist takes seconds; memory-mapping the cached ``.npy`` takes
milliseconds. The key is the checksum of the source's bytes, so a changed source is simply a
different key (the old entry is never consulted again), and every entry is checked against the
shape the source's IDX header announces before it is trusted: an entry that is unreadable,
truncated, too long or of the wrong shape or dtype is reported as missing and rebuilt.

The cache lives in ``$NNEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/nnexp``, else
``~/.cache/nnexp`` -- never next to the data, which may be on a read-only share.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from nnexp.data.files import atomic_output

log = logging.getLogger(__name__)

# Bump when the parsed layout changes, so that old entries are ignored rather than misread.
FORMAT = "v1"


def cache_dir() -> Path:
    """Return the folder for cached arrays (not created here)."""
    if explicit := os.environ.get("NNEXP_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnexp"


def entry_path(sha256: str) -> Path:
    """Return the cache file for the source whose SHA-256 is ``sha256``."""
    return cache_dir() / f"idx-{FORMAT}-{sha256}.npy"


def lookup(sha256: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Return the cached uint8 array of ``shape`` for source ``sha256``, memory-mapped read-only.

    Returns None when there is no entry or it cannot be trusted (the caller rebuilds it).
    """
    path = entry_path(sha256)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as e:  # garbage header, too short for its header...
        log.info("ignoring unreadable cache entry %s (%s)", path, e)
        return None
    # np.load maps what the header promises; the exact file size catches appended garbage.
    if (
        not isinstance(arr, np.memmap)
        or arr.dtype != np.uint8
        or arr.shape != tuple(shape)
        or not arr.flags.c_contiguous
        or arr.offset + arr.nbytes != size
    ):
        log.info("ignoring cache entry %s: does not match its source", path)
        return None
    return arr


def store(sha256: str, array: np.ndarray) -> None:
    """Write ``array`` as the cache entry for source ``sha256``, atomically.

    A cache that cannot be written (read-only home, full disk) only costs speed, so the error
    is logged and swallowed.
    """
    path = entry_path(sha256)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as f:
            np.save(f, np.ascontiguousarray(array, dtype=np.uint8), allow_pickle=False)
    except OSError as e:
        log.warning("could not write cache entry %s (%s); data will be parsed again next time", path, e)
