"""A compute-bound sweep against the machine's own ceiling, per launcher, and against PyTorch.

    python bench/sweep_ceiling.py                      # ~6-10 min on 2 cores
    python bench/sweep_ceiling.py --launchers basic,pool --repeats 1

The workload of issue 13: 8 jobs, each one epoch of MNIST (54,000 training images, 6,000
validation) on 784-256-256-10 ReLU with Adam (lr 1e-3), batch 128, float32, seeds 0-7. Timed,
as wall time of the whole thing, in the same run and alternating between repeats:

- ``bare, 1 process``: the 8 fits with ``nnexp.core`` alone in one process (data loaded once,
  no Hydra, no tracking), the machine's default BLAS threads;
- ``bare, 2 processes``: 4 + 4 of the same fits in two processes at once, one BLAS thread each:
  what 2 workers could give at best here. ``ceiling = bare 1 process / bare 2 processes``;
- one nnexp sweep per launcher: ``python -m nnexp -m seed=0,...,7 data=mnist ...`` with basic
  (serial), pool and joblib (2 workers), Ray on a running local cluster (``ray start --head
  --num-cpus=2`` on 127.0.0.1 before the timing, ``hydra/launcher=ray_cluster``: issue 13's
  "running local Ray cluster"), Ray started by the launcher for the sweep (2 CPUs) and
  submitit_local, each in a fresh folder holding a copy of a ready store;
- ``torch + mlflow``: the same 8 jobs written the way a user would otherwise write them, a
  plain PyTorch loop logging params and per-epoch metrics with ``mlflow.log_metrics``, as a
  Hydra multirun (``bench/torch_sweep_app.py``, basic launcher, same SQLite store kind).

Printed: wall time; the CPU time of each variant's process tree (user + system of the processes
it waited for: a parallel sweep whose CPU seconds are about twice its wall seconds is bound by
the 2 cores, not by waiting; a running Ray cluster's own processes are not counted); the share
of the ceiling reached by the parallel launchers (their speed-up over the serial nnexp sweep,
divided by the ceiling); per-job overhead beyond the bare fits; and for the serial nnexp sweep
where a job's time goes (from the store: each child's start and end, and its
``epoch_seconds``). The targets of issue 13 are checked at the end. Every variant runs with the
NumPy memory setting ``python -m nnexp`` picks (:mod:`nnexp.memory_pages`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import load_average, markdown_table, pinned_env, verdict  # noqa: E402

PY = sys.executable
JOBS = 8
BENCH = Path(__file__).resolve().parent
WORKLOAD = ["data=mnist", "model.hidden=[256,256]", "model.activation=relu", "model.init=he",
            "optimizer=adam", "lr=0.001", "batch_size=128", "epochs=1", "dtype=float32",
            "progress=false"]

BARE = """
import sys, time
from nnexp.core import MLP, Adam, fit
from nnexp.data import load
seeds = [int(s) for s in sys.argv[1].split(",")]
data = load("mnist", root=sys.argv[2], dtype="float32", download=False, scaling="minmax",
             val_fraction=0.1)
for seed in seeds:
    net = MLP([784, 256, 256, 10], activation="relu", output="softmax", loss="cross_entropy",
              init="he", dtype="float32", seed=seed)
    fit(net, Adam(lr=1e-3), data.train, val=data.val, epochs=1, batch_size=128, seed=seed)
