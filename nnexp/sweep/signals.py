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


# The last signal one of nnexp's handlers turned into an interrupt. Most libraries let the
# interrupt through; a few swallow it: Python makes an error raised in ``__set_name__`` a
# RuntimeError, which matplotlib catches (with a warning) while it imports its 3-D axes, and an
# interrupt raised in a weakref callback or ``__del__`` is printed and ignored. The run, and the
# sweep, about to record success ask :func:`raise_if_swallowed` first. A run's or sweep's
# handlers forget it as they are taken down (a program calling nnexp again starts clean).
_received: int | None = None


def note(signum: int) -> None:
    """Remember that ``signum`` arrived (every handler of ours calls this before raising)."""
    global _received
    _received = signum


def forget() -> None:
    """The interrupt has been handled (its run ended KILLED)."""
    global _received
    _received = None


def raise_if_swallowed() -> None:
    """Raise the interrupt of a signal that arrived but never reached us as an exception."""
    if _received is not None:
        raise SweepInterrupt(_received)


def noting_int_handler(signum, frame) -> None:
    """SIGINT as Python's own handler treats it (``KeyboardInterrupt``), noted first."""
    note(signum)
    raise KeyboardInterrupt


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
        forget()   # what arrived while these handlers were in place was theirs

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            return   # already on the way out
        self.signum = signum
        note(signum)
        if self.before_raise is not None:
            for other in SIGNALS:
                signal.signal(other, signal.SIG_IGN)
            self.before_raise()
        raise SweepInterrupt(signum)
