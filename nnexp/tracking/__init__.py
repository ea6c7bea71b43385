"""MLflow tracking: the only package that imports MLflow, and only when it is used.

- :mod:`~nnexp.tracking.store`: resolve the URI, open the store and experiment, end stale runs.
- :mod:`~nnexp.tracking.run`: one run, with buffered metric logging and a truthful end status.
- :mod:`~nnexp.tracking.outage`, :mod:`~nnexp.tracking.replay`: a store that takes no writes for
  a while (full disk, a lock held elsewhere) is waited for; what it never took is kept in a
  local file and written by the next command on that store.
- :mod:`~nnexp.tracking.model`: the best weights as an MLflow pyfunc model.
- who writes (:mod:`~nnexp.tracking.records`): :mod:`~nnexp.tracking.sqlite_backend` straight
  into a local SQLite store of a known schema, without importing MLflow;
  :mod:`~nnexp.tracking.mlflow_backend` through MLflow's client for everything else.
"""

from nnexp.tracking.records import MetricPoint, RunRecord
from nnexp.tracking.sqlite_backend import check_key
from nnexp.tracking.run import TAG_STOP_REASON, TrackedRun, interrupts_held
from nnexp.tracking.store import (
    TAG_ERROR, Store, default_uri, mark_stale_runs_failed, open_store, resolve_uri,
)

__all__ = ["check_key", "TAG_ERROR", "TAG_STOP_REASON", "MetricPoint", "RunRecord", "Store", "TrackedRun", "default_uri",
           "interrupts_held", "mark_stale_runs_failed", "open_store", "resolve_uri"]
