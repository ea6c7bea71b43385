"""What a sweep costs per job, next to the same jobs run as a plain loop of single runs.

    python bench/sweep_speed.py                    # 4 jobs, 2 alternating repeats, ~3 min
    python bench/sweep_speed.py --jobs 6 --repeats 3 --epochs 5

The same N jobs (``seed=0..N-1`` of the default data set, ``epochs`` each) are run as:

- ``loop``: N separate ``python -m nnexp seed=<i>`` one after another (each logs its model);
- ``loop, no model``: the same with ``tracking.log_model=false``;
- ``basic``: one ``python -m nnexp -m seed=0,...`` (Hydra's basic launcher, jobs in the driver);
- ``joblib``: the same with ``hydra/launcher=joblib hydra.launcher.n_jobs=2`` (if installed);
- ``pool``: the same with nnexp's ``hydra/launcher=pool hydra.launcher.n_jobs=2``;
- with ``--compare-source DIR`` (another checkout, e.g. ``git worktree add /tmp/old <commit>``
  plus its ``nnexp/conf`` link): ``basic`` and ``joblib`` again with ``PYTHONPATH=DIR``, in
  the same alternation: before/after figures for a change, measured at the same moments.

Each variant runs in a fresh temporary folder holding a copy of a ready (migrated) store, so no
store creation is timed; the variants alternate within each repeat, so a change of machine
load hits them alike. The table gives medians of wall time and of CPU time (user + system of
the process tree: steadier than wall time on a shared machine), per job, and ratios to the
plain loop measured in the same run. Ratios, not absolute figures, are what carry over to
another machine. Nothing is written to the project tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import load_average, markdown_table  # noqa: E402

PY = sys.executable


def _env(data_root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(NNEXP_DATA_DIR=data_root, MLFLOW_DISABLE_TELEMETRY="true")
    return env


def _timed(commands: list[list[str]], cwd: Path, env: dict) -> tuple[float, float]:
    """Run ``commands`` one after another in ``cwd``: (wall seconds, CPU seconds of the children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for command in commands:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"sweep_speed: {' '.join(command)} failed ({done.returncode}):\n"
                             f"{done.stderr[-2000:]}")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _variants(jobs: int, epochs: int, joblib: bool, other: str | None) -> dict[str, list[list[str]]]:
    common = [f"epochs={epochs}", "progress=false"]
    seeds = ",".join(str(i) for i in range(jobs))
    variants = {
        "loop": [[PY, "-m", "nnexp", f"seed={i}", *common] for i in range(jobs)],
        "loop, no model": [[PY, "-m", "nnexp", f"seed={i}", "tracking.log_model=false", *common]
                           for i in range(jobs)],
        "basic": [[PY, "-m", "nnexp", "-m", f"seed={seeds}", *common]],
    }
    if joblib:
        variants["joblib (2 workers)"] = [[PY, "-m", "nnexp", "-m", f"seed={seeds}", *common,
                                           "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]]
    variants["pool (2 workers)"] = [[PY, "-m", "nnexp", "-m", f"seed={seeds}", *common,
                                     "hydra/launcher=pool", "hydra.launcher.n_jobs=2"]]
    if other:   # the same sweeps on another checkout (its PYTHONPATH is set in main)
        for name in [n for n in variants if not n.startswith("loop")]:
            variants[f"{name} @ {other}"] = variants[name]
    return variants


def _has_joblib_launcher() -> bool:
    try:
        import hydra_plugins.hydra_joblib_launcher  # noqa: F401
    except ImportError:
        return False
    return True


def _ready_store(env: dict, scratch: Path) -> Path:
    """A migrated ``mlflow.db`` to copy into every variant's folder (store creation not timed)."""
    folder = scratch / "template"
    folder.mkdir()
    _timed([[PY, "-m", "nnexp", "epochs=1", "progress=false", "tracking.log_model=false"]], folder, env)
    return folder / "mlflow.db"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs per sweep (default 4)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per job (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats (default 2)")
    parser.add_argument("--compare-source", metavar="DIR", help="also time the sweeps on this checkout")
    parser.add_argument("--data-root", default=os.environ.get("NNEXP_DATA_DIR", "/work/shared/data"))
    args = parser.parse_args(argv)

    env = _env(args.data_root)
    joblib = _has_joblib_launcher()
    variants = _variants(args.jobs, args.epochs, joblib, args.compare_source)
    other_env = {**env, "PYTHONPATH": str(args.compare_source)} if args.compare_source else env
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="nnexp-sweep-speed-") as tmp:
        scratch = Path(tmp)
        store = _ready_store(env, scratch)
        for repeat in range(args.repeats):
            for index, (name, commands) in enumerate(variants.items()):
                folder = scratch / f"{repeat}-{index}"
                folder.mkdir()
                shutil.copy(store, folder / "mlflow.db")
                results[name].append(_timed(commands, folder, other_env if " @ " in name else env))
                print(f"  repeat {repeat + 1}/{args.repeats} {name}: {results[name][-1][0]:.1f} s wall, "
                      f"{results[name][-1][1]:.1f} s CPU", file=sys.stderr, flush=True)

    wall = {name: statistics.median(w for w, _ in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(c for _, c in runs) for name, runs in results.items()}
    rows = [[name, f"{wall[name]:.1f}", f"{wall[name] / args.jobs:.2f}", f"{wall[name] / wall['loop']:.2f}",
             f"{cpu[name]:.1f}", f"{cpu[name] / args.jobs:.2f}", f"{cpu[name] / cpu['loop']:.2f}"]
            for name in variants]
    print(f"{args.jobs} jobs of {args.epochs} epochs (default data set), median of {args.repeats} "
          f"alternating repeats; load average at the end {load_average()[0]:.1f} on {os.cpu_count()} CPUs"
          + ("" if joblib else "; hydra-joblib-launcher not installed: no joblib row"))
    print(markdown_table(["variant", "wall s", "wall s/job", "wall / loop", "CPU s", "CPU s/job", "CPU / loop"],
                         rows, align="lrrrrrr"))


if __name__ == "__main__":
    main()
