"""``python -m nnexp.ui``: open the MLflow UI on nnexp's store, bound to 127.0.0.1.

The same store a run writes to (``tracking.uri``/``MLFLOW_TRACKING_URI``, else
``mlruns/mlflow.db`` under the working directory), one worker and MLflow's background job
runner and telemetry off, which makes the server start several seconds sooner.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys


def command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line for ``uri``."""
    mlflow = shutil.which("mlflow")
    launcher = [mlflow] if mlflow else [sys.executable, "-m", "mlflow"]
    return [*launcher, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", "1"]


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
    return resolved


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
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    cmd = command(uri, args.host, args.port)
    print(f"MLflow UI on http://{args.host}:{args.port} for {uri} (Ctrl-C to stop)", flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
