"""``python -m nnexp.tracking cleanup``: end the runs whose process died without closing them.

A run killed with SIGKILL (the OOM killer, ``kill -9``, a crashed node) stays RUNNING in MLflow.
The next ``python -m nnexp`` in the same experiment marks such runs FAILED by itself; this
command does it for every experiment of the store at once. Only runs started on this host are
considered (their process id is recorded in the ``nnexp.pid`` tag), and only those whose
process no longer exists: runs still training are left alone.

    python -m nnexp.tracking cleanup              the store a run would use
    python -m nnexp.tracking cleanup --dry-run    list them, change nothing
    python -m nnexp.tracking cleanup --uri sqlite:///path/to/mlflow.db

Exit status 0 (also when nothing was stale), 2 when the store cannot be opened.
"""

from __future__ import annotations

import argparse
import sys


def cleanup(uri: str | None, dry_run: bool = False) -> list:
    """Mark the stale runs of every experiment of the store FAILED; returns them."""
    from nnexp.errors import TrackingError
    from nnexp.tracking.mlflow_backend import MlflowBackend
    from nnexp.tracking import sqlite_file
    from nnexp.tracking.replay import replay_pending
    from nnexp.tracking.store import check_reachable, end_stale_runs, import_mlflow_client, resolve_uri, sqlite_path

    resolved = resolve_uri(uri)
    db = sqlite_path(resolved)
    if db is not None and not db.is_file():
        raise TrackingError(f"no MLflow store at {db} (run it where `python -m nnexp` ran, or pass --uri)")
    if db is not None:
        sqlite_file.check(db)   # never migrate another application's file; name a damaged one
    check_reachable(resolved)
    MlflowClient = import_mlflow_client()
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=resolved)
        experiments = {e.experiment_id: e.name for e in client.search_experiments(view_type=3)}
        backend = MlflowBackend(client)
        if not dry_run:   # a run's points and status the store could not take before, first
            replay_pending(backend, resolved)
        stale = end_stale_runs(backend, list(experiments), dry_run=dry_run)
    except Exception as error:   # MLflow's, SQLAlchemy's or sqlite3's: one line, no traceback
        if not isinstance(error, MlflowException) and not type(error).__module__.startswith(("sqlalchemy", "sqlite3")):
            raise
        if db is not None and sqlite_file.is_damage(error):
            raise sqlite_file.damaged(db, error) from None
        raise TrackingError(f"cannot open the MLflow store {resolved}: {' '.join(str(error).split())[:300]}") from None
    verb = "would mark" if dry_run else "marked"
    for run in stale:
        print(f"{verb} FAILED: run {run.run_id} ({experiments.get(run.experiment_id)}/"
              f"{run.run_name}), process {run.tags.get('nnexp.pid')} is gone")
    print(f"cleanup: {verb} {len(stale)} stale runs FAILED in {resolved}" if stale
          else f"cleanup: no stale runs in {resolved}")
    return stale


def main(argv: list[str] | None = None) -> None:
    from nnexp.errors import NnexpError, one_line

    parser = argparse.ArgumentParser(prog="python -m nnexp.tracking", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    clean = commands.add_parser("cleanup", help="mark runs whose process died (SIGKILL) FAILED")
    clean.add_argument("--uri", default=None, help="tracking URI (default: as a run resolves it)")
    clean.add_argument("--dry-run", action="store_true", help="list the stale runs, change nothing")
    args = parser.parse_args(argv)
    try:
        cleanup(args.uri, dry_run=args.dry_run)
    except NnexpError as error:
        print(f"nnexp.tracking: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
