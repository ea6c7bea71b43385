"""Where runs are kept: resolving the tracking URI, opening the store, getting the experiment.

The default store is MLflow's own default, ``sqlite:///<cwd>/mlflow.db`` with artifacts under
``<cwd>/mlruns/``, so plain ``mlflow ui``, ``mlflow models predict -m runs:/...`` and
``mlflow.pyfunc.load_model("runs:/...")`` find nnexp's runs from the folder they were made in.
A store made by an earlier nnexp at ``<cwd>/mlruns/mlflow.db`` is still used (with a note) while
no ``mlflow.db`` exists. ``MLFLOW_TRACKING_URI`` or ``tracking.uri`` choose another store.

Why the care: a new SQLite database is created by running schema migrations, and several
processes doing that at once break it; an experiment created by two jobs at once makes one of
them fail. So a sweep opens the store and makes the experiment once, before its jobs start
(:func:`open_store` from the sweep callback), and every run is started with an explicit
experiment id. Independent processes started together on a new database (a shell loop, a job
array) are serialised by an exclusive lock on ``<database>.lock`` while the database and the
experiment are created; once the experiment exists, opening takes no lock.

Who writes: a SQLite store that MLflow has made (migrated), with tables of the schema
:mod:`nnexp.tracking.sqlite_backend` knows, is written directly through ``sqlite3`` and opened
without importing MLflow (2-3 s saved in every process), new experiments included; a new
database, and any other store, goes through MLflow's client
(:mod:`nnexp.tracking.mlflow_backend`). ``NNEXP_TRACKING_CLIENT=mlflow`` forces MLflow's client.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from nnexp.errors import TrackingError
from nnexp.tracking import replay, sqlite_backend, sqlite_file, tags
from nnexp.tracking.mlflow_backend import MlflowBackend
from nnexp.tracking.sqlite_backend import SqliteBackend

# URI schemes MLflow can track to; anything else is almost certainly a typo.
KNOWN_SCHEMES = {"sqlite", "file", "http", "https", "postgresql", "mysql", "mssql",
                 "databricks", "databricks-uc"}

# Tags nnexp puts on every run (names kept here for the modules that import them from here).
TAG_PID, TAG_HOST, TAG_ERROR = tags.PID, tags.HOST, tags.ERROR

# MLflow 3's UI shows an experiment of this kind as model training (runs), not GenAI traces.
EXPERIMENT_TAGS = {tags.EXPERIMENT_KIND: tags.EXPERIMENT_KIND_TRAINING}

CLIENT_VARIABLE = "NNEXP_TRACKING_CLIENT"   # "auto" (the default) or "mlflow"
CLIENT_CHOICES = ("auto", "mlflow")


DEFAULT_DB = "mlflow.db"                        # MLflow's default (mlflow/store/tracking/__init__.py)
LEGACY_DB = Path("mlruns") / "mlflow.db"       # where nnexp before 0.2 kept its store
_legacy_noted = False


def default_uri() -> str:
    """``sqlite:///<cwd>/mlflow.db`` (MLflow's own default), or an earlier nnexp's
    ``<cwd>/mlruns/mlflow.db`` while that exists and ``mlflow.db`` does not (said once, on stdout)."""
    global _legacy_noted
    new, legacy = Path(DEFAULT_DB).resolve(), LEGACY_DB.resolve()
    if not new.exists() and legacy.is_file():
        if not _legacy_noted:
            _legacy_noted = True
            print(f"nnexp: note: using the store of an earlier nnexp, {legacy} (MLflow's own default is "
                  f"./mlflow.db; for plain `mlflow ui` set MLFLOW_TRACKING_URI=sqlite:///{legacy})",
                  flush=True)   # stdout: a note, not an error (stderr holds only what went wrong)
        return f"sqlite:///{legacy}"
    return f"sqlite:///{new}"


def resolve_uri(configured: str | None = None) -> str:
    """The tracking URI: the config's, else ``$MLFLOW_TRACKING_URI``, else :func:`default_uri`.

    A URI whose scheme MLflow cannot use, a SQLite URI without a path (``sqlite://`` alone would
    be an in-memory database that keeps nothing) or an HTTP URI without a host raises
    :class:`TrackingError` naming where the value came from.
    """
    source, uri = "tracking.uri", configured
    if not uri:
        source, uri = "MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return default_uri()
    scheme = urlparse(uri).scheme
    if uri in ("databricks", "databricks-uc") or scheme.startswith("databricks"):
        return uri   # MLflow's Databricks workspace (profile in ~/.databrickscfg)
    if scheme == "" and "://" not in uri:
        # a plain folder: MLflow's old file store, refused by MLflow 3 unless explicitly allowed
        raise TrackingError(f"{source}={uri!r} is a folder, not a tracking URI; use "
                            f"sqlite:///{Path(uri).resolve() / 'mlflow.db'} or unset it")
    # SQLAlchemy's "+driver" suffix (postgresql+psycopg2://, mysql+pymysql://) picks a driver
    if scheme.split("+", 1)[0] not in KNOWN_SCHEMES:
        raise TrackingError(f"{source}={uri!r} is not a tracking URI MLflow can use "
                            f"(expected e.g. sqlite:///mlruns/mlflow.db or http://127.0.0.1:5000)")
    if scheme == "sqlite" and (not uri.startswith("sqlite:///") or not uri.removeprefix("sqlite:///").strip()):
        # "sqlite://" alone is an in-memory database: every run would vanish with the process
        raise TrackingError(f"{source}={uri!r} names no database file: write sqlite:/// and a path, "
                            f"e.g. sqlite:///mlruns/mlflow.db")
    if scheme == "file" and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in ("true", "1"):
        raise TrackingError(f"{source}={uri!r} is MLflow's old file store, which MLflow 3 refuses; use "
                            f"sqlite:///<folder>/mlflow.db (or set MLFLOW_ALLOW_FILE_STORE=true)")
    if scheme in ("http", "https") and not urlparse(uri).hostname:
        raise TrackingError(f"{source}={uri!r} names no server (e.g. http://127.0.0.1:5000)")
    return uri


# Database URIs and the Python driver SQLAlchemy 2 loads for each (module, pip package).
DRIVERS = {"postgresql": ("psycopg", "psycopg[binary]"), "postgresql+psycopg": ("psycopg", "psycopg[binary]"),
           "postgresql+psycopg2": ("psycopg2", "psycopg2-binary"), "mysql": ("MySQLdb", "mysqlclient"),
           "mysql+pymysql": ("pymysql", "pymysql"), "mssql": ("pyodbc", "pyodbc")}
SERVER_TIMEOUT = 10   # seconds to wait for a tracking server to accept a connection


def check_reachable(uri: str) -> None:
    """One line, before MLflow is asked, when a database URI's driver is not installed or no
    tracking server listens at an http(s) URI (MLflow itself retries for minutes)."""
    import importlib.util

    parsed = urlparse(uri)
    if parsed.scheme in DRIVERS:
        module, package = DRIVERS[parsed.scheme]
        if importlib.util.find_spec(module) is None:
            raise TrackingError(f"tracking URI {parsed.scheme}://... needs the {module} driver: "
                                f"pip install \"{package}\"")
    if parsed.scheme in ("http", "https") and parsed.hostname:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=SERVER_TIMEOUT).close()
        except OSError as error:
            raise TrackingError(f"no tracking server answers at {parsed.scheme}://{parsed.hostname}:{port} "
                                f"({error.strerror or error}); start it (mlflow server) or fix the URI") from None


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def _check_writable(db: Path) -> None:
    """Fail early, in one line, when the database folder cannot be created or written."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrackingError(f"cannot create the MLflow store folder {db.parent}: "
                            f"{error.strerror} (choose another with MLFLOW_TRACKING_URI)") from None
    if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
        raise TrackingError(f"the MLflow store {db} is not writable "
                            f"(fix its permissions or choose another with MLFLOW_TRACKING_URI)")
    sqlite_file.check(db)   # a foreign or damaged file is refused; a hot journal is rolled back


