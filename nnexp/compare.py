"""``python -m nnexp.compare``: a sweep's children ranked in the terminal, plus CSV and plots.

For people who would rather not open the MLflow UI. By default it takes the latest sweep in
the store; ``--sweep RUN_ID`` picks another, ``--experiment`` narrows the search.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nnexp.tracking.mlflow_backend import MlflowBackend, record


def _fail(message: str) -> None:
    print(f"nnexp.compare: error: {message}", file=sys.stderr)
    sys.exit(2)


def find_parent(client, experiment_ids: list[str], run_id: str | None):
    """The sweep's parent run (a :class:`~nnexp.tracking.records.RunRecord`): ``run_id``, or
    the latest parent run in these experiments; exits 2 in one line when there is none."""
    from mlflow.exceptions import MlflowException

    from nnexp.sweep.tags import TAG_SWEEP

    if run_id:
        try:
            found = record(client.get_run(run_id))
        except MlflowException:
            _fail(f"no run {run_id!r} in this store (list sweeps in the UI: python -m nnexp.ui)")
        if found.tags.get(TAG_SWEEP) != "parent":
            _fail(f"run {run_id} is not a sweep's parent run ({found.run_name!r} is a single run or a "
                  f"sweep's child); pass a parent's id, or leave --sweep out for the latest sweep")
        return found
    runs = MlflowBackend(client).find_runs(experiment_ids, tags={TAG_SWEEP: "parent"}, limit=1)
    if not runs:
        _fail("no sweep found (run one with python -m nnexp -m ...)")
    return runs[0]


def _output_folder(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".nnexp-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        _fail(f"cannot write to {out}: {error.strerror or error} (choose another folder with --out)")
    return out


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 written; 2 with one line for anything about the input (no such store,
    experiment or sweep, a run that is not a sweep's parent, an unreachable server, an output
    folder that cannot be written)."""
    from nnexp.errors import NnexpError, one_line
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
        _fail(str(error))

    from mlflow.exceptions import MlflowException

    try:
        return _compare(args, uri)
    except MlflowException as error:   # an unreachable server, a store MLflow cannot read
        text = one_line(error)
        _fail(f"cannot read the runs in {uri}: {text if len(text) < 200 else text[:200] + '...'} "
              f"(check --uri, or the server)")
    except OSError as error:           # the output folder filled up or vanished while writing
        _fail(f"cannot write the comparison: {error.strerror or error} "
              f"({getattr(error, 'filename', '') or 'output folder'}; choose another with --out)")


def _compare(args, uri: str) -> int:
    """Rank the sweep's children, print the table, write the CSV and the plots."""
    from mlflow.tracking import MlflowClient

    from nnexp.sweep import summary
    from nnexp.sweep.job import read_job_records
    from nnexp.tracking.replay import replay_pending

    client = MlflowClient(uri)
    backend = MlflowBackend(client)
    # what a run could not write during a store outage (nnexp/tracking/replay.py), first: the
    # comparison is then of every point the runs logged
    replay_pending(backend, uri)
    if args.experiment:
        experiment = client.get_experiment_by_name(args.experiment)
        if experiment is None:
            _fail(f"no experiment {args.experiment!r} in {uri}")
        experiment_ids = [experiment.experiment_id]
    else:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    parent = find_parent(client, experiment_ids, args.sweep)
    swept = [k for k in parent.tags.get("nnexp.swept", "").split(",") if k]
    rows = summary.sweep_rows(backend, parent.experiment_id, parent.run_id, swept,
                              read_job_records(parent.tags))
    if not rows:
        _fail(f"sweep {parent.run_name} ({parent.run_id}) has no runs: its jobs never started, or "
              f"wrote to another store; nothing written")
    out = _output_folder(args.out or Path("outputs") / "compare" / parent.run_id)
    print(f"sweep {parent.run_name} ({parent.run_id}), {len(rows)} runs, ranked by best_val_loss:")
    print(summary.format_table(rows, swept))
    summary.write_csv(rows, out / "comparison.csv")
    plots = summary.write_plots(backend, [r for r in rows if r.get("run_id")], swept, out)
    print(f"wrote {out}/comparison.csv and {', '.join(p.name for p in plots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
