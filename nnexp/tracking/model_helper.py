"""A helper process that logs a sweep's best LoggedModel, or a run's, made ready while they train.

Logging the best child's model at the end of a sweep cost 2.8-3.4 s of the driver's time in the
8-job MNIST sweep of ``bench/sweep_ceiling.py`` (py-spy): importing MLflow (1.55 s), opening
MLflow's own store (1.0 s, SQLAlchemy) and ``Model.log`` (0.7 s), against 0.8 s of training per
job. The first two do not depend on which child is best. So this process does them ahead, at
the lowest CPU priority (nice 19), with the cycles the driver leaves idle, then waits. At the
end the driver sends the best child's run id, goes on with the summary's plots while the
helper logs the model, and collects the answer.

``python -m nnexp`` starts it before Hydra does (:func:`start_early`), for a run or a sweep:
while the driver composes its config on one core, the other is free, and the helper imports
MLflow and rehearses a model's save then. It opens the store only once the sweep or run tells
it where (:meth:`ModelHelper.start`, :func:`take_early`), so a command refused before its store
exists leaves no store behind; one that logs no model stops it. Started by the sweep callback
instead, it got too little idle time in a serial sweep of 8 MNIST jobs: its warm-up (about 2 s
of CPU) ended after the last job, and the sweep's end waited 1.3-1.7 s for it instead of 0.9 s.
A single run hands it its model's files at its end, and so never imports MLflow itself (unless
it creates the store): ``python -m nnexp progress=false`` took 2.28-2.48 s instead of
3.27-3.54 s, and ``python -m nnexp data=mnist epochs=1 progress=false`` 2.77-3.04 s instead of
4.14-4.54 s (3 alternating runs each, ``/usr/bin/time``). The Python API (:func:`nnexp.app.run`
called directly) starts no helper and logs its model in its own process.

Protocol, one JSON line each way: for a helper started early, ``{"tracking_uri": ...}`` first;
then ``{"run_id": ...}`` (the model from the run's artifacts, a sweep's best child) or
``{"run_id": ..., "folder": ...}`` (from a folder of :func:`nnexp.tracking.model.save_model_inputs`'
files and ``weights.npz``, a single run) in; ``{"model_id", "run_id", "local_folder"}`` or
``{"error": "..."}`` out. The helper leaves at the end of its input, so it never outlives the
driver: the driver closes it, and the kernel kills it if the driver dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nnexp.errors import TrackingError

# how long the driver waits for the model once it has asked (a remote server may be slow)
ANSWER_SECONDS = 300.0
_PR_SET_PDEATHSIG = 1
# the command line's placeholder for a store the helper is told of later
_LATER = "-"
# the helper started before Hydra, waiting to be told its store (start_early)
_early: ModelHelper | None = None


class ModelHelper:
    """The driver's handle on the helper process (``pid`` to stop it by)."""

    def __init__(self, process: subprocess.Popen, tracking_uri: str):
        self.process = process
        self.pid = process.pid
        self.tracking_uri = tracking_uri
        self.asked = False

    @classmethod
    def start(cls, tracking_uri: str) -> ModelHelper | None:
        """The helper for the store at ``tracking_uri``: the one started early, told its store,
        or a new one; None if it cannot be started (the model is then logged in the driver)."""
        global _early
        early, _early = _early, None
        if early is not None:
            early.tracking_uri = tracking_uri
            if early.process.poll() is None and early._send({"tracking_uri": tracking_uri}):
                return early
            early.stop()
        return cls._spawn(tracking_uri)

    @classmethod
    def _spawn(cls, tracking_uri: str) -> ModelHelper | None:
        command = [sys.executable, "-m", "nnexp.tracking.model_helper", tracking_uri, str(os.getpid())]
        try:
            # A process group of its own: a Ctrl-C of the sweep is the driver's to handle (the
            # driver stops the helper, and the kernel does if the driver dies), and it must not
            # reach the helper while it is still importing and print a traceback. Not a session
            # of its own: with the kernel's autogroup scheduling (sched_autogroup_enabled, on in
            # most distributions) a new session gets an equal share of the CPU whatever its nice
            # value, and the helper took a whole core from the first job's BLAS threads (its
            # epoch 1.4 s instead of 0.7 s in the serial MNIST sweep of bench/sweep_ceiling.py).
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       process_group=0)
        except OSError:
            return None
        return cls(process, tracking_uri)

    def _send(self, message: dict) -> bool:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def ask(self, run_id: str, folder: Path | None = None) -> bool:
        """Ask for the LoggedModel of run ``run_id``, from its artifacts or from ``folder``
        (:func:`nnexp.tracking.model.log_model_from_folder`); False if the helper is gone."""
        self.asked = self._send({"run_id": run_id} | ({"folder": str(folder)} if folder else {}))
        return self.asked

    def answer(self, timeout: float = ANSWER_SECONDS):
        """The :class:`~nnexp.tracking.model.LoggedModel` asked for; raises TrackingError in one
        line if the helper failed, died or did not answer within ``timeout`` seconds."""
        import selectors

        from nnexp.tracking.model import LoggedModel

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TrackingError(f"the model helper (pid {self.pid}) gave no answer in {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise TrackingError(f"the model helper (pid {self.pid}) ended without an answer "
                                f"(exit status {self.process.poll()})")
        found = json.loads(line)
        if "error" in found:
            raise TrackingError(found["error"])
        folder = found.get("local_folder")
        return LoggedModel(found["model_id"], found["run_id"], Path(folder) if folder else None)

    def stop(self) -> None:
        """End the helper by its pid, at once.

        It has nothing the driver still needs: a model it was asked for is in the store before
        it answers, and a helper that was not asked, or did not answer in time, is replaced by
        the driver logging the model itself. Waiting for its interpreter to leave with MLflow
        loaded took 0.17 s of every sweep's end (py-spy). Stopping it again does nothing."""
        if self.process.returncode is not None:   # already stopped and reaped: its pid may be reused
            return
        for close in (self.process.stdin.close, lambda: os.kill(self.pid, 9)):
            try:
                close()
            except (OSError, ValueError):
                pass
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def start_early() -> None:
    """Start the helper now, before its store is known (see the module docstring); stopped at
    exit unless a sweep takes it (:meth:`ModelHelper.start`) or stops it (:func:`stop_early`)."""
    global _early
    import atexit

    if _early is None:
        _early = ModelHelper._spawn(_LATER)
        if _early is not None:
            atexit.register(stop_early)