def _check_artifact_folder(location: str | None) -> None:
    """Fail in one line, before a run exists, when the experiment's local artifact folder cannot
    be created or written (otherwise the run would train and then fail to save its files)."""
    scheme = urlparse(location or "").scheme
    if not location or scheme not in ("", "file"):
        return  # a server or cloud store checks its own permissions
    folder = Path(url2pathname(urlparse(location).path)) if scheme == "file" else Path(location)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrackingError(f"cannot create the MLflow artifact folder {folder}: {error.strerror} "
                            f"(choose another store with MLFLOW_TRACKING_URI)") from None
    if not os.access(folder, os.W_OK):
        raise TrackingError(f"the MLflow artifact folder {folder} is not writable "
                            f"(fix its permissions or choose another store with MLFLOW_TRACKING_URI)")


def _experiment_exists(db: Path, experiment_name: str) -> bool:
    """Whether the database is ready and holds the experiment (read-only, no MLflow import).

    nnexp creates an experiment only after the database is fully migrated (under the lock of
    :func:`_creation_lock`), so an experiment row means that nothing is left to create.
    """
    if not db.is_file() or not db.stat().st_size:
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as connection:
            row = connection.execute("select 1 from experiments where name = ?",
                                     (experiment_name,)).fetchone()
    except sqlite3.Error:  # no experiments table yet (being created), or busy for a minute
        return False
    return row is not None


