"""Runs written straight into an MLflow SQLite store with the standard library's ``sqlite3``.

Why: ``import mlflow`` and opening its SQLAlchemy store take 2-3 s of CPU on this machine,
far more than training a small model, and every process of a sweep paid it. What a run
writes is a few rows in five tables of MLflow's schema (``runs``, ``tags``, ``params``,
``metrics``, ``latest_metrics``) and files under the run's artifact folder; this module writes
exactly what MLflow's ``SqlAlchemyStore`` writes for the same calls (``create_run``,
``log_batch``, ``set_terminated``, ``update_run``), so the MLflow UI, ``MlflowClient`` and
``mlflow.pyfunc.load_model`` read the runs as their own. ``tests/test_tracking_backends.py``
writes the same run through both and compares every row.

When it is used (see :func:`supports`): the store is a local SQLite file that MLflow has
created and migrated, and the columns of those five tables and of ``experiments`` (an
experiment is created with one row, as MLflow creates it) are exactly the ones this module
was written for. A schema that differs -- a newer MLflow that changed them -- makes
:func:`nnexp.tracking.open_store` fall back to MLflow's own client, slower but always right.
Creating the database itself (MLflow's schema migrations) is left to MLflow.

Concurrency: every call is one transaction begun with ``BEGIN IMMEDIATE`` (it takes the write
lock at once, so two writers never deadlock upgrading read locks) and SQLite's busy timeout
set as MLflow sets it (20 s), so runs written this way and runs written by MLflow in other
processes share a database safely.

Semantics kept from MLflow: NaN metric values are stored as 0 with ``is_nan`` set and
infinities as +-1.797e308; a metric point already stored is not stored twice; the
``latest_metrics`` row of a key is replaced by a point with a larger (step, timestamp, value);
a param cannot change its value; tags are upserted and ``mlflow.runName`` also renames the
run; only active (not deleted) runs take writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from nnexp.errors import TrackingError
from nnexp.tracking import outage, sqlite_file
from nnexp.tracking import tags as tag_names
from nnexp.tracking.records import MetricPoint, RunRecord, now_ms

BUSY_TIMEOUT_MS = 20_000   # MLflow's own setting for SQLite (mlflow/store/db/utils.py)
MAX_FLOAT = 1.7976931348623157e308
TAG_RUN_NAME = tag_names.RUN_NAME
TAG_USER = tag_names.USER

# The columns of the tables written, as MLflow 3.17 defines them (migration head
# dc11669786a5). Exact sets: a column added or removed means the schema moved on, and
# MLflow's own client does the writing until this module is checked against the new one.
WRITTEN_TABLES = {
    "runs": {"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id",
             "status", "start_time", "end_time", "source_version", "lifecycle_stage",
             "artifact_uri", "experiment_id", "deleted_time"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "run_uuid", "step", "is_nan"},
    "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
    "experiment_tags": {"key", "value", "experiment_id"},
    # looked up, and created as MLflow creates them (in its default workspace)
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage",
                    "creation_time", "last_update_time", "workspace"},
}
DEFAULT_WORKSPACE = "default"

# The alembic revisions (MLflow's schema versions) whose run tables this module was checked
# against, with the MLflow releases that migrate to them. A database at any other revision --
# newer or older MLflow, or a revision no MLflow knows -- is written by MLflow's client.
# tests/tracking/test_writer_guard.py fails when the installed MLflow's head is not listed.
KNOWN_REVISIONS = {
    "dc11669786a5": "mlflow 3.17.x",
    "f4a9b2c7d1e6": "mlflow 3.18.0",   # checked on a database mlflow 3.18.0 itself created (issue 14)
}
# MLflow features this writer does not implement: when on, MLflow's client writes.
WORKSPACE_VARIABLES = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")

# MLflow's rules for names and lengths (mlflow/utils/validation.py), applied to every write.
_VALID_NAME = re.compile(r"^[/\w.\- :]*$")
MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000


def check_key(kind: str, key: str) -> None:
    """Raise :class:`TrackingError` for a param, metric or tag name MLflow refuses: characters
    other than alphanumerics, ``_ - . : /`` and spaces, a name that is not a normalised relative
    path (``a/../b``, ``/a``), or more than 250 characters."""
    norm = posixpath.normpath(key)
    if not _VALID_NAME.match(key):
        raise TrackingError(f"invalid {kind} name {key!r} (MLflow's rule): names may only contain "
                            f"alphanumerics, underscores, dashes, periods, spaces, colons and slashes")
    if norm != key or norm == "." or norm.startswith(("..", "/")):
        raise TrackingError(f"invalid {kind} name {key!r} (MLflow's rule): it would resolve to {norm!r} "
                            f"as a path")
    if len(key) > MAX_KEY_LENGTH:
        raise TrackingError(f"{kind} name {key[:40]!r}... has {len(key)} characters; MLflow allows "
                            f"{MAX_KEY_LENGTH}")


def workspaces_on() -> bool:
    """Whether MLflow's workspaces are in use (this writer knows only the default one)."""
    enabled = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("1", "true", "yes")
    return enabled or bool(os.environ.get("MLFLOW_WORKSPACE", "").strip())


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def supports(db: Path) -> bool:
    """Whether ``db`` is an MLflow SQLite store at a revision in :data:`KNOWN_REVISIONS` whose
    run tables are exactly the ones this module knows, with no workspaces in use."""
    if workspaces_on() or not db.is_file() or not db.stat().st_size:
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as connection:
            revisions = connection.execute("select version_num from alembic_version").fetchall()
            if len(revisions) != 1 or revisions[0][0] not in KNOWN_REVISIONS:
                return False
            return all(_columns(connection, table) == expected for table, expected in WRITTEN_TABLES.items())
    except sqlite3.Error:
        return False


