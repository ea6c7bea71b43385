"""A pool of worker processes that outlives any one of them: the engine of ``hydra/launcher=pool``.

Hydra's joblib launcher runs jobs on loky's workers. When one of them dies (SIGKILL, the
kernel's OOM killer), loky declares the whole executor broken, kills the other workers in the
middle of their jobs and joblib raises ``TerminatedWorkerError``: the jobs still queued never
run. :func:`run_tasks` instead gives each worker one task at a time over its own pipe and
watches the worker's process. A worker that dies takes only its own task with it (reported as
:class:`Lost`, with the process's exit status); a new worker takes its place and the queue goes
on.

Workers are started with ``spawn`` (a fresh interpreter, nothing inherited from the driver's
threads or open database connections) and import a job's modules before their first task
(:func:`nnexp.sweep.workers.prepare_worker`). Tasks and results cross the pipe as cloudpickle
bytes (a dependency of MLflow), as joblib ships them, so Hydra's task function and context
need not be importable by name.

The live workers' process ids are in :func:`live_worker_pids`, for the driver's interrupt
handling (:func:`nnexp.sweep.workers.stop_workers`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

# how long the pool waits for its workers to leave after their pipes close
EXIT_GRACE_SECONDS = 5.0

_live: dict[int, "Worker"] = {}


def live_worker_pids() -> list[int]:
    """The process ids of this process's pool workers that are alive now."""
    return [pid for pid, worker in _live.items() if worker.process.is_alive()]


@dataclass(frozen=True)
class Lost:
    """A task whose worker process died before returning its result."""

    pid: int
    exitcode: int | None

    @property
    def cause(self) -> str:
        """``killed by SIGKILL``, ``exited with status 143``, ..."""
        code = self.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exited with status {code}"


class Raised:
    """A task's exception, carried back to the driver, which raises it (as joblib does)."""

    def __init__(self, error: BaseException):
        self.error = error


class Worker:
    """One worker process and the driver's end of its pipe; ``task`` is the index it runs;
    ``figures``, ``data``: what it prepares for its jobs (:func:`nnexp.sweep.workers.prepare_worker`)."""

    def __init__(self, context, figures: bool = False, data: dict | None = None) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, figures, data), name="nnexp-pool-worker",
                                       daemon=True)
        self.process.start()
        theirs.close()
        self.conn, self.task = ours, None
        _live[self.process.pid] = self

    def give(self, index: int, payload: bytes) -> bool:
        """Send a task; False when the worker is already gone."""
        try:
            self.conn.send_bytes(payload)
        except OSError:                      # BrokenPipeError: it died while idle
            return False
        self.task = index
        return True

    def close(self) -> None:
        self.conn.close()
        _live.pop(self.process.pid, None)


def serve(conn, figures: bool = False, data: dict | None = None) -> None:
    """A worker's life: import what jobs need (:func:`nnexp.sweep.workers.prepare_worker`),
    then run tasks until the pipe closes.

    A task is ``(function, args)``; its result goes back as the next message. An interrupt
    while idle ends the worker quietly (an interrupt during a task is the job's to handle: it
    ends its run and leaves, :func:`nnexp.sweep.job.leave_worker`)."""
    import cloudpickle

    try:
        from nnexp.sweep.workers import prepare_worker

        try:
            prepare_worker(figures, data)
        except Exception:  # noqa: BLE001 - an optimisation; the job imports what it needs
            pass
        while True:
            try:
                data = conn.recv_bytes()
            except EOFError:
                _leave()
            function, args = cloudpickle.loads(data)
            try:
                result = function(*args)
            except Exception as error:  # noqa: BLE001 - re-raised in the driver
                result = Raised(error)
            conn.send_bytes(cloudpickle.dumps(result))
    except KeyboardInterrupt:
        from nnexp.outcome import EXIT_SIGNAL_BASE

        os._exit(EXIT_SIGNAL_BASE + signal.SIGINT)


# workers started ahead of the sweep's first run_tasks (prestart), which takes them over
_prestarted: list[Worker] = []


def prestart(n_workers: int, figures: bool = False, data: dict | None = None) -> None:
    """Start ``n_workers`` workers now, for the next :func:`run_tasks`: a sweep does it before
    Hydra composes its jobs, so the workers import NumPy and nnexp (about 0.5 s each) and load
    the jobs' ``data`` meanwhile.
    Stopped like any worker on an interrupt (:func:`live_worker_pids`); daemons, so an
    aborted sweep's leave with the driver."""
    context = multiprocessing.get_context("spawn")
    _prestarted.extend(Worker(context, figures, data) for _ in range(n_workers))