def _creation_lock(db: Path):
    """Hold an exclusive ``flock`` on ``<database>.lock`` while a database or an experiment is
    created; closing the returned handle removes the file and releases the lock.

    Removing a lock file is safe only because a process that has locked it checks that the path
    still names the file it locked (another holder may have removed it meanwhile) and starts
    again on the new one if not; the holder removes it before it lets go.
    """
    path = db.with_name(db.name + ".lock")
    while True:
        try:
            handle = open(path, "a")
        except OSError as error:   # e.g. /proc: root passes os.access, but no file can be made
            raise TrackingError(f"cannot create files in the MLflow store folder {path.parent}: "
                                f"{error.strerror} (choose another with MLFLOW_TRACKING_URI)") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if _names(path, handle):
                return _RemovedWhenClosed(handle, path)
        except BaseException:
            handle.close()
            raise
        handle.close()   # locked a file another holder had already removed: lock the new one


def _names(path: Path, handle) -> bool:
    """Whether ``path`` still names the file ``handle`` has open. (The path may be removed at any
    moment by the holder of a newer lock file: gone is "no", not an error.)"""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


class _RemovedWhenClosed:
    """A locked lock file that is removed, then unlocked, when closed (see :func:`_creation_lock`)."""

    def __init__(self, handle, path: Path):
        self.handle, self.path = handle, path

    def close(self) -> None:
        if self.handle.closed:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.handle.close()


@dataclass
class Store:
    """An opened tracking store and the experiment runs go to."""

    backend: SqliteBackend | MlflowBackend
    uri: str
    experiment_id: str
    experiment_name: str


