"""``python -m nnexp.report RUN_ID [RUN_ID ...]``: draw runs' figures from the store.

A sweep's children record the numbers their ``learning_curves.png``, ``dynamics.png`` and
``confusion_matrix.png`` are drawn from, and the sweep draws only its best child's
(``tracking.child_figures``, :mod:`nnexp.report.run_figures`). This draws them for any run,
single or child, and adds them to the run's artifacts, where the MLflow UI shows them.
"""

from __future__ import annotations

import argparse
import sys


def _fail(message: str) -> None:
    print(f"nnexp.report: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every run's figures were drawn; 2 with one line for an unknown store
    or run, or a run with nothing to draw (a gradcheck run)."""
    from nnexp.errors import NnexpError, one_line
    from nnexp.ui import store_with_runs

    parser = argparse.ArgumentParser(prog="python -m nnexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="runs to draw (ids as the UI shows them)")
    parser.add_argument("--uri", help="tracking URI (default: as a run resolves it)")
    args = parser.parse_args(argv)
    try:
        uri = store_with_runs(args.uri)
    except NnexpError as error:
        _fail(str(error))

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from nnexp.report.run_figures import draw_into_run
    from nnexp.tracking.mlflow_backend import MlflowBackend, record

    client = MlflowClient(uri)
    backend = MlflowBackend(client)
    try:
        runs = []
        for run_id in args.run_ids:   # every id is checked before anything is drawn
            try:
                runs.append(record(client.get_run(run_id)))
            except MlflowException:
                _fail(f"no run {run_id!r} in {uri} (run ids are on the run's page: python -m nnexp.ui)")
        for run in runs:
            drawn = draw_into_run(backend, run)
            if not drawn:
                _fail(f"run {run.run_id} ({run.run_name!r}) has no learning curves, layer statistics "
                      f"or confusion matrix to draw (a gradcheck run, or one that ended before its "
                      f"first epoch)")
            print(f"run {run.run_id} ({run.run_name}): drew {', '.join(drawn)} into its artifacts")
    except MlflowException as error:   # an unreachable server, a store MLflow cannot read
        _fail(f"cannot read or write the runs in {uri}: {one_line(error)[:200]} (check --uri, or the server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
