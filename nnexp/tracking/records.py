"""What the tracking backends exchange with the rest of nnexp: plain values, no MLflow objects.

A backend (:class:`~nnexp.tracking.sqlite_backend.SqliteBackend` or
:class:`~nnexp.tracking.mlflow_backend.MlflowBackend`) offers the same few calls, so that
:mod:`nnexp.tracking.run`, :mod:`nnexp.app`, :mod:`nnexp.sweep` and :mod:`nnexp.summary` do
not care whether MLflow itself is loaded:

- ``create_run(experiment_id, run_name, tags) -> run_id``
- ``log_batch(run_id, metrics=[MetricPoint...], params={...}, tags={...})``
- ``set_status(run_id, status, end=True)`` (``end``: also stamp the end time)
- ``log_artifacts(run_id, local_dir, artifact_path=None)``
- ``find_runs(experiment_ids, tags={...}, status=None, limit=None) -> [RunRecord...]``,
  newest first
- ``metric_history(run_id, key) -> [(step, value), ...]``
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import NamedTuple


def now_ms() -> int:
    """MLflow's clock: milliseconds since the epoch."""
    return int(time.time() * 1000)


class MetricPoint(NamedTuple):
    """One value of a metric: ``timestamp`` in ms since the epoch, ``step`` the epoch (or 0)."""

    key: str
    value: float
    timestamp: int
    step: int


@dataclass
class RunRecord:
    """A run as a search returns it: its latest metric values, its params and tags."""

    run_id: str
    run_name: str
    status: str
    start_time: int
    experiment_id: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