def artifact_root(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a SQLite store go beside the database, in ``<db folder>/mlruns/<name>`` as
    MLflow keeps them in ``./mlruns`` (an earlier nnexp's ``mlruns/mlflow.db``: ``mlruns/artifacts``)."""
    db = sqlite_path(uri)
    if db is None:
        return None  # the server or database decides
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment_name)
    folder = db.resolve().parent
    folder = folder / "artifacts" if folder.name == "mlruns" else folder / "mlruns"
    return (folder / safe).as_uri()


def import_mlflow_client():
    """Import MLflow the way nnexp uses it and return ``MlflowClient``: telemetry and artifact
    progress bars off unless the user set them, and its INFO chatter (database migrations, ...)
    kept out of our terminal (MLflow sets its own log level on import, so this comes after)."""
    import logging

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return MlflowClient


_imports_frozen = False  # set once MLflow's imports are frozen in this process


@contextlib.contextmanager
def _collector_paused():
    """The first time in a process: run MLflow's imports and set-up with the garbage collector
    paused, then freeze what is alive (MLflow, SQLAlchemy, Hydra: about a million long-lived
    objects) out of its reach. Later calls do nothing special.

    Importing MLflow allocates so much that it triggers full collections, each walking every
    object again, and so does every later full collection and the interpreter's last one at
    exit: measured 0.47 s of collections in a short run and 0.77 s at exit (0.11 s and 0.05 s
    now, ``bench/overhead.py``). Frozen objects are still freed by reference counting; only
    cycles among them wait for the end of the process, which is why it is done once: a long
    sweep in one process must still collect each job's cyclic garbage (OmegaConf nodes).
    """
    global _imports_frozen
    if _imports_frozen:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        _imports_frozen = True
        if enabled:
            gc.enable()


def _direct_writes_allowed() -> bool:
    """Whether SQLite stores may be written without MLflow (``$NNEXP_TRACKING_CLIENT``)."""
    choice = os.environ.get(CLIENT_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in CLIENT_CHOICES:
        raise TrackingError(f"{CLIENT_VARIABLE}={os.environ[CLIENT_VARIABLE]!r} is not one of "
                            f"{', '.join(CLIENT_CHOICES)} (unset it, or set it to mlflow)")
    return choice == "auto"


def open_store(uri: str, experiment_name: str) -> Store:
    """Open (creating if needed) the store at ``uri`` and the experiment called ``experiment_name``.

    Safe to call from several processes at once, also on a database that does not exist yet
    (see :func:`_creation_lock`); a sweep calls it once before its jobs start anyway. Ends the
    experiment's runs whose process died (see :func:`mark_stale_runs_failed`).
    """
    db = sqlite_path(uri)
    direct = db is not None and _direct_writes_allowed()
    check_reachable(uri)
    if db is not None:
        _check_writable(db)
        if sqlite_file.needs_creation(db):
            _create_database(db, uri)
    store = None
    if direct and sqlite_backend.supports(db):
        store = _open_direct(db, uri, experiment_name)
    if store is None:
        with _collector_paused():
            store = _open_store(uri, experiment_name)
        if direct and sqlite_backend.supports(db):
            # MLflow made what was missing; the runs themselves need no MLflow
            store = _open_direct(db, uri, experiment_name) or store
    try:
        replay.replay_pending(store.backend, uri)   # what a run could not write before, first
        mark_stale_runs_failed(store)
    except sqlite3.DatabaseError as error:   # a damaged page among the runs
        if db is not None and sqlite_file.is_damage(error):
            raise sqlite_file.damaged(db, error) from None
        raise
    return store


def _create_database(db: Path, uri: str) -> None:
    """A new SQLite store, migrated by MLflow aside and renamed into place (see
    :mod:`nnexp.tracking.sqlite_file`), by one process at a time."""
    def migrate(temporary_uri: str) -> None:
        with _collector_paused():
            client = import_mlflow_client()(tracking_uri=temporary_uri)
        client.search_experiments(max_results=1)

    with contextlib.closing(_creation_lock(db)):
        if sqlite_file.needs_creation(db):
            try:
                sqlite_file.create_atomically(db, migrate)
            except Exception as error:  # MLflow's or SQLAlchemy's, in one line
                if isinstance(error, TrackingError):
                    raise
                message = " ".join(str(error).split())[:300]
                raise TrackingError(f"cannot create the MLflow store {uri}: {message}") from None


def _deleted(experiment_name: str, uri: str) -> TrackingError:
    return TrackingError(f"experiment {experiment_name!r} is deleted in {uri}; restore it "
                         f"in the MLflow UI or choose another with tracking.experiment=...")


def _open_direct(db: Path, uri: str, experiment_name: str) -> Store | None:
    """The store written through :class:`SqliteBackend` (the experiment created if missing, under
    :func:`_creation_lock`), or None when the experiment's artifacts are not kept in a local
    folder (MLflow's artifact repositories handle the others)."""
    backend = SqliteBackend(db)
    store = None
    try:
        store = _direct_experiment(backend, db, uri, experiment_name)
    except sqlite3.Error as error:
        if sqlite_file.is_damage(error):
            raise sqlite_file.damaged(db, error) from None
        raise TrackingError(f"cannot open the MLflow store {uri}: {error}") from None
    finally:
        if store is None:
            backend.close()
    return store


def _direct_experiment(backend: SqliteBackend, db: Path, uri: str, experiment_name: str) -> Store | None:
    found = backend.get_experiment(experiment_name)
    if found is None:
        location = artifact_root(uri, experiment_name)
        _check_artifact_folder(location)
        with contextlib.closing(_creation_lock(db)):
            found = backend.get_experiment(experiment_name)   # made meanwhile by another process?
            if found is None:
                found = (backend.create_experiment(experiment_name, location, EXPERIMENT_TAGS), location, "active")
    experiment_id, location, stage = found
    if sqlite_backend.local_path(location or "") is None:
        return None
    if stage == "deleted":
        raise _deleted(experiment_name, uri)
    _check_artifact_folder(location)
    return Store(backend, uri, experiment_id, experiment_name)


def _open_store(uri: str, experiment_name: str) -> Store:
    """:func:`open_store` through MLflow's client: creates the database and the experiment."""
    db = sqlite_path(uri)
    MlflowClient = import_mlflow_client()
    from mlflow.exceptions import MlflowException

    # A new database (or experiment) is made by one process at a time; the others wait, then
    # find the experiment made and go on without the lock.
    lock = None
    if db is not None and not _experiment_exists(db, experiment_name):
        lock = _creation_lock(db)
        if _experiment_exists(db, experiment_name):
            lock.close()
            lock = None
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            location = artifact_root(uri, experiment_name)
            _check_artifact_folder(location)
            try:
                experiment_id = client.create_experiment(experiment_name, artifact_location=location,
                                                         tags=EXPERIMENT_TAGS)
            except MlflowException:
                # another process created it between our look-up and our create
                experiment = client.get_experiment_by_name(experiment_name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        else:
            if experiment.lifecycle_stage == "deleted":
                raise _deleted(experiment_name, uri)
            experiment_id = experiment.experiment_id
            _check_artifact_folder(experiment.artifact_location)
    except MlflowException as error:
        if db is not None and sqlite_file.is_damage(error):
            raise sqlite_file.damaged(db, error) from None
        message = " ".join(str(error).split())[:300]
        raise TrackingError(f"cannot open the MLflow store {uri}: {message}") from None
    except Exception as error:
        if not type(error).__module__.startswith("sqlalchemy"):
            raise
        if db is not None and sqlite_file.is_damage(error):
            raise sqlite_file.damaged(db, error) from None
        # e.g. a URI SQLAlchemy cannot parse, or a database file it cannot open
        message = " ".join(str(error).split())[:300]
        raise TrackingError(f"cannot open the MLflow store {uri}: {message}") from None
    finally:
        if lock is not None:
            lock.close()
    return Store(MlflowBackend(client), uri, experiment_id, experiment_name)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_stale_runs_failed(store: Store) -> list[str]:
    """End as FAILED every RUNNING run of this experiment whose process on this host is gone.

    A run killed with SIGKILL (or by a power cut) cannot end itself; the next invocation on the
    same machine notices that its process no longer exists and says so in the run's tags.
    Runs of other hosts are left alone: we cannot see their processes. Returns the run ids.
    """
    return [run.run_id for run in end_stale_runs(store.backend, [store.experiment_id])]


def end_stale_runs(backend, experiment_ids: list[str], dry_run: bool = False) -> list:
    """:func:`mark_stale_runs_failed` for any experiments (``python -m nnexp.tracking cleanup``
    passes them all); returns the stale runs (:class:`~nnexp.tracking.records.RunRecord`),
    left RUNNING when ``dry_run``."""
    host = socket.gethostname()
    stale = []
    for run in backend.find_runs(experiment_ids, status="RUNNING"):
        tags = run.tags
        if tags.get(TAG_HOST) != host or not tags.get(TAG_PID, "").isdigit():
            continue
        pid = int(tags[TAG_PID])
        if pid == os.getpid() or _process_alive(pid):
            continue
        stale.append(run)
    for run in [] if dry_run else stale:
        pid = run.tags[TAG_PID]
        backend.log_batch(run.run_id, tags={TAG_ERROR: f"process {pid} on {host} ended without closing "
                                                       f"the run (killed?)"})
        backend.set_status(run.run_id, "FAILED")
    return stale
