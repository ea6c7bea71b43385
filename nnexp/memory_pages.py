"""Keep NumPy from asking for transparent huge pages where the kernel stalls to provide them.

NumPy marks every large array ``madvise(MADV_HUGEPAGE)`` on Linux. Where the kernel's THP
``defrag`` setting is ``always``, ``madvise`` or ``defer+madvise``, a page fault in such a
region may compact memory synchronously until a 2 MB page is free. The first touch of each
new large array then waits for compaction.

A run allocates a few fresh arrays of ~170 MB each (MNIST's training split as float32), so this
cost recurs. Measured on the development machine (defrag ``madvise``), in alternating runs:

- loading MNIST took 2.3-2.6 s with NumPy's default and 0.44-0.47 s without it;
- a 4-job sweep of one MNIST epoch each took 20.4-21.7 s with it and 15.4-15.8 s without;
- the training epochs themselves did not change measurably.

:func:`avoid_compaction_stalls` sets ``NUMPY_MADVISE_HUGEPAGE=0``, NumPy's own documented
switch, which it reads when it is first imported. It does so only on such kernels, and only when
the user has not set the variable. Worker processes inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFRAG = Path("/sys/kernel/mm/transparent_hugepage/defrag")
# defrag settings under which a fault in a MADV_HUGEPAGE region may compact memory synchronously
STALLING = {"always", "madvise", "defer+madvise"}


def thp_defrag(path: Path = DEFRAG) -> str | None:
    """The kernel's selected THP defrag mode (the bracketed word), or None if unknown."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return None


def avoid_compaction_stalls(environ=os.environ, path: Path = DEFRAG) -> bool:
    """Set ``NUMPY_MADVISE_HUGEPAGE=0`` if the kernel stalls on huge pages and the user chose
    nothing; returns whether it did. Call it before NumPy is imported."""
    if "NUMPY_MADVISE_HUGEPAGE" in environ or thp_defrag(path) not in STALLING:
        return False
    environ["NUMPY_MADVISE_HUGEPAGE"] = "0"
    return True
