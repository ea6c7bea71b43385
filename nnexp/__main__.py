"""``python -m nnexp``: run or sweep, reporting any failure in one line.

Exit status: 0 success; 1 a run or job failed with an error; 2 bad input (config, data or
tracking store); 3 the run diverged (its record is kept, FAILED); 130 / 143 interrupted by
SIGINT / SIGTERM (the run is KILLED). Set ``NNEXP_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys

EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED = 1, 2, 3


def _is_bad_input(error: BaseException) -> bool:
    from nnexp.errors import NnexpError

    if isinstance(error, NnexpError):
        return True
    module = type(error).__module__ or ""
    # composition errors: unknown group option or key, unparsable override, bad interpolation
    return module.startswith(("hydra.errors", "omegaconf"))


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
    debug = bool(os.environ.get("NNEXP_DEBUG"))
    # The interpreter's last garbage collection walks every object MLflow, Hydra and matplotlib
    # made (0.77 s measured after a short run); frozen, it skips them (0.06 s). Memory is
    # returned to the system at exit either way.
    atexit.register(gc.freeze)
    # Let Hydra's exceptions reach us so that we can print them in one line.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from nnexp import cli, sweep
    from nnexp.errors import one_line

    try:
        try:
            cli.hydra_app()
        except sweep.SweepAborted as aborted:
            raise aborted.error from None
        if cli.last_error is not None:
            raise cli.last_error
    except KeyboardInterrupt as interrupt:
        # on the way out: a second Ctrl-C must not cut the sweep's ending short
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        from nnexp.app import Terminated

        terminated = isinstance(interrupt, Terminated)
        sweep.abort_active_sweep("KILLED", "sweep interrupted")
        print(f"nnexp: {'terminated by SIGTERM' if terminated else 'interrupted'}; "
              f"the run was ended as KILLED with every epoch logged so far", file=sys.stderr)
        _exit_now(143 if terminated else 130)
    except Exception as error:  # noqa: BLE001 - reported in one line, traceback on request
        sweep.abort_active_sweep("FAILED", f"sweep stopped: {one_line(error)}")
        if debug:
            raise
        kind = "error" if _is_bad_input(error) else f"error ({type(error).__name__})"
        print(f"nnexp: {kind}: {one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT if _is_bad_input(error) else EXIT_ERROR)
    if sweep.last_summary is not None and sweep.last_summary["counts"]["failed"]:
        sys.exit(EXIT_ERROR)
    result = cli.last_result
    if result is not None and result.status == "FAILED":
        sys.exit(EXIT_DIVERGED if result.stop_reason == "diverged" else EXIT_ERROR)


if __name__ == "__main__":
    main()