def local_path(uri: str) -> Path | None:
    """The folder of a local artifact location (``file://`` URI or plain path), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def _sanitize(value: float) -> tuple[float, int]:
    """``(value, is_nan)`` as MLflow stores them: NaN as 0, infinities as the largest floats."""
    value = float(value)
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (MAX_FLOAT if value > 0 else -MAX_FLOAT), 0
    return value, 0


def _check_batch(metrics, params: Mapping[str, str], tags: Mapping[str, str]):
    """MLflow's checks of one batch before anything is written: names (:func:`check_key`), and
    values longer than MLflow's limits cut to them, as MLflow does by default (refused when
    ``MLFLOW_TRUNCATE_LONG_VALUES=false``). Returns ``(params, tags)`` as they are stored."""
    for kind, keys in (("metric", {p.key for p in metrics}), ("param", params), ("tag", tags)):
        for key in keys:
            check_key(kind, key)
    truncate = os.environ.get("MLFLOW_TRUNCATE_LONG_VALUES", "true").strip().lower() not in ("false", "0")
    checked = []
    for kind, values, limit in (("param", params, MAX_PARAM_LENGTH), ("tag", tags, MAX_TAG_LENGTH)):
        for key, value in values.items():
            if len(str(value)) > limit and not truncate:
                raise TrackingError(f"{kind} {key!r} has a value of {len(str(value))} characters; MLflow "
                                    f"allows {limit}")
        checked.append({key: str(value)[:limit] for key, value in values.items()})
    return checked[0], checked[1]


class SqliteBackend:
    """The tracking calls of :mod:`nnexp.tracking.records` on one SQLite database file."""

    def __init__(self, db: Path):
        self.db = Path(db)
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- connection and transactions ----------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # autocommit mode: transactions are begun explicitly in _write
            # one attempt waits for a lock for a part of the time a run waits for the store
            busy_ms = int(min(BUSY_TIMEOUT_MS, 1000 * outage.attempt_seconds()))
            connection = sqlite3.connect(self.db, timeout=busy_ms / 1000,
                                         isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
            connection.execute("PRAGMA foreign_keys = ON")
            self._connection = connection
        return self._connection

    @contextlib.contextmanager
    def _write(self):
        """One write transaction, holding SQLite's write lock from its first statement."""
        with self._lock, self._damage_named():
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a ROLLBACK then
                # fails with "no transaction is active" and would hide the true cause
                if connection.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _damage_named(self):
        """A damaged page met while writing: the one line naming the file and how to recover it."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if not sqlite_file.is_damage(error):
                raise
            raise sqlite_file.damaged(self.db, error) from None

    def _read(self, sql: str, args: Sequence = ()) -> list[tuple]:
        with self._lock:
            return self._connect().execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _active_run(self, connection, run_id: str) -> None:
        row = connection.execute("select lifecycle_stage from runs where run_uuid = ?", (run_id,)).fetchone()
        if row is None:
            raise TrackingError(f"run {run_id} is not in the MLflow store {self.db}")
        if row[0] != "active":
            raise TrackingError(f"run {run_id} is deleted in the MLflow store {self.db}; restore it "
                                f"in the MLflow UI to log to it")

    # -- experiments ----------------------------------------------------------------------------
    def get_experiment(self, name: str) -> tuple[str, str, str] | None:
        """``(experiment_id, artifact_location, lifecycle_stage)`` of ``name``, or None."""
        rows = self._read("select experiment_id, artifact_location, lifecycle_stage from experiments "
                          "where name = ? and workspace = ?", (name, DEFAULT_WORKSPACE))
        return (str(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def create_experiment(self, name: str, artifact_location: str,
                          tags: Mapping[str, str] | None = None) -> str:
        """A new active experiment (with ``tags``); returns its id. Raises :class:`TrackingError`
        if it exists."""
        now = now_ms()
        try:
            with self._write() as connection:
                cursor = connection.execute(
                    "insert into experiments (name, artifact_location, lifecycle_stage, creation_time, "
                    "last_update_time, workspace) values (?, ?, 'active', ?, ?, ?)",
                    (name, artifact_location, now, now, DEFAULT_WORKSPACE))
                experiment_id = cursor.lastrowid
                connection.executemany("insert into experiment_tags (key, value, experiment_id) values (?, ?, ?)",
                                       [(key, str(value), experiment_id) for key, value in (tags or {}).items()])
                return str(experiment_id)
        except sqlite3.IntegrityError:
            raise TrackingError(f"experiment {name!r} already exists in {self.db}") from None

    # -- runs -----------------------------------------------------------------------------------
    def create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
        """A RUNNING run named ``run_name`` (also its ``mlflow.runName`` tag); returns its id."""
        run_id = uuid.uuid4().hex
        tags = {**tags, TAG_RUN_NAME: run_name}
        _, tags = _check_batch((), {}, tags)
        with self._write() as connection:
            row = connection.execute("select artifact_location, lifecycle_stage from experiments "
                                     "where experiment_id = ?", (int(experiment_id),)).fetchone()
            if row is None or row[1] != "active":
                raise TrackingError(f"experiment {experiment_id} is not active in {self.db}")
            artifact_uri = f"{row[0].rstrip('/')}/{run_id}/artifacts"
            connection.execute(
                "insert into runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
                "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
                "experiment_id, deleted_time) values (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, "
                "'', 'active', ?, ?, NULL)",
                (run_id, run_name, tags.get(TAG_USER, "unknown"), now_ms(), artifact_uri, int(experiment_id)))
            connection.executemany("insert into tags (key, value, run_uuid) values (?, ?, ?)",
                                   [(key, str(value), run_id) for key, value in tags.items()])
        return run_id

    def log_batch(self, run_id: str, metrics: Sequence[MetricPoint] = (), params: Mapping[str, str] | None = None,
                  tags: Mapping[str, str] | None = None) -> None:
        """Params, tags and metric points of one run in one transaction (all or nothing)."""
        params, tags = params or {}, tags or {}
        params, tags = _check_batch(metrics, params, tags)
        with self._write() as connection:
            self._active_run(connection, run_id)
            if params:
                self._insert_params(connection, run_id, params)
            if tags:
                connection.executemany("insert or replace into tags (key, value, run_uuid) values (?, ?, ?)",
                                       [(key, str(value), run_id) for key, value in tags.items()])
                if TAG_RUN_NAME in tags:
                    connection.execute("update runs set name = ? where run_uuid = ?",
                                       (str(tags[TAG_RUN_NAME]), run_id))
            if metrics:
                self._insert_metrics(connection, run_id, metrics)

    @staticmethod
    def _insert_params(connection, run_id: str, params: Mapping[str, str]) -> None:
        existing = dict(connection.execute("select key, value from params where run_uuid = ?", (run_id,)))
        changed = {key: (existing[key], str(value)) for key, value in params.items()
                   if key in existing and existing[key] != str(value)}
        if changed:
            raise TrackingError(f"run {run_id} already has different values for params "
                                f"{sorted(changed)} (MLflow params cannot change)")
        connection.executemany("insert into params (key, value, run_uuid) values (?, ?, ?)",
                               [(key, str(value), run_id) for key, value in params.items() if key not in existing])

    @staticmethod
    def _insert_metrics(connection, run_id: str, metrics: Iterable[MetricPoint]) -> None:
        rows, latest = [], {}
        for point in metrics:
            value, is_nan = _sanitize(point.value)
            row = (point.key, value, int(point.timestamp), run_id, int(point.step), is_nan)
            rows.append(row)
            # MLflow's rule: the point with the largest (step, timestamp, value) is the latest
            order = (row[4], row[2], value)
            if point.key not in latest or order > latest[point.key][0]:
                latest[point.key] = (order, row)
        # a point already stored (same key, timestamp, step, value, is_nan) is not stored again
        connection.executemany("insert or ignore into metrics (key, value, timestamp, run_uuid, step, is_nan) "
                               "values (?, ?, ?, ?, ?, ?)", rows)
        stored = {key: (step, timestamp, value) for key, step, timestamp, value in connection.execute(
            "select key, step, timestamp, value from latest_metrics where run_uuid = ?", (run_id,))}
        for key, (order, row) in latest.items():
            if key not in stored or order > stored[key]:
                connection.execute("insert or replace into latest_metrics (key, value, timestamp, step, is_nan, "
                                   "run_uuid) values (?, ?, ?, ?, ?, ?)",
                                   (key, row[1], row[2], row[4], row[5], run_id))

    def set_status(self, run_id: str, status: str, end: bool = True) -> None:
        """Set the run's status (FINISHED, FAILED, KILLED, RUNNING); ``end`` stamps its end time."""
        with self._write() as connection:
            self._active_run(connection, run_id)
            if end:
                connection.execute("update runs set status = ?, end_time = ? where run_uuid = ?",
                                   (status, now_ms(), run_id))
            else:
                connection.execute("update runs set status = ? where run_uuid = ?", (status, run_id))

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy the files under ``local_dir`` into the run's artifact folder (``/artifact_path``)."""
        rows = self._read("select artifact_uri from runs where run_uuid = ?", (run_id,))
        if not rows:
            raise TrackingError(f"run {run_id} is not in the MLflow store {self.db}")
        root = local_path(rows[0][0])
        if root is None:
            raise TrackingError(f"run {run_id} keeps its artifacts at {rows[0][0]}, which is not a local "
                                f"folder; set NNEXP_TRACKING_CLIENT=mlflow")
        destination = root / artifact_path if artifact_path else root
        shutil.copytree(local_dir, destination, dirs_exist_ok=True)

    # -- reading --------------------------------------------------------------------------------
    def find_runs(self, experiment_ids: Sequence[str], tags: Mapping[str, str] | None = None,
                  status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Active runs of the experiments with all of ``tags`` (and ``status``), newest first."""
        if not experiment_ids:
            return []
        where = [f"r.experiment_id in ({', '.join('?' * len(experiment_ids))})", "r.lifecycle_stage = 'active'"]
        args: list = [int(e) for e in experiment_ids]
        if status is not None:
            where.append("r.status = ?")
            args.append(status)
        for key, value in (tags or {}).items():
            where.append("exists (select 1 from tags t where t.run_uuid = r.run_uuid and t.key = ? and t.value = ?)")
            args += [key, value]
        sql = (f"select r.run_uuid, r.name, r.status, r.start_time, r.experiment_id from runs r "
               f"where {' and '.join(where)} order by r.start_time desc, r.run_uuid")
        if limit is not None:
            sql += f" limit {int(limit)}"
        records = [RunRecord(run_id, name or "", status_, start or 0, str(experiment))
                   for run_id, name, status_, start, experiment in self._read(sql, args)]
        by_id = {record.run_id: record for record in records}
        ids = list(by_id)
        for start in range(0, len(ids), 500):   # SQLite binds at most a few thousand values
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for table, attribute in (("tags", "tags"), ("params", "params")):
                for key, value, run_id in self._read(
                        f"select key, value, run_uuid from {table} where run_uuid in ({marks})", chunk):
                    getattr(by_id[run_id], attribute)[key] = value
            for key, value, is_nan, run_id in self._read(
                    f"select key, value, is_nan, run_uuid from latest_metrics where run_uuid in ({marks})", chunk):
                by_id[run_id].metrics[key] = math.nan if is_nan else value
        return records

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """Every ``(step, value)`` of a metric, in step then timestamp order."""
        rows = self._read("select step, value, is_nan from metrics where run_uuid = ? and key = ? "
                          "order by step, timestamp", (run_id, key))
        return [(step, math.nan if is_nan else value) for step, value, is_nan in rows]
