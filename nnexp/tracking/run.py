"""One MLflow run: start it, log into it cheaply, and always end it with a truthful status.

Per-epoch metrics are buffered and written with one ``log_batch`` call at most every
``flush_seconds`` (and always when the run ends): each SQLite write is a transaction with an
fsync, so one call per value would cost more than training a small model. The writing is done
by the store's backend (:mod:`nnexp.tracking.records`), MLflow's client or direct SQLite.

A store that stops taking writes (full disk, a lock held by another process) is waited for
(:mod:`nnexp.tracking.outage`): training goes on with the points kept in memory; past the wait
allowed the run ends FAILED with the true cause, and whatever the store still refuses -- the
points, even the status -- is kept in a replay file (:mod:`nnexp.tracking.replay`) that the next
command on the store writes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnexp.tracking import replay
from nnexp.tracking import tags as tag_names
from nnexp.tracking.outage import Retrier, StoreUnavailable
from nnexp.tracking.records import MetricPoint, now_ms
from nnexp.tracking.store import TAG_ERROR, TAG_HOST, TAG_PID, Store

# MLflow's limit of characters per param or tag value.
MAX_PARAM_LENGTH = 6000

TAG_PARENT = tag_names.PARENT
TAG_STOP_REASON = tag_names.STOP_REASON


def _as_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """Param or tag values as the strings MLflow stores, cut to its length limit."""
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in values.items()}


@contextlib.contextmanager
def interrupts_held():
    """Ignore SIGINT, SIGTERM and SIGHUP while a run's record is being closed (main thread only).

    Closing takes a few database writes; a second Ctrl-C in the middle (people press it more
    than once) would otherwise abort them and leave the run RUNNING. The signal is dropped:
    the process is already on its way out, or the run has just ended anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python; leave it ignored
                signal.signal(signum, handler)


class TrackedRun:
    """A started MLflow run.

    Use :meth:`log_epoch` as the training loop's ``on_epoch`` callback; finish with
    :meth:`end`. ``status`` is one of MLflow's FINISHED, FAILED or KILLED.
    """

    def __init__(self, store: Store, run_id: str, flush_seconds: float = 1.0):
        self.store = store
        self.backend = store.backend
        self.run_id = run_id
        self.flush_seconds = flush_seconds
        self._pending: list = []
        self._last_flush = time.monotonic()
        self.ended = False
        self.retrier = Retrier(store.uri)

    @classmethod
    def start(cls, store: Store, run_name: str, tags: Mapping[str, str] | None = None,
              parent_run_id: str | None = None, flush_seconds: float = 1.0) -> "TrackedRun":
        """Create a RUNNING run in the store's experiment, nested under ``parent_run_id`` if given.

        The run carries MLflow's standard user, source and git tags (:func:`~nnexp.tracking.tags.
        standard_tags`, which also fill its ``user_id``) and this process's id and host so that a later invocation can tell
        a run whose process died (SIGKILL) from one still training (see ``mark_stale_runs_failed``).
        """
        all_tags = {**tag_names.standard_tags(), TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname(),
                    **(tags or {})}
        if parent_run_id:
            all_tags[TAG_PARENT] = parent_run_id
        made: list[str] = []
        try:
            Retrier(store.uri).call(lambda: made.append(store.backend.create_run(store.experiment_id, run_name,
                                                                                 all_tags)))
        except StoreUnavailable as error:
            raise StoreUnavailable(f"{error}; no run was created in {store.uri}") from error.__cause__
        return cls(store, made[0], flush_seconds)

    @classmethod
    def attach(cls, store: Store, run_id: str) -> "TrackedRun":
        """An existing run (e.g. a sweep's parent reopened to resume it)."""
        return cls(store, run_id)

    # -- logging ------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self.retrier.call(lambda: self.backend.log_batch(self.run_id, params=_as_strings(params)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self.retrier.call(lambda: self.backend.log_batch(self.run_id, tags=_as_strings(tags)))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Queue metrics at ``step``; written at the next flush."""
        stamp = now_ms()
        self._pending.extend(MetricPoint(key, float(value), stamp, step) for key, value in metrics.items())

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """``on_epoch`` callback: queue this epoch's metrics with ``step=epoch``; flush when due."""
        self.log_metrics(metrics, step=epoch)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush(block=False)   # a store not taking writes must not stop training

    def flush(self, block: bool = True) -> None:
        """Write every queued metric point.

        If a write is cut short (Ctrl-C arriving mid-transaction, a locked or full store), the
        points stay queued, so the next flush or :meth:`end` writes them again; both backends
        drop points that were in fact written already. A store that takes no writes is retried
        (waited for when ``block``) for the outage's allowance, then :class:`StoreUnavailable`.
        """
        pending, self._pending = self._pending, []
        try:
            if pending:
                if not self.retrier.call(lambda: self.backend.log_batch(self.run_id, metrics=pending),
                                         block=block):   # not taken this time: kept for the next
                    self._pending = pending + self._pending
        except BaseException:
            self._pending = pending + self._pending
            raise
        self._last_flush = time.monotonic()

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.backend.log_artifacts(self.run_id, local_dir, artifact_path)

    # -- ending ---------------------------------------------------------------------------------
    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Flush what is queued and close the run with ``status``; safe to call twice.

        If the flush itself fails (the store went away), the run is still closed so that it is
        never left RUNNING -- as FAILED, since metrics are missing -- and the flush error is
        re-raised afterwards. If the store takes no write for longer than the wait allowed,
        what it did not take (points, tags, even the status) goes to a replay file and
        :class:`StoreUnavailable` says where. SIGINT, SIGTERM and SIGHUP are ignored meanwhile
        (see :func:`interrupts_held`); the run counts as ended once its status is written or kept.
        """
        if self.ended:
            return
        problem = None
        with interrupts_held():
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - recorded below, re-raised after closing
                problem = exc
                error = error or f"metrics could not be written: {exc}"
                if status == "FINISHED":
                    status = "FAILED"
            tags = _as_strings({TAG_ERROR: " ".join(error.split())}) if error else {}
            try:
                if tags:
                    self.retrier.call(lambda: self.backend.log_batch(self.run_id, tags=tags))
                self.retrier.call(lambda: self.backend.set_status(self.run_id, status))
            except StoreUnavailable as exc:
                problem = self._keep(status, tags, problem or exc, closed=False)
            else:
                if self._pending and isinstance(problem, StoreUnavailable):
                    problem = self._keep(status, {}, problem, closed=True)
            self.ended = True
        if problem is not None:
            raise problem

    def _keep(self, status: str, tags: Mapping[str, str], cause: BaseException, closed: bool) -> StoreUnavailable:
        """Put what the store did not take into a replay file; the error that says where."""
        path = replay.save(self.store.uri, self.run_id, self._pending, {} if closed else tags, status)
        what = (f"run {self.run_id} is {status} but {len(self._pending)} of its metric points were not taken"
                if closed else f"run {self.run_id} could not be closed: its {status} status and "
                               f"{len(self._pending)} unwritten metric points")
        where = (f"are kept in {path} and written by the next nnexp command on this store" if path else
                 "are lost: no folder could take a replay file (free some space)")
        self._pending = []
        kept = StoreUnavailable(f"{cause}; {what} {where}")
        kept.__suppress_context__ = True   # the error that ended training says the same, less
        return kept
