"""``python -m nnexp.compare``: a sweep's children ranked in the terminal, plus CSV and plots.

For people who would rather not open the MLflow UI. By default it takes the latest sweep in
the store; ``--sweep RUN_ID`` picks another, ``--experiment`` narrows the search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnexp.tracking.mlflow_backend import MlflowBackend, record


def find_parent(client, experiment_ids: list[str], run_id: str | None):
    """The sweep's parent run (a :class:`~nnexp.tracking.records.RunRecord`): ``run_id``, or
    the latest parent run in these experiments."""
    from nnexp.sweep import TAG_SWEEP

    if run_id:
        return record(client.get_run(run_id))
    runs = MlflowBackend(client).find_runs(experiment_ids, tags={TAG_SWEEP: "parent"}, limit=1)
    return runs[0] if runs else None


def main(argv: list[str] | None = None) -> int:
    from nnexp import summary
    from nnexp.errors import NnexpError
    from nnexp.ui import store_with_runs

    parser = argparse.ArgumentParser(prog="python -m nnexp.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", metavar="RUN_ID", help="the sweep's parent run (default: the latest)")
    parser.add_argument("--experiment", help="look for sweeps in this experiment only")
    parser.add_argument("--uri", help="tracking URI (default: as a run resolves it)")
    parser.add_argument("--out", type=Path, help="folder for comparison.csv and the plots "
                                                 "(default: outputs/compare/<sweep run id>)")
    args = parser.parse_args(argv)
    try:
        uri = store_with_runs(args.uri)
    except NnexpError as error:
        parser.exit(2, f"nnexp.compare: error: {error}\n")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    if args.experiment:
        experiment = client.get_experiment_by_name(args.experiment)
        if experiment is None:
            parser.exit(2, f"nnexp.compare: error: no experiment {args.experiment!r} in {uri}\n")
        experiment_ids = [experiment.experiment_id]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    parent = find_parent(client, experiment_ids, args.sweep)
    if parent is None:
        parser.exit(2, "nnexp.compare: error: no sweep found (run one with python -m nnexp -m ...)\n")
    swept = [k for k in parent.tags.get("nnexp.swept", "").split(",") if k]
    backend = MlflowBackend(client)
    rows = summary.rank(summary.child_rows(backend, parent.experiment_id, parent.run_id, swept))
    print(f"sweep {parent.run_name} ({parent.run_id}), {len(rows)} runs, ranked by best_val_loss:")
    print(summary.format_table(rows, swept))
    out = args.out or Path("outputs") / "compare" / parent.run_id
    out.mkdir(parents=True, exist_ok=True)
    summary.write_csv(rows, out / "comparison.csv")
    if rows:
        summary.write_plots(backend, rows, swept, out)
    print(f"wrote {out}/comparison.csv and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