"""

LAUNCHERS = {
    "basic": [],
    "pool": ["hydra/launcher=pool", "hydra.launcher.n_jobs=2"],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "ray_cluster": ["hydra/launcher=ray_cluster"],
    "ray": ["hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false"],
    "submitit_local": ["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=1",
                       "hydra.launcher.timeout_min=30"],
}
PARALLEL = ("pool", "joblib", "ray_cluster", "ray", "submitit_local")


def seeds(values) -> str:
    return ",".join(str(v) for v in values)


def children_cpu() -> float:
    """User + system CPU seconds of this process's waited-for descendants so far: a variant's
    difference is the CPU its process tree used (a sweep's workers and model helper are waited
    for; the processes of a running Ray cluster are not its descendants and are not counted)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run(command: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """Wall seconds and CPU seconds (:func:`children_cpu`) of ``command``."""
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"sweep_ceiling: {' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return time.perf_counter() - start, children_cpu() - cpu


def bare_pair(cwd: Path, env: dict, root: str) -> tuple[float, float]:
    """Wall and CPU seconds of the 8 bare fits as 4 + 4 in two processes at once."""
    one = pinned_env(1, env)
    start, cpu = time.perf_counter(), children_cpu()
    processes = [subprocess.Popen([PY, "-c", BARE, seeds(half), root], cwd=cwd, env=one)
                 for half in (range(0, 4), range(4, 8))]
    if any(p.wait(timeout=1800) for p in processes):
        raise SystemExit("sweep_ceiling: a bare process failed")
    return time.perf_counter() - start, children_cpu() - cpu


@contextlib.contextmanager
def local_ray_cluster(env: dict, scratch: Path):
    """A one-node Ray cluster with 2 CPUs on 127.0.0.1 at a free port, with token authentication
    of its own (nothing read from or written to ~/.ray); yields the environment that reaches it
    once it is running: its port answers and an empty driver (``ray.init``, ``ray.shutdown``)
    has connected. The first driver of a new cluster waits for the cluster to finish starting
    (2.5-3.7 s here, against 0.34-0.38 s for the next ones), which is the cluster's start-up, not
    a sweep's. ``ray start --block`` keeps the node's processes under one process group, stopped
    by its id. Ray 2.60 listens on every interface (see README "Ray cluster"); the token guards it."""
    import secrets
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    temp = Path(tempfile.mkdtemp(prefix="nnexp-ray-", dir="/tmp"))   # short: Ray's socket paths
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    ray = str(Path(PY).parent / "ray")
    node = subprocess.Popen([ray, "start", "--block", "--disable-usage-stats", "--head", "--node-ip-address=127.0.0.1",
                             f"--port={port}", "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}"],
                            cwd=scratch, env={**env, **auth}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if node.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("sweep_ceiling: the local Ray cluster did not start")
            time.sleep(0.2)
        reach = {**env, **auth, "RAY_ADDRESS": f"127.0.0.1:{port}"}
        subprocess.run([PY, "-c", "import ray; ray.init(logging_level='ERROR'); ray.shutdown()"],
                       env=reach, check=True, capture_output=True, timeout=120)
        yield reach
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        shutil.rmtree(temp, ignore_errors=True)


def job_breakdown(db: Path) -> dict[str, float]:
    """Mean seconds per child of the sweep in ``db``: from its start to its end, and the
    training epochs' own ``epoch_seconds``."""
    import sqlite3

    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "select r.start_time, r.end_time, (select sum(m.value) from metrics m where "
            "m.run_uuid = r.run_uuid and m.key = 'epoch_seconds') from runs r where exists "
            "(select 1 from tags t where t.run_uuid = r.run_uuid and t.key = 'mlflow.parentRunId')"
        ).fetchall()
    spans = [(end - start) / 1000 for start, end, _ in rows if end]
    training = [float(t) for *_, t in rows if t is not None]
    return {"children": len(rows), "run": statistics.mean(spans) if spans else float("nan"),
            "training": statistics.mean(training) if training else float("nan")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launchers", default=",".join(LAUNCHERS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    parser.add_argument("--data-root", default=os.environ.get("NNEXP_DATA_DIR", "/work/shared/data"))
    args = parser.parse_args(argv)
    launchers = [name for name in args.launchers.split(",") if name]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(NNEXP_DATA_DIR=args.data_root, MLFLOW_DISABLE_TELEMETRY="true")
    # the memory setting `python -m nnexp` chooses for itself, for every variant alike
    from nnexp.memory_pages import avoid_compaction_stalls

    avoid_compaction_stalls(env)

    variants: dict[str, object] = {"bare, 1 process": None, "bare, 2 processes": None}
    variants.update({f"nnexp {name}": name for name in launchers})
    if args.torch:
        variants["torch + mlflow (basic)"] = "torch"
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    breakdown = None
    with tempfile.TemporaryDirectory(prefix="nnexp-sweep-ceiling-") as tmp:
        scratch = Path(tmp)
        template = scratch / "template"
        template.mkdir()
        run([PY, "-m", "nnexp", "epochs=1", "progress=false", "tracking.log_model=false"], template, env)
        for repeat in range(args.repeats):
            for index, name in enumerate(variants):
                folder = scratch / f"{repeat}-{index}"
                folder.mkdir()
                if name == "bare, 1 process":
                    seconds, cpu_seconds = run([PY, "-c", BARE, seeds(range(JOBS)), args.data_root], folder,
                                               env)
                elif name == "bare, 2 processes":
                    seconds, cpu_seconds = bare_pair(folder, env, args.data_root)
                elif name.startswith("torch"):
                    shutil.copy(template / "mlflow.db", folder / "mlflow.db")
                    seconds, cpu_seconds = run([PY, str(BENCH / "torch_sweep_app.py"), "-m",
                                                f"seed={seeds(range(JOBS))}", f"data_root={args.data_root}",
                                                f"tracking_uri=sqlite:///{folder / 'mlflow.db'}"], folder, env)
                else:
                    shutil.copy(template / "mlflow.db", folder / "mlflow.db")
                    command = [PY, "-m", "nnexp", "-m", f"seed={seeds(range(JOBS))}", *WORKLOAD,
                               *LAUNCHERS[variants[name]]]
                    if variants[name] == "ray_cluster":
                        # started before the timing and stopped after it: an idle Ray node's own
                        # processes would slow every other variant
                        with local_ray_cluster(env, scratch) as cluster_env:
                            seconds, cpu_seconds = run(command, folder, cluster_env)
                    else:
                        seconds, cpu_seconds = run(command, folder, env)
                    if variants[name] == "basic":
                        breakdown = job_breakdown(folder / "mlflow.db")
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
                print(f"  repeat {repeat + 1}/{args.repeats} {name}: {seconds:.1f} s", file=sys.stderr,
                      flush=True)

    med = {name: statistics.median(times) for name, times in wall.items()}
    serial, pair = med["bare, 1 process"], med["bare, 2 processes"]
    ceiling = serial / pair
    rows = []
    basic = med.get("nnexp basic")
    for name in variants:
        speedup = serial / med[name]
        # issue 13's measure: the launcher's speed-up over the serial sweep, against the ceiling
        parallel = any(name.endswith(p) for p in PARALLEL)
        share = f"{100 * basic / med[name] / ceiling:.0f}%" if parallel and basic else ""
        over = (med[name] - (pair if parallel else serial)) / JOBS if name.startswith("nnexp") else None
        rows.append([name, f"{med[name]:.1f}", f"{statistics.median(cpu[name]):.1f}", f"{speedup:.2f}x", share,
                     f"{over:.2f}" if over is not None else "",
                     " ".join(f"{t:.1f}" for t in wall[name])])
    print(f"{JOBS} jobs of one MNIST epoch (784-256-256-10 ReLU, Adam, batch 128, float32); median "
          f"of {args.repeats} alternating repeats; load average at the end {load_average()[0]:.1f} "
          f"on {os.cpu_count()} CPUs; ceiling (bare 1 process / bare 2 processes) {ceiling:.2f}x\n")
    print(markdown_table(["variant", "wall s", "CPU s (process tree)", "speed-up over bare 1 process",
                          "speed-up over nnexp basic / ceiling",
                          "overhead s/job (vs the bare fits)", "every repeat"], rows, "lrrrrrl"))
    if breakdown:
        job = breakdown["run"]
        print(f"\nSerial nnexp sweep, per job (from the store, last repeat, {breakdown['children']} "
              f"children): {job:.2f} s from the child run's start to its end, of which "
              f"{breakdown['training']:.2f} s training epochs (epoch_seconds) and "
              f"{job - breakdown['training']:.2f} s evaluation, figures, weights and records; "
              f"{(med['nnexp basic'] - JOBS * job) / JOBS:.2f} s per job outside the child runs "
              f"(start-up, Hydra's per-job composition and the data, the summary).")
    checks = []
    if "nnexp basic" in med:
        checks.append(("serial sweep within 1.25x of the bare fits", med["nnexp basic"] / serial, 1.25, "<="))
    for name, minimum in (("pool", 0.90), ("joblib", 0.90), ("ray_cluster", 0.80)):
        if f"nnexp {name}" in med and basic:
            checks.append((f"{name}: speed-up over the serial sweep at least {minimum:.0%} of the ceiling",
                           basic / med[f"nnexp {name}"] / ceiling, minimum, ">="))
    for name in ("pool", "joblib"):
        if f"nnexp {name}" in med:
            checks.append((f"{name}: within 1.25x of the bare pair", med[f"nnexp {name}"] / pair, 1.25, "<="))
    if "torch + mlflow (basic)" in med and "nnexp basic" in med:
        checks.append(("torch + mlflow sweep at least 1.5x the nnexp sweep's time",
                       med["torch + mlflow (basic)"] / med["nnexp basic"], 1.5, ">="))
    print("\n" + markdown_table(
        ["target", "measured", "verdict"],
        [[what, f"{value:.2f}", verdict(value <= bound if op == "<=" else value >= bound)]
         for what, value, bound, op in checks], "lrl"))


if __name__ == "__main__":
    main()
