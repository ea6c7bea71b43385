"""``python -m nnexp.ui``: open the MLflow UI on nnexp's store, bound to 127.0.0.1.

The same store a run writes to (``tracking.uri``/``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in
the working directory), one worker and MLflow's background job runner and telemetry off, which
makes the server start several seconds sooner.

MLflow 3.17's UI opens an experiment on its GenAI traces overview unless told otherwise; the
URL parameter ``workflowType=machine_learning`` (read by the UI's workflow switch) opens it on
the runs table, so the URLs printed here carry it, one per experiment of a SQLite store.

``mlflow ui`` runs in this process, through MLflow's own command line (``mlflow.cli``, what the
``mlflow`` script calls). A Ctrl-C while it imports and starts (it answered after 4.1-4.4 s
here) used to print MLflow's half-finished import as a 29-45 line traceback; here it ends the
command with one line and exit status 130. Once the server runs, MLflow forwards Ctrl-C and SIGTERM to it for a clean shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import socket
import sqlite3
import sys

from nnexp.outcome import EXIT_SIGNAL_BASE

WORKFLOW = "workflowType=machine_learning"


def ui_arguments(uri: str, host: str, port: int) -> list[str]:
    """The arguments of ``mlflow ui`` for ``uri``."""
    return ["ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]


def _interrupted_while_starting(signum, frame) -> None:
    """SIGINT before MLflow's server installs its own handler (which forwards it to the server)."""
    try:
        print("nnexp.ui: interrupted while the MLflow UI was starting; nothing was served", file=sys.stderr)
        sys.stderr.flush()
    finally:
        os._exit(EXIT_SIGNAL_BASE + signal.SIGINT)


def serve(arguments: list[str]) -> None:
    """Run ``mlflow <arguments>`` in this process; returns when the server has stopped."""
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from mlflow.cli import cli

    cli.main(args=arguments, prog_name="mlflow")


def store_with_runs(uri: str | None) -> str:
    """The tracking URI to read runs from (resolved as a run resolves it); a SQLite store that
    does not exist yet raises :class:`~nnexp.errors.TrackingError` instead of being created."""
    from nnexp.errors import TrackingError
    from nnexp.tracking.store import resolve_uri, sqlite_path

    resolved = resolve_uri(uri)
    db = sqlite_path(resolved)
    if db is not None and not db.exists():
        raise TrackingError(f"no runs yet: {db} does not exist "
                            f"(run `python -m nnexp` in this folder first, or pass --uri)")
    if db is not None:
        from nnexp.tracking import sqlite_file

        sqlite_file.check(db)   # `mlflow ui` would migrate another application's file
    return resolved


def experiment_urls(uri: str, base: str) -> list[str]:
    """``<base>/#/experiments/<id>/runs?workflowType=machine_learning`` for every active experiment
    of a SQLite store with runs (read-only, no MLflow import); the experiments list otherwise."""
    from nnexp.tracking.store import sqlite_path

    db = sqlite_path(uri)
    rows = []
    if db is not None:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
                rows = connection.execute(
                    "select e.experiment_id, e.name from experiments e where e.lifecycle_stage = 'active' "
                    "and exists (select 1 from runs r where r.experiment_id = e.experiment_id) "
                    "order by e.experiment_id").fetchall()
        except sqlite3.Error:
            rows = []
    urls = [f"{base}/#/experiments/{eid}/runs?{WORKFLOW}  ({name})" for eid, name in rows]
    return urls or [f"{base}/#/experiments?{WORKFLOW}"]


def check_address(host: str, port: int) -> str | None:
    """An error line when ``host:port`` cannot be bound (in use), else None."""
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as error:
        return f"cannot listen on {host}:{port}: {error.strerror or error} (choose another with --port)"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def replay_before_serving(uri: str) -> None:
    """Write what runs could not write during a store outage (nnexp/tracking/replay.py) before
    the UI shows them; MLflow is imported for it only when there is something to write. A store
    that still refuses keeps the files for the next command, and the UI starts anyway."""
    from nnexp.tracking.replay import pending, replay_pending

    if not pending(uri):
        return
    from nnexp.errors import one_line
    from nnexp.tracking.mlflow_backend import MlflowBackend
    from nnexp.tracking.store import import_mlflow_client

    try:
        replay_pending(MlflowBackend(import_mlflow_client()(tracking_uri=uri)), uri)
    except Exception as error:  # noqa: BLE001 - the UI still shows what the store has
        print(f"nnexp.ui: warning: could not write the runs' pending records ({one_line(error)}); "
              f"they are kept for the next command", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    from nnexp.errors import NnexpError

    parser = argparse.ArgumentParser(prog="python -m nnexp.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default=None, help="tracking URI (default: as a run resolves it)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        uri = store_with_runs(args.uri)
    except NnexpError as error:
        parser.exit(2, f"nnexp.ui: error: {error}\n")
    if uri.startswith(("http://", "https://")):   # `mlflow ui` would fail with a traceback
        parser.exit(2, f"nnexp.ui: error: {uri} is a tracking server, which has its own UI: open it "
                       f"in a browser (this command serves a database store: --uri sqlite:///<file>)\n")
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not 0 < args.port < 65536:
        parser.exit(2, f"nnexp.ui: error: --port {args.port} is not a port number (1-65535)\n")
    problem = check_address(args.host, args.port)
    if problem:
        parser.exit(2, f"nnexp.ui: error: {problem}\n")
    if not is_loopback(args.host):
        print(f"nnexp.ui: warning: --host {args.host} makes the UI reachable from other machines, and it "
              f"has no authentication: anyone who reaches it can read and delete runs", file=sys.stderr)
    replay_before_serving(uri)
    host = f"[{args.host}]" if ":" in args.host else args.host
    urls = experiment_urls(uri, f"http://{host}:{args.port}")
    print(f"MLflow UI for {uri} (Ctrl-C to stop); the runs of each experiment:", flush=True)
    print("\n".join(f"  {url}" for url in urls), flush=True)
    serve(ui_arguments(uri, args.host, args.port))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:   # before the server started (its replay of pending records included)
        _interrupted_while_starting(signal.SIGINT, None)