def _workers(context, n: int, figures: bool) -> list[Worker]:
    """``n`` workers: the prestarted ones still alive first (extra ones are let go)."""
    taken = [worker for worker in _prestarted if worker.process.is_alive()][:n]
    _shut_down([worker for worker in _prestarted if worker not in taken])
    _prestarted.clear()
    return taken + [Worker(context, figures) for _ in range(n - len(taken))]


def _leave() -> None:
    """End a worker whose pipe closed, without the interpreter's teardown of NumPy, Hydra and
    nnexp, which the driver, joining its workers, waited for at every sweep's end: its runs
    are closed and its records written; log handlers and streams are flushed here."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def run_tasks(tasks: Sequence[tuple[Callable, tuple]], n_workers: int,
              on_lost: Callable[[int, Lost], None] | None = None, figures: bool = False,
              while_waiting: Callable[[], None] | None = None) -> list[Any]:
    """Run ``function(*args)`` for every task on up to ``n_workers`` worker processes; returns
    the results in task order, a :class:`Lost` for a task whose worker died (``on_lost(index,
    lost)`` is called when that is seen, and a new worker replaces the dead one). Workers that
    :func:`prestart` started are used first; ``figures``: the jobs draw figures (their workers
    import matplotlib ahead). ``while_waiting()`` runs once in a daemon thread as soon as the
    first tasks are out, when this process has nothing to do but wait (a sweep imports what its
    summary needs meanwhile).

    An exception a task raises is raised here, as joblib does (nnexp's jobs catch their own
    errors: one that escapes is a fault of the launch itself). It and exceptions raised in the
    driver (an interrupt) stop everything: the pipes are closed, so idle workers leave, and
    workers still running after :data:`EXIT_GRACE_SECONDS` are killed.
    """
    import cloudpickle

    context = multiprocessing.get_context("spawn")
    pending = deque(range(len(tasks)))
    results: list[Any] = [None] * len(tasks)
    workers = _workers(context, max(1, min(n_workers, len(tasks))), figures)
    idle, busy = list(workers), []
    try:
        while pending or busy:
            while pending and idle:
                worker, index = idle.pop(), pending.popleft()
                if worker.give(index, cloudpickle.dumps(tasks[index])):
                    busy.append(worker)
                else:                        # died between tasks: its task goes back
                    pending.appendleft(index)
                    _retire(worker, workers)
                    idle.append(_spawn(context, workers, figures))
            if while_waiting is not None:
                threading.Thread(target=while_waiting, name="nnexp-while-waiting", daemon=True).start()
                while_waiting = None
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in [w for w in busy if w.conn in ready or w.process.sentinel in ready]:
                busy.remove(worker)
                result = _result(worker)
                if isinstance(result, Raised):
                    raise result.error
                if result is not _NONE:
                    results[worker.task] = result
                    idle.append(worker)
                    continue
                lost = Lost(worker.process.pid, _exitcode(worker))
                results[worker.task] = lost
                _retire(worker, workers)
                if on_lost is not None:
                    on_lost(worker.task, lost)
                if pending:
                    idle.append(_spawn(context, workers, figures))
    finally:
        _shut_down(workers)
    return results


_NONE = object()


def _result(worker: Worker) -> Any:
    """The worker's result if it sent one (possibly just before dying), else ``_NONE``."""
    import cloudpickle

    try:
        if worker.conn.poll():
            return cloudpickle.loads(worker.conn.recv_bytes())
    except (EOFError, OSError):
        pass
    return _NONE


def _exitcode(worker: Worker) -> int | None:
    worker.process.join(timeout=EXIT_GRACE_SECONDS)
    return worker.process.exitcode


def _spawn(context, workers: list[Worker], figures: bool) -> Worker:
    worker = Worker(context, figures)
    workers.append(worker)
    return worker


def _retire(worker: Worker, workers: list[Worker]) -> None:
    worker.close()
    workers.remove(worker)


def _shut_down(workers: list[Worker]) -> None:
    """Close every pipe (an idle worker then returns), wait a little, kill what is left."""
    for worker in workers:
        worker.close()
    for worker in workers:
        worker.process.join(timeout=EXIT_GRACE_SECONDS)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
