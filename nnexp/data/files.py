"""File helpers shared by the downloader and the array cache: checksums and atomic writes.

Both write files that other processes may read at the same moment (parallel sweep jobs load
the same data), so a file is only ever seen complete or not at all.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Return the SHA-256 of the file at ``path`` as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only if the ``with`` body succeeds.

    The data go to a uniquely named temporary file in the same folder (so ``os.replace`` is a
    rename on one file system, atomic on POSIX and Windows); on any exception, including
    KeyboardInterrupt, the temporary file is removed and nothing is left behind. No fsync: every
    reader verifies what it reads, so a file lost to a power cut is re-made, not trusted.
    """
    path = Path(path)
    # Not tempfile.mkstemp: its files are private (0600), but a downloaded data file in a shared
    # folder should get the usual permissions (0666 less the umask), like any file the user makes.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
