"""One MLflow run: start it, log into it cheaply, and always end it with a truthful status.

Per-epoch metrics are buffered and written with one ``log_batch`` call at most every
``flush_seconds`` (and always when the run ends): each SQLite write is a transaction with an
fsync, so one call per value would cost more than training a small model. The writing is done
by the store's backend (:mod:`nnexp.tracking.records`), MLflow's client or direct SQLite.
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

from nnexp.tracking import tags as tag_names
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
    """Ignore SIGINT and SIGTERM while a run's record is being closed (main thread only).

    Closing takes a few database writes; a second Ctrl-C in the middle (people press it more
    than once) would otherwise abort them and leave the run RUNNING. The signal is dropped:
    the process is already on its way out, or the run has just ended anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
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
        run_id = store.backend.create_run(store.experiment_id, run_name, all_tags)
        return cls(store, run_id, flush_seconds)

    @classmethod
    def attach(cls, store: Store, run_id: str) -> "TrackedRun":
        """An existing run (e.g. a sweep's parent reopened to resume it)."""
        return cls(store, run_id)

    # -- logging ------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self.backend.log_batch(self.run_id, params=_as_strings(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if tags:
            self.backend.log_batch(self.run_id, tags=_as_strings(tags))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Queue metrics at ``step``; written at the next flush."""
        stamp = now_ms()
        self._pending.extend(MetricPoint(key, float(value), stamp, step) for key, value in metrics.items())

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """``on_epoch`` callback: queue this epoch's metrics with ``step=epoch``; flush when due."""
        self.log_metrics(metrics, step=epoch)
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every queued metric point.

        If a write is cut short (Ctrl-C arriving mid-transaction, a locked or vanished store),
        the points stay queued, so :meth:`end` writes them again; both backends drop points
        that were in fact written already.
        """
        pending, self._pending = self._pending, []
        try:
            if pending:
                self.backend.log_batch(self.run_id, metrics=pending)
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
        re-raised afterwards. SIGINT and SIGTERM are ignored meanwhile (see
        :func:`interrupts_held`); the run counts as ended only once its status is written.
        """
        if self.ended:
            return
        flush_error = None
        with interrupts_held():
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - recorded below, re-raised after closing
                flush_error = exc
                error = error or f"metrics could not be written: {exc}"
                if status == "FINISHED":
                    status = "FAILED"
            if error:
                self.backend.log_batch(self.run_id, tags=_as_strings({TAG_ERROR: " ".join(error.split())}))
            self.backend.set_status(self.run_id, status)
            self.ended = True
        if flush_error is not None:
            raise flush_error
