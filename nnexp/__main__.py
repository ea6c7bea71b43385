"""``python -m nnexp``: run or sweep, reporting any failure in one line.

Exit status: 0 success; 1 a run or job failed with an error; 2 bad input (config, data or
tracking store); 3 the run diverged (its record is kept, FAILED); 130 / 143 / 129 interrupted by
SIGINT / SIGTERM / SIGHUP (the runs are KILLED). Set ``NNEXP_DEBUG=1`` to see
tracebacks. The status comes from one :class:`nnexp.outcome.Outcome`.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys

# Nothing of nnexp is imported here: a Ctrl-C during any import (the first 0.3-0.6 s of a
# command) must reach the handling in main() or _interrupted_at_start, not print a traceback.


def _is_bad_input(error: BaseException) -> bool:
    from nnexp.errors import NnexpError

    if isinstance(error, NnexpError):
        return True
    module = type(error).__module__ or ""
    # composition errors: unknown group option or key, unparsable override, bad interpolation
    return module.startswith(("hydra.errors", "omegaconf"))


def _is_store_outage(error: BaseException) -> bool:
    """A store that took no write for the whole wait allowed (full disk, lock held by another
    process): told in one plain line, exit 1 (not the input's fault)."""
    from nnexp.tracking.outage import StoreUnavailable

    return isinstance(error, StoreUnavailable)


def _exit_now(status: int) -> None:
    """Exit with ``status`` as soon as the records are closed.

    The interpreter's own teardown of the modules MLflow and Hydra load takes 1-2 s, which an
    interrupted user (or a scheduler's grace period) should not wait for: run the exit hooks,
    flush, and leave.
    """
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main() -> None:
    from nnexp.memory_pages import avoid_compaction_stalls

    avoid_compaction_stalls()        # before NumPy is imported (see nnexp/memory_pages.py)
    if _trains(sys.argv[1:]):
        from nnexp.tracking import model_helper

        model_helper.start_early()   # imports MLflow on the core Hydra's start leaves idle
    debug = bool(os.environ.get("NNEXP_DEBUG"))
    # The interpreter's last garbage collection walks every object MLflow, Hydra and matplotlib
    # made (0.77 s measured after a short run); frozen, it skips them (0.06 s). Memory is
    # returned to the system at exit either way.
    atexit.register(gc.freeze)
    # Let Hydra's exceptions reach us so that we can print them in one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from nnexp import cli, outcome
    from nnexp.errors import interrupt_behind, one_line
    from nnexp.sweep import SweepAborted
    from nnexp.sweep.signals import noting_int_handler

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not where SIGINT is ignored
        signal.signal(signal.SIGINT, noting_int_handler)   # a swallowed Ctrl-C still ends the run

    with outcome.recording() as out:
        try:
            try:
                cli.hydra_app()
            except SweepAborted as aborted:
                raise aborted.error from None
            if out.error is not None:
                raise out.error
        except KeyboardInterrupt as interrupt:
            _interrupted(out, interrupt)
        except Exception as error:  # noqa: BLE001 - reported in one line, traceback on request
            from nnexp.config import unknown_override

            if (interrupt := interrupt_behind(error)) is not None:
                _interrupted(out, interrupt)
            message = _worker_died(error) or unknown_override(error) or one_line(error)
            _end_parent(out, "FAILED", f"sweep stopped: {message}")
            if debug:
                raise
            kind = "error" if _is_bad_input(error) or _is_store_outage(error) else f"error ({type(error).__name__})"
            print(f"nnexp: {kind}: {message}", file=sys.stderr)
            sys.exit(outcome.EXIT_BAD_INPUT if _is_bad_input(error) else outcome.EXIT_ERROR)
        status = out.exit_status()
    if status:
        sys.exit(status)


# Hydra's flags that print something and train nothing
_INFO_FLAGS = ("-h", "--help", "--hydra-help", "--version", "-c", "--cfg", "-i", "--info",
               "-sc", "--shell-completion")


def _trains(arguments: list[str]) -> bool:
    """Whether the command line may train and log a model: a run or a sweep (a run or sweep that
    turns out to log none stops the model helper), not ``--help``, ``--cfg`` and the like."""
    return not any(argument in _INFO_FLAGS for argument in arguments)


def _worker_died(error: BaseException) -> str | None:
    """The one line for joblib's ``TerminatedWorkerError`` (a loky worker died, so loky killed
    the others and the sweep stops), or None for any other error."""
    if type(error).__name__ != "TerminatedWorkerError":
        return None
    return ("a joblib worker process died (killed, or out of memory) and joblib stops the whole "
            "sweep with it: the unfinished jobs' runs are ended FAILED; hydra/launcher=pool runs "
            "the other jobs on when a worker dies")


def _end_parent(out, status: str, reason: str) -> None:
    """End the parent run of a sweep cut short. Its jobs' runs end themselves, except those
    whose worker process died: a failed sweep first ends those FAILED."""
    if out.parent is not None:
        try:
            if status == "FAILED":
                _end_orphaned_runs(out.parent)
            out.parent.end(status, error=reason)
        finally:
            out.parent = None


def _end_orphaned_runs(parent) -> None:
    """Runs of the parent's experiment left RUNNING by a dead process end FAILED, once this
    driver's worker processes are gone (loky kills them as it gives up)."""
    import time

    from nnexp.sweep.workers import worker_pids
    from nnexp.tracking.store import mark_stale_runs_failed

    deadline = time.monotonic() + 5.0
    while worker_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        mark_stale_runs_failed(parent.store)
    except Exception:  # noqa: BLE001 - the next invocation's check ends them too
        pass


def _interrupted(out, interrupt: KeyboardInterrupt) -> None:
    # on the way out: a second signal must not cut the sweep's ending short
    from nnexp.sweep.signals import REASONS, SIGNALS, signum_of

    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signum = signum_of(interrupt)
    was_sweep = out.parent is not None
    _end_parent(out, "KILLED", f"sweep {REASONS.get(signum, 'interrupted')}")
    text = "interrupted" if signum == signal.SIGINT else REASONS.get(signum, "interrupted")
    if was_sweep:
        told = "the sweep's parent and its started runs were ended as KILLED with every epoch logged so far"
    elif getattr(interrupt, "nnexp_run_id", None):
        told = "the run was ended as KILLED with every epoch logged so far"
    else:   # e.g. while the data loaded: no run existed yet
        told = "no run had been created yet, so nothing was recorded"
    try:
        print(f"nnexp: {text}; {told}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    from nnexp.outcome import EXIT_SIGNAL_BASE

    _exit_now(EXIT_SIGNAL_BASE + signum)


def _interrupted_at_start() -> None:
    """A Ctrl-C before the run or sweep had begun (imports, Hydra's start-up): one line and
    exit status 130, instead of a traceback from whatever was importing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from nnexp.outcome import EXIT_SIGNAL_BASE

    try:
        print("nnexp: interrupted; no run had been created yet, so nothing was recorded", file=sys.stderr)
    except (OSError, ValueError):
        pass
    _exit_now(EXIT_SIGNAL_BASE + signal.SIGINT)


def _ignore_signals_from_here() -> None:
    """The command's work is over (recorded, reported, its status decided); what is left is the
    interpreter's exit: the exit hooks and its teardown, ~20 ms. Python puts the signals' default
    actions back for the teardown, so a Ctrl-C there killed the process by the signal (status -2
    to its parent, no line said why), and in an exit hook it printed a traceback. Ignored, the
    command ends with the status it decided. (Python leaves an ignored signal ignored.)"""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        _interrupted_at_start()
    except Exception as error:
        from nnexp.errors import interrupt_behind

        if interrupt_behind(error) is None:
            raise
        _interrupted_at_start()
    finally:
        _ignore_signals_from_here()
