"""What one ``python -m nnexp`` call ended with, in one object: ``__main__`` turns it into the
exit status.

Hydra calls the task function (:mod:`nnexp.cli`) and the sweep callback (:mod:`nnexp.sweep`)
itself and drops what they return, so they report here instead: ``__main__`` opens one
:class:`Outcome` with :func:`recording` around the Hydra call, and they fill it through
:func:`current`. Outside ``recording`` (Hydra's app used from Python or a test), ``current``
starts one that nobody reads.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 1, 2, 3
EXIT_SIGNAL_BASE = 128   # interrupted by signal N: 128 + N (SIGHUP 129, SIGINT 130, SIGTERM 143)


@dataclass
class Outcome:
    """``result``: the single run's RunResult; ``error``: an exception the task function kept
    for ``__main__`` to report (raised inside Hydra it would be logged on lines of its own);
    ``summary``: the sweep's summary (:func:`nnexp.sweep.summary.summarise_sweep`);
    ``parent``: the sweep's parent run while the sweep is under way (ended as KILLED or FAILED by
    ``__main__`` if the sweep is cut short); ``signum``: the signal that interrupted the sweep."""

    result: Any = None
    error: Exception | None = None
    summary: dict | None = None
    parent: Any = None
    signum: int | None = None

    def exit_status(self) -> int:
        """0 ok; 1 a run or a sweep job failed with an error; 3 a single run diverged."""
        if self.summary is not None:
            return EXIT_ERROR if self.summary["counts"]["failed"] else EXIT_OK
        if self.result is not None and self.result.status == "FAILED":
            return EXIT_DIVERGED if self.result.stop_reason == "diverged" else EXIT_ERROR
        return EXIT_OK


_current: Outcome | None = None


@contextlib.contextmanager
def recording():
    """Collect the outcome of the Hydra call made inside the ``with`` block."""
    global _current
    previous, _current = _current, Outcome()
    try:
        yield _current
    finally:
        _current = previous


def current() -> Outcome:
    """The outcome being recorded (see :func:`recording`)."""
    global _current
    if _current is None:
        _current = Outcome()
    return _current
