"""A store that stops taking writes for a while: a full disk, a write lock held by another
process (a backup, ``VACUUM``, an open ``sqlite3`` shell), an I/O error.

Such a failure is usually temporary, and a run should not die of it nor be left RUNNING.
:class:`Retrier` tells it apart from the others (:func:`transient_cause`), says once on stderr
that the store is not taking writes, and keeps retrying for at most
``$NNEXP_STORE_WAIT_SECONDS`` (default :data:`DEFAULT_WAIT_SECONDS`) counted from the first
failure of the outage; past that it raises :class:`StoreUnavailable` naming the true cause.
:class:`~nnexp.tracking.run.TrackedRun` keeps the metric points meanwhile (training goes on) and,
when even the final status cannot be written, leaves them to :mod:`nnexp.tracking.replay`.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable

from nnexp.errors import TrackingError

WAIT_VARIABLE = "NNEXP_STORE_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 120.0   # a lock held 30-60 s (a backup, VACUUM) is waited out
RETRY_PAUSE = 1.0              # seconds between two attempts while a caller waits

# What SQLite (directly, or inside MLflow's and SQLAlchemy's messages) says for each cause.
_LOCKED = ("database is locked", "database table is locked", "database is busy")
_FULL = ("database or disk is full", "no space left on device", "disk quota exceeded")
_IO = ("disk i/o error",)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class StoreUnavailable(Exception):
    """The store took no write for longer than the wait allowed (not the input's fault: exit 1)."""


def wait_seconds() -> float:
    """How long a run waits for the store to take writes again (``$NNEXP_STORE_WAIT_SECONDS``)."""
    text = os.environ.get(WAIT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise TrackingError(f"{WAIT_VARIABLE}={text!r} is not a number of seconds >= 0 "
                            f"(unset it for the default {DEFAULT_WAIT_SECONDS:g})")
    return value


def attempt_seconds() -> float:
    """How long one write may wait for another process's lock: a quarter of the whole wait
    (at most 20 s, MLflow's own busy timeout), so that a lock is retried a few times before
    the run gives up, and training goes on between the attempts."""
    return min(20.0, wait_seconds() / 4)


def transient_cause(error: BaseException) -> str | None:
    """``"locked"``, ``"full"`` or ``"io"`` when ``error`` says the store cannot take writes for
    now, else None (a bug, bad input, a damaged file: retrying would not help)."""
    if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
        return "full"
    module = type(error).__module__ or ""
    if not isinstance(error, OSError) and not module.startswith(("sqlite3", "sqlalchemy", "mlflow")):
        return None
    text = str(error).lower()
    for cause, words in (("locked", _LOCKED), ("full", _FULL), ("io", _IO)):
        if any(word in text for word in words):
            return cause
    return None


def describe(cause: str, seconds: float) -> str:
    """The true cause of an outage that lasted ``seconds``, in words."""
    if cause == "locked":
        return f"database is locked by another process for {seconds:.0f} s"
    if cause == "full":
        return f"the disk holding the store is full (database or disk is full) for {seconds:.0f} s"
    return f"the store's disk reports I/O errors (disk I/O error) for {seconds:.0f} s"


class Retrier:
    """Calls a store write until it succeeds, within the wait allowed for one outage."""

    def __init__(self, where: str, wait: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.where = where
        self.wait = wait_seconds() if wait is None else wait
        self.clock = clock
        self.since: float | None = None    # start of the current outage
        self.cause: str | None = None

    def call(self, write: Callable[[], object], block: bool = True) -> bool:
        """Run ``write()``; True once it succeeded. On a transient failure: wait and retry while
        ``block`` (else return False at once) until the outage has lasted :attr:`wait` seconds,
        then raise :class:`StoreUnavailable`. Other errors propagate unchanged."""
        while True:
            started = self.clock()
            try:
                write()
            except Exception as error:   # noqa: BLE001 - classified; the others re-raised
                cause = transient_cause(error)
                if cause is None:
                    raise
                self._failed(cause, error, started)
                if self.outage_seconds() >= self.wait:
                    raise StoreUnavailable(describe(cause, self.outage_seconds())) from error
                if not block:
                    return False
                time.sleep(max(0.0, min(RETRY_PAUSE, self.wait - self.outage_seconds())))
                continue
            self._recovered()
            return True

    def outage_seconds(self) -> float:
        return 0.0 if self.since is None else self.clock() - self.since

    def _failed(self, cause: str, error: BaseException, started: float) -> None:
        if self.since is not None:
            return
        self.since, self.cause = started, cause   # the outage began when the attempt did
        detail = " ".join(str(error).split())[:160]
        _note(f"the MLflow store {self.where} takes no writes ({detail}); the run goes on with its metrics "
              f"kept in memory, retrying for up to {self.wait:g} s ({WAIT_VARIABLE})")

    def _recovered(self) -> None:
        if self.since is None:
            return
        _note(f"the MLflow store takes writes again after {self.outage_seconds():.0f} s; the kept metrics "
              f"are written")
        self.since = self.cause = None


def _note(text: str) -> None:
    try:
        print(f"nnexp: note: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):   # stderr gone (a closed terminal): the run still goes on
        pass
