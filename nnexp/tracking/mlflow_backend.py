"""The tracking calls of :mod:`nnexp.tracking.records` through MLflow's own ``MlflowClient``.

Used for every store that :mod:`nnexp.tracking.sqlite_backend` does not write itself: a
tracking server, PostgreSQL or MySQL, a SQLite schema it does not know, or any store when
``NNEXP_TRACKING_CLIENT=mlflow`` is set. MLflow limits how much one ``log_batch`` call takes
(1,000 metric points, 100 params, 100 tags); the batches are split here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from nnexp.tracking.records import MetricPoint, RunRecord

MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100


def _filter(tags: Mapping[str, str], status: str | None) -> str:
    """An MLflow search filter: every tag equal to its value, and the status if given."""
    clauses = []
    for key, value in tags.items():
        if "'" in value or "`" in key:
            raise ValueError(f"cannot search for tag {key!r} = {value!r}: quotes are not supported")
        clauses.append(f"tags.`{key}` = '{value}'")
    if status is not None:
        clauses.append(f"attributes.status = '{status}'")
    return " and ".join(clauses)


def record(run) -> RunRecord:
    """An ``mlflow.entities.Run`` as a :class:`RunRecord`."""
    return RunRecord(run.info.run_id, run.info.run_name or "", run.info.status, run.info.start_time or 0,
                     run.info.experiment_id, dict(run.data.tags), dict(run.data.params), dict(run.data.metrics))


class MlflowBackend:
    """Wraps an ``mlflow.tracking.MlflowClient``."""

    def __init__(self, client):
        self.client = client

    def create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
        return self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id

    def log_batch(self, run_id: str, metrics: Sequence[MetricPoint] = (), params: Mapping[str, str] | None = None,
                  tags: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        param_items = [Param(key, str(value)) for key, value in (params or {}).items()]
        tag_items = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
        metric_items = [Metric(p.key, float(p.value), int(p.timestamp), int(p.step)) for p in metrics]
        for start in range(0, len(param_items), MAX_PARAMS):
            self.client.log_batch(run_id, params=param_items[start:start + MAX_PARAMS])
        for start in range(0, len(tag_items), MAX_TAGS):
            self.client.log_batch(run_id, tags=tag_items[start:start + MAX_TAGS])
        for start in range(0, len(metric_items), MAX_METRICS):
            self.client.log_batch(run_id, metrics=metric_items[start:start + MAX_METRICS])

    def set_status(self, run_id: str, status: str, end: bool = True) -> None:
        if end:
            self.client.set_terminated(run_id, status)
        else:
            self.client.update_run(run_id, status=status)

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def find_runs(self, experiment_ids: Sequence[str], tags: Mapping[str, str] | None = None,
                  status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        records, token = [], None
        while experiment_ids:
            page_size = 1000 if limit is None else min(1000, limit - len(records))
            page = self.client.search_runs(list(experiment_ids), filter_string=_filter(tags or {}, status),
                                           order_by=["attributes.start_time DESC"], max_results=page_size,
                                           page_token=token)
            records += [record(run) for run in page]
            token = page.token
            if not token or (limit is not None and len(records) >= limit):
                break
        return records

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        points = self.client.get_metric_history(run_id, key)
        return [(m.step, m.value) for m in sorted(points, key=lambda m: (m.step, m.timestamp))]
