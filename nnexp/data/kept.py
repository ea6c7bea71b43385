"""What the jobs of a sweep in one process share of their data set (``load(..., reuse=True)``).

A sweep over seeds, learning rates or models loads the same data set in every job; only the
split may differ (it follows the job's seed). In an 8-job MNIST sweep, reading the files again
and scaling 70,000 images again took about 0.14 s of each job's 0.8 s under py-spy, much of it
the kernel handing out fresh pages for 220 MB of float32 (scaling them into fresh memory 0.093 s,
into memory already touched 0.037 s, in a microbenchmark). So two things are kept for the next
job in this process:

- the fetched samples of a data set read from files (not of a generated one, whose samples
  follow the seed);
- their scaled form, when the scaling does not depend on the split (``none``, or ``minmax`` over
  a known value range such as pixels): a job then gathers its rows from it, and the official
  test split is shared as it is.

One entry of each kind: a sweep over data sets holds one data set at a time. Kept arrays are
read-only, so a job that writes into shared data fails loudly instead of changing the next one's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

_kept: dict[str, tuple[Any, Any]] = {}


def read_only(*arrays: np.ndarray | None) -> None:
    for array in arrays:
        if array is not None:
            array.flags.writeable = False


def remember(kind: str, key: Any, make: Callable[[], Any]) -> Any:
    """``make()``, or what it returned last time for the same ``kind`` and ``key``."""
    found = _kept.get(kind)
    if found is not None and found[0] == key:
        return found[1]
    _kept.pop(kind, None)        # the old arrays go before the new ones are made
    value = make()
    _kept[kind] = (key, value)
    return value


def forget() -> None:
    """Drop everything kept (tests; a process that is done with its sweep)."""
    _kept.clear()
    _gathered.clear()


# the arrays the last gather of each part (train, val) returned: the next job's can be written
# into them once the job that had them is done with them
_gathered: dict[str, np.ndarray] = {}


def gather(part: str, X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X.take(rows, axis=0)``, read-only, written into the array the previous call for this
    ``part`` returned if nobody holds that any more.

    Why: gathering MNIST's training split (170 MB of float32) took 0.079 s into a fresh array
    and 0.026 s into one already touched (best of 5, microbenchmark): the rest is the kernel
    zeroing new pages. The previous job's split, of the same shape, is free once that job is
    done. "Nobody holds it" is its reference count:
    only this function's name for it, as NumPy's own ``ndarray.resize`` checks (a view of it
    counts too, through its ``base``).
    """
    previous = _gathered.pop(part, None)
    shape = (len(rows), *X.shape[1:])
    if (previous is not None and previous.shape == shape and previous.dtype == X.dtype
            and sys.getrefcount(previous) == 2):   # `previous` and getrefcount's own argument
        previous.flags.writeable = True
        out = np.take(X, rows, axis=0, out=previous, mode="clip")   # rows are in range
    else:
        out = X.take(rows, axis=0)
    del previous
    out.flags.writeable = False
    _gathered[part] = out
    return out
