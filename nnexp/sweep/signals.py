"""Interrupts of a sweep: SIGINT, SIGTERM and SIGHUP to the driver or to its process group.

The driver turns each into :class:`SweepInterrupt` (a ``KeyboardInterrupt``): a job running in
the driver (basic launcher) ends its run as KILLED on the way out; with joblib the driver first
stops its workers (:func:`nnexp.sweep.workers.stop_workers`), each of which ends its run as
KILLED and leaves. ``__main__`` then ends the parent as KILLED and exits 128 + the signal
(129 SIGHUP, 130 SIGINT, 143 SIGTERM). Later signals are ignored while this happens.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REASONS = {signal.SIGINT: "interrupted by SIGINT (Ctrl-C)", signal.SIGTERM: "terminated by SIGTERM",
           signal.SIGHUP: "hung up (SIGHUP: the terminal or session closed)"}


class SweepInterrupt(KeyboardInterrupt):
    """A signal that ends the sweep; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(REASONS.get(signum, f"signal {signum}"))
        self.signum = signum


def signum_of(interrupt: BaseException) -> int:
    """The signal behind an interrupt: SweepInterrupt's and the run's Terminated's own
    (SIGTERM or SIGHUP), else SIGINT."""
    return getattr(interrupt, "signum", signal.SIGINT)


class InterruptHandlers:
    """Handlers for :data:`SIGNALS` in the main thread while a sweep or a job runs.

    ``before_raise`` (the driver's: stop the workers) runs once, on the first signal.
    """

    def __init__(self, before_raise=None):
        self.before_raise = before_raise
        self.signum: int | None = None
        self.previous: dict = {}

    def install(self) -> "InterruptHandlers":
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        return self

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            return   # already on the way out
        self.signum = signum
        if self.before_raise is not None:
            for other in SIGNALS:
                signal.signal(other, signal.SIG_IGN)
            self.before_raise()
        raise SweepInterrupt(signum)