def take_early(tracking_uri: str) -> ModelHelper | None:
    """The helper started early, told its store, for a single run's model; None if none was
    started (the Python API logs its models in its own process). Stopped at exit."""
    import atexit

    if _early is None:
        return None
    helper = ModelHelper.start(tracking_uri)
    if helper is not None:
        atexit.register(helper.stop)
    return helper


def stop_early() -> None:
    """Stop the helper started early if no sweep or run took it (one that logs no model)."""
    global _early
    early, _early = _early, None
    if early is not None:
        early.stop()


def _die_with(parent: int) -> None:
    """Be killed by the kernel when the driver dies (Linux); leave at once if it already has."""
    import signal

    # an interrupt of the sweep's process group is the driver's to handle: leave silently
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


def _import_and_rehearse() -> None:
    """Import what logging a model needs and rehearse a model's save
    (:func:`nnexp.tracking.model.rehearse`): what does not depend on the store."""
    from nnexp.tracking.store import _collector_paused, import_mlflow_client

    with _collector_paused():
        import_mlflow_client()
        import mlflow.artifacts
        import mlflow.models
        import mlflow.pyfunc  # noqa: F401
    from nnexp.tracking.model import rehearse

    rehearse()   # the rest of what the first model of a process costs


def _open_store(tracking_uri: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri).search_experiments(max_results=1)   # makes the store (SQLAlchemy)


def _quietly(step, *args) -> None:
    try:
        step(*args)
    except Exception:  # noqa: BLE001, S110 - the request reports the error, if it still happens
        pass


def main(argv: list[str] | None = None) -> int:
    tracking_uri, parent = (argv or sys.argv[1:])[:2]
    _die_with(int(parent))
    try:
        os.nice(19)
    except OSError:
        pass
    _quietly(_import_and_rehearse)
    if tracking_uri == _LATER:
        line = sys.stdin.readline()
        if not line:
            return 0
        tracking_uri = json.loads(line)["tracking_uri"]
    _quietly(_open_store, tracking_uri)
    from nnexp.errors import one_line
    from nnexp.tracking.model import log_model_from_folder, log_model_of_run

    for line in sys.stdin:
        request = json.loads(line)
        run_id = request["run_id"]
        try:
            model = (log_model_from_folder(tracking_uri, run_id, Path(request["folder"])) if "folder" in request
                     else log_model_of_run(tracking_uri, run_id))
            reply = {"model_id": model.model_id, "run_id": model.run_id,
                     "local_folder": str(model.local_folder) if model.local_folder else None}
        except Exception as error:  # noqa: BLE001 - told to the driver in one line
            reply = {"error": one_line(error)}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
