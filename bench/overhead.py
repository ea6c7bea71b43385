"""Start-up, per-run and sweep costs of ``python -m nnexp``: everything that is not training.

    python bench/overhead.py                          # ~6 min: all sections
    python bench/overhead.py --quick                  # one repeat, no sweeps
    python bench/overhead.py --skip-sweeps --repeats 5

Every measurement runs ``python`` in a subprocess, in a temporary working directory, with
``MLFLOW_TRACKING_URI`` pointing at a SQLite store in it and ``hydra.run.dir`` /
``hydra.sweep.dir`` inside it, so nothing lands in the project tree. MNIST comes from
``--data-root`` (default /work/shared/data, else $NNEXP_DATA_DIR) through ``data.root``; a
private ``NNEXP_CACHE_DIR`` is warmed first, except for the cold load.

Sections:

1. start-up: ``python -c pass`` and the imports (numpy, nnexp.core, hydra, mlflow, ...), and
   ``python -m nnexp --help``; which entry points load MLflow (it should be imported only
   where a run talks to the store).
2. a short run end to end (``epochs=1``, with and without the logged model), on the default
   data set and on MNIST from a warm cache.
3. the same MNIST run, instrumented: this script re-executes itself as
   ``overhead.py --instrumented -- <overrides>``, wraps the functions ``nnexp.app.run`` calls
   (data load, build, store, run start, params, fit, metrics, artifacts, end) with timers and
   then calls ``nnexp.__main__.main()`` -- the real code path, measured from outside -- and
   splits the wall time into interpreter start, Hydra, each stage, training and exit.
4. MNIST load, cold (empty cache: parse the IDX files) and warm (memory-mapped cache).
5. the tracking store: creating a new SQLite store (schema migrations) and opening one.
6. two 12-job sweeps (4 optimizers x 3 learning rates): tiny jobs (20 epochs of the default
   data) and short jobs (one MNIST epoch), each with the basic launcher and with
   ``hydra/launcher=joblib hydra.launcher.n_jobs=2``, alternating, ``--sweep-repeats`` times,
   each on a copy of a ready store; and the machine's own ceiling for two parallel jobs: one
   ``fit`` alone, then two copies at once (no Hydra, no tracking).

Results: markdown tables, the targets of issue 7 with PASS/MISS, JSON under bench/results/.
"""

from __future__ import annotations

import time

_T_START = time.time()   # first thing: the instrumented child measures interpreter start-up

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (  # noqa: E402
    describe_machine, load_average, machine, markdown_table, median, run_timed, verdict,
    wait_until_quiet, write_json,
)

PY = sys.executable
SWEEP = ["-m", "optimizer=sgd,momentum,rmsprop,adam", "lr=0.1,0.01,0.001", "epochs=20",
         "tracking.log_model=false"]
# Two sizes of "short run": 20 epochs of the 569-sample default set (about 0.15 s of nnexp a
# job: Hydra's own 0.1 s a job, serial in the parent, is a large part), and one MNIST epoch
# (about 0.6 s a job).
SWEEPS = {"tiny jobs: default data, 20 epochs": SWEEP,
          "short jobs: MNIST, 1 epoch": [*SWEEP[:3], "data=mnist", "data.download=false", "epochs=1",
                                         "tracking.log_model=false"]}
NON_TRAINING_LIMIT = 1.5     # seconds, issue 7
WARM_LOAD_LIMIT = 0.5        # seconds
SWEEP_SPEEDUP = 1.6
STAGES_ENV, T0_ENV = "BENCH_STAGES_OUT", "BENCH_T0"

IMPORTS = [("python -c pass", "pass"), ("import numpy", "import numpy"),
           ("import nnexp.core", "import nnexp.core"), ("import nnexp.data", "import nnexp.data"),
           ("import hydra", "import hydra"), ("import nnexp.cli (Hydra app)", "import nnexp.cli"),
           ("import mlflow", "import mlflow"), ("import matplotlib.pyplot",
                                                 "import matplotlib.pyplot")]
# entry points that must not load MLflow: a check of "import mlflow only where needed"
NO_MLFLOW = ["nnexp", "nnexp.core", "nnexp.data", "nnexp.cli", "nnexp.app", "nnexp.build"]


# =========================================================================== instrumented child

class Stages:
    """Wraps functions with timers; records inclusive seconds per label and the nesting."""

    def __init__(self):
        self.records: list[dict] = []     # label, depth, start, seconds (in call order)
        self.stack: list[str] = []
        self.missing: list[str] = []

    def wrap(self, owner, attr: str, label: str) -> None:
        real = getattr(owner, attr, None)
        if real is None:
            self.missing.append(label)    # the app changed: say so instead of failing
            return
        is_classmethod = isinstance(owner, type) and isinstance(vars(owner).get(attr), classmethod)
        func = real.__func__ if is_classmethod else real
        stages = self

        def timed(*args, **kwargs):
            record = {"label": label, "depth": len(stages.stack), "start": time.time()}
            stages.records.append(record)
            stages.stack.append(label)
            t0 = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                record["seconds"] = time.perf_counter() - t0
                stages.stack.pop()

        setattr(owner, attr, classmethod(timed) if is_classmethod else timed)

    def time_import(self, module: str, label: str) -> None:
        t0, start = time.perf_counter(), time.time()
        __import__(module)
        self.records.append({"label": label, "depth": len(self.stack), "start": start,
                             "seconds": time.perf_counter() - t0})


def instrument(stages: Stages) -> None:
    """Wrap what ``nnexp.app.run`` calls. Importing the modules here moves their import time
    into the "nnexp modules" stage (it would otherwise fall inside Hydra or run())."""
    stages.time_import("nnexp.cli", "import nnexp.cli (Hydra)")
    t0 = time.perf_counter()
    import nnexp.app as app
    import nnexp.build as build
    import nnexp.core as core
    import nnexp.plots as plots
    import nnexp.tracking.model as model
    from nnexp.tracking.run import TrackedRun
    stages.records.append({"label": "import nnexp app modules (numpy, core, data...)", "depth": 0,
                           "start": time.time(), "seconds": time.perf_counter() - t0})

    for owner, attr, label in [
            (app, "run", "app.run"), (app, "validate", "validate config"),
            (app, "load_data", "load data"), (build, "build_model", "build model"),
            (build, "build_optimizer", "build optimizer"),
            (app, "open_experiment", "open tracking store"), (app, "config_hash", "config hash"),
            (app, "_git_commit", "git commit tag"), (TrackedRun, "start", "MLflow run start"),
            (TrackedRun, "log_params", "log params"), (core, "fit", "fit"),
            (TrackedRun, "log_epoch", "log epoch metrics (in fit)"),
            (app, "final_metrics", "test metrics"), (TrackedRun, "log_metrics", "queue metrics"),
            (TrackedRun, "set_tags", "set tags"), (app, "_log_artifacts", "artifacts"),
            (plots, "learning_curves", "learning-curve plot"),
            (TrackedRun, "log_artifacts", "upload artifacts"),
            (model, "save_pyfunc", "build pyfunc model"), (TrackedRun, "end", "MLflow run end")]:
        stages.wrap(owner, attr, label)


def watch_gc() -> dict:
    """Collect the pauses of Python's cyclic garbage collector while the run goes on: with
    MLflow loaded, a full (generation 2) collection walks hundreds of thousands of objects."""
    import gc

    pauses = {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    started = [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses["count"][info["generation"]] += 1
            pauses["seconds"][info["generation"]] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    return pauses


def run_instrumented(overrides: list[str]) -> None:
    """Child mode: run ``python -m nnexp <overrides>`` with timers; write them to $BENCH_STAGES_OUT."""
    import atexit

    stages = Stages()
    out = Path(os.environ[STAGES_ENV])
    t0 = float(os.environ.get(T0_ENV, _T_START))
    marks = {"interpreter_start": _T_START - t0}

    def save():
        marks["atexit"] = time.time() - t0
        marks["mlflow_imported"] = "mlflow" in sys.modules
        out.write_text(json.dumps({"marks": marks, "records": [
            {**r, "start": r["start"] - t0} for r in stages.records], "missing": stages.missing}))

    atexit.register(save)    # registered first, so it runs last of the atexit handlers
    marks["gc"] = watch_gc()
    instrument(stages)
    marks["main_start"] = time.time() - t0
    sys.argv = ["nnexp", *overrides]
    from nnexp.__main__ import main

    try:
        main()
    finally:
        marks["main_end"] = time.time() - t0


def breakdown(stages_file: Path, wall: float) -> tuple[list[list], dict]:
    """Rows (stage, seconds) of an instrumented run and the totals: training, the rest."""
    data = json.loads(stages_file.read_text())
    marks, records = data["marks"], data["records"]
    run = next((r for r in records if r["label"] == "app.run"), None)
    rows = [["interpreter start", marks["interpreter_start"]]]
    rows += [[r["label"], r["seconds"]] for r in records
             if r["depth"] == 0 and r["label"] != "app.run" and r["start"] < marks["main_start"]]
    if run:
        rows.append(["Hydra: parse, compose, run dir, logging", run["start"] - marks["main_start"]])
        for r in records:
            if r["start"] >= run["start"] and r["depth"] >= 1 and r is not run:
                rows.append([("  " * (r["depth"] - 1)) + r["label"], r["seconds"]])
        rows.append(["Hydra/app after the run (summary line, teardown)",
                     marks["main_end"] - run["start"] - run["seconds"]])
    rows.append(["interpreter exit (final garbage collection, module teardown)",
                 wall - marks["atexit"]])
    gc_pauses = marks.get("gc", {"count": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]})
    rows.append([f"(inside the stages above: {gc_pauses['count'][2]} full garbage collections)",
                 gc_pauses["seconds"][2]])
    fit = sum(r["seconds"] for r in records if r["label"] == "fit")
    logged = sum(r["seconds"] for r in records if r["label"] == "log epoch metrics (in fit)")
    training = fit - logged
    totals = {"wall": wall, "training": training, "non_training": wall - training,
              "missing": data["missing"], "gc": gc_pauses,
              "mlflow_imported": marks.get("mlflow_imported"),
              "stages": {label: s for label, s in rows}}
    return rows, totals


# =========================================================================== parent side

class Sandbox:
    """A temporary working directory with its own tracking store, cache and Hydra folders."""

    def __init__(self, data_root: str):
        self.dir = Path(tempfile.mkdtemp(prefix="nnexp-bench-"))
        self.cache = self.dir / "cache"
        self.data_root = data_root
        self.template = None   # a migrated store, copied for each measurement that needs one

    def uri(self, name: str) -> str:
        return f"sqlite:///{self.dir / name / 'mlflow.db'}"

    def env(self, store: str = "mlruns", cache: Path | None = None, **extra) -> dict:
        env = dict(os.environ)
        env.update(MLFLOW_TRACKING_URI=self.uri(store), NNEXP_CACHE_DIR=str(cache or self.cache),
                   NNEXP_DATA_DIR=self.data_root, **extra)
        env.pop("NNEXP_DEBUG", None)
        return env

    def fresh_store(self, name: str) -> str:
        """A copy of the template store under ``name``: a realistic, already-migrated store."""
        target = self.dir / name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.template, target / "mlflow.db")
        return name

    def hydra_dirs(self, tag: str) -> list[str]:
        return [f"hydra.run.dir={self.dir / 'outputs' / tag}",
                f"hydra.sweep.dir={self.dir / 'multirun' / tag}"]

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def nnexp_cmd(*overrides: str) -> list[str]:
    return [PY, "-m", "nnexp", *overrides]


def repeat(cmd, n: int, **kwargs) -> dict:
    """Median wall time of ``n`` runs of ``cmd``; the failures' last lines if any."""
    runs = [run_timed(cmd, **kwargs) for _ in range(n)]
    failed = [r for r in runs if r.returncode != 0]
    return {"seconds": median(r.seconds for r in runs), "runs": [round(r.seconds, 3) for r in runs],
            "other_cores": round(median(r.other_cores for r in runs), 2),
            "error": failed[0].tail() if failed else None}


def measure_startup(box: Sandbox, n: int) -> dict:
    out = {label: repeat([PY, "-c", code], n, env=box.env()) for label, code in IMPORTS}
    out["python -m nnexp --help"] = repeat(nnexp_cmd("--help"), n, env=box.env(), cwd=box.dir)
    probe = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
             "print('mlflow' in sys.modules)")
    loads = {m: run_timed([PY, "-c", probe, m], env=box.env()).stdout.strip() == "True"
             for m in NO_MLFLOW}
    help_run = run_timed([PY, "-X", "importtime", "-m", "nnexp", "--help"], env=box.env(), cwd=box.dir)
    loads["python -m nnexp --help"] = any(line.split("|")[-1].strip() == "mlflow"
                                          for line in help_run.stderr.splitlines())
    return {"times": out, "mlflow_loaded_by": loads}


def measure_store(box: Sandbox, n: int) -> dict:
    """Creating a store (migrations) once, then opening the existing one; keeps the template."""
    code = ("import sys; from nnexp.tracking import open_store; "
            "open_store(sys.argv[1], 'bench')")
    created = run_timed([PY, "-c", code, box.uri("template")], env=box.env())
    if created.returncode != 0:
        raise RuntimeError(f"cannot create a tracking store: {created.tail()}")
    box.template = box.dir / "template" / "mlflow.db"
    opened = repeat([PY, "-c", code, box.uri("template")], n, env=box.env())
    imported = repeat([PY, "-c", "from mlflow.tracking import MlflowClient"], n, env=box.env())
    return {"create (migrations), incl. start-up": created.seconds,
            "open existing, incl. start-up": opened["seconds"],
            "python + import mlflow.tracking": imported["seconds"]}


def measure_mnist_load(box: Sandbox, n: int) -> dict:
    """Cold (new cache) and warm loads, timed inside a child: import and load apart."""
    code = ("import json, sys, time; t0 = time.perf_counter(); from nnexp.data import load; "
            "t1 = time.perf_counter(); load('mnist', root=sys.argv[1], dtype=sys.argv[2], seed=0, "
            "scaling='minmax', val_fraction=0.1, download=False); t2 = time.perf_counter(); "
            "print(json.dumps({'import': t1 - t0, 'load': t2 - t1}))")
    out = {}
    for dtype in ("float64", "float32"):
        cold_cache = box.dir / f"cold-cache-{dtype}"
        cold = run_timed([PY, "-c", code, box.data_root, dtype], env=box.env(cache=cold_cache))
        warm = [run_timed([PY, "-c", code, box.data_root, dtype], env=box.env(cache=cold_cache))
                for _ in range(n)]
        if cold.returncode or any(w.returncode for w in warm):
            out[dtype] = {"error": (cold if cold.returncode else warm[0]).tail()}
            continue
        warm_loads = [json.loads(w.stdout)["load"] for w in warm]
        out[dtype] = {"cold": json.loads(cold.stdout)["load"], "warm": median(warm_loads),
                      "warm_runs": [round(v, 3) for v in warm_loads],
                      "import nnexp.data": json.loads(cold.stdout)["import"]}
    return out


MNIST_RUN = ["data=mnist", "data.download=false", "epochs=1", "progress=false"]


def measure_runs(box: Sandbox, n: int) -> dict:
    """End-to-end wall times of short runs (the cache is warmed by the first MNIST run)."""
    out = {}
    for label, overrides in [
            ("default data, epochs=1, no model", ["epochs=1", "tracking.log_model=false"]),
            ("default data, epochs=1, with model", ["epochs=1"]),
            ("MNIST (warm), epochs=1, no model", [*MNIST_RUN, "tracking.log_model=false"]),
            ("MNIST (warm), epochs=1, with model", MNIST_RUN)]:
        store = box.fresh_store("runs")
        run_timed(nnexp_cmd(*overrides, *box.hydra_dirs("warm")), env=box.env(store), cwd=box.dir)
        out[label] = repeat(nnexp_cmd(*overrides, *box.hydra_dirs(label.split()[0])), n,
                            env=box.env(store), cwd=box.dir)
    return out


def measure_breakdown(box: Sandbox, log_model: bool, repeats: int) -> tuple[list[list], dict]:
    """Instrumented MNIST runs (warm cache, existing store with the experiment): the one with
    the median non-training time, and every run's non-training time."""
    store = box.fresh_store("breakdown")
    overrides = [*MNIST_RUN, f"tracking.log_model={str(log_model).lower()}", *box.hydra_dirs("breakdown")]
    run_timed(nnexp_cmd(*overrides), env=box.env(store), cwd=box.dir)   # makes the experiment
    measured = []
    for attempt in range(repeats):
        stages_file = box.dir / f"stages-{log_model}-{attempt}.json"
        env = box.env(store, **{STAGES_ENV: str(stages_file)})
        env[T0_ENV] = repr(time.time())    # the child's clock origin: just before it is forked
        result = run_timed([PY, str(Path(__file__).resolve()), "--instrumented", "--", *overrides],
                           env=env, cwd=box.dir)
        if result.returncode != 0:
            raise RuntimeError(f"instrumented run failed: {result.tail()}")
        measured.append(breakdown(stages_file, result.seconds))
    measured.sort(key=lambda m: m[1]["non_training"])
    rows, totals = measured[len(measured) // 2]
    totals["non_training_runs"] = [round(m[1]["non_training"], 3) for m in measured]
    return rows, totals


def sweep_counts(db: Path) -> dict:
    """Runs per status in a store, read with sqlite3 (no MLflow import in this process)."""
    try:
        with sqlite3.connect(db) as connection:
            return dict(connection.execute("select status, count(*) from runs group by status"))
    except sqlite3.Error as error:
        return {"error": str(error)}


def measure_sweeps(box: Sandbox, repeats: int) -> dict:
    """Each sweep of :data:`SWEEPS` serially and on 2 joblib workers, alternating, ``repeats``
    times, each on a fresh copy of the ready store (with the experiment made by a warm-up run);
    the speed-up is of the median wall times."""
    launchers = {"serial (basic launcher)": [],
                 "joblib, n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]}
    out = {}
    for name, sweep in SWEEPS.items():
        results = {label: [] for label in launchers}
        for attempt in range(repeats):
            for label, extra in launchers.items():
                tag = f"sweep-{len(out)}-{attempt}-{len(results[label])}-{extra and 'joblib' or 'basic'}"
                store = box.fresh_store(tag)
                single = [o for o in sweep if o != "-m" and "," not in o and not o.startswith("epochs=")]
                run_timed(nnexp_cmd(*single, "epochs=1", "progress=false", *box.hydra_dirs(tag + "-warm")),
                          env=box.env(store), cwd=box.dir)
                quiet = wait_until_quiet()
                result = run_timed(nnexp_cmd(*sweep, *extra, "progress=false", *box.hydra_dirs(tag)),
                                   env=box.env(store), cwd=box.dir, timeout=1800)
                results[label].append({"seconds": result.seconds, "returncode": result.returncode,
                                       "other_cores_before": round(quiet, 2),
                                       "other_cores": round(result.other_cores, 2),
                                       "runs": sweep_counts(box.dir / store / "mlflow.db"),
                                       "error": result.tail() if result.returncode else None})
        summary = {}
        for label, runs in results.items():
            failed = [r for r in runs if r["returncode"]]
            summary[label] = {"seconds": median(r["seconds"] for r in runs),
                              "runs_s": [round(r["seconds"], 2) for r in runs],
                              "returncode": failed[0]["returncode"] if failed else 0,
                              "runs": runs[-1]["runs"], "other_cores": median(r["other_cores"] for r in runs),
                              "error": failed[0]["error"] if failed else None}
        serial, parallel = (summary[label]["seconds"] for label in launchers)
        ok = all(v["returncode"] == 0 for v in summary.values())
        out[name] = {"command": "python -m nnexp " + " ".join(sweep), "launchers": summary,
                     "speedup": serial / parallel if ok else None}
    return out


TRAIN_ONLY = """
import json, sys, time
from nnexp.core import Adam, MLP, fit
from nnexp.data import load
options = {"root": sys.argv[2], "download": False} if sys.argv[1] == "mnist" else {}
data = load(sys.argv[1], dtype="float64", seed=0, scaling="minmax", val_fraction=0.1, **options)
net = MLP([data.n_inputs, 16, 8, data.n_outputs], dtype="float64", seed=0)
t0 = time.perf_counter()
fit(net, Adam(1e-3), data.train, data.val, epochs=int(sys.argv[3]), batch_size=32)
print(json.dumps({"fit": time.perf_counter() - t0}))
"""


def measure_two_at_once(box: Sandbox, repeats: int) -> dict:
    """The machine's own ceiling for 2 parallel jobs: the same ``fit`` (16-8 ReLU, Adam, batch
    32, no Hydra, no tracking) alone, then two copies started together; the speed-up two
    workers could give is 2 x alone / together. MNIST (a 340 MB float64 training set) and
    the default data (569 samples: NumPy call overhead only)."""
    out = {}
    for name, epochs in (("mnist", 3), ("breast_cancer", 200)):
        cmd = [PY, "-c", TRAIN_ONLY, name, box.data_root, str(epochs)]
        env = box.env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        alone, together = [], []
        for _ in range(repeats):
            wait_until_quiet()
            alone.append(json.loads(run_timed(cmd, env=env).stdout)["fit"])
            procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
            together.append(max(json.loads(p.communicate()[0])["fit"] for p in procs))
        a, t = median(alone), median(together)
        out[name] = {"epochs": epochs, "alone": a, "together": t, "ceiling": 2 * a / t}
    return out


# --------------------------------------------------------------------------- the report

def _s(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"


def report(res: dict) -> tuple[str, list[dict]]:
    parts, verdicts = [], []
    st = res["startup"]
    rows = [[label, _s(v["seconds"]), "error: " + v["error"] if v["error"] else ""]
            for label, v in st["times"].items()]
    parts.append("### Start-up (median wall time of a fresh process)\n\n"
                 + markdown_table(["command", "wall", ""], rows, "lrl"))
    rows = [[entry, "yes" if loaded else "no"] for entry, loaded in st["mlflow_loaded_by"].items()]
    parts.append("Loads MLflow:\n\n" + markdown_table(["entry point", "imports mlflow"], rows))
    if "store" in res:
        rows = [[k, _s(v)] for k, v in res["store"].items()]
        parts.append("### Tracking store (SQLite)\n\n" + markdown_table(["step", "wall"], rows, "lr"))
    if "runs" in res:
        rows = [[label, _s(v["seconds"]), ", ".join(f"{s:.2f}" for s in v["runs"]),
                 "error: " + v["error"] if v["error"] else ""] for label, v in res["runs"].items()]
        parts.append("### Short runs, end to end (`python -m nnexp ...`)\n\n"
                     + markdown_table(["run", "median wall", "runs (s)", ""], rows, "lrrl"))
    for key, title in (("breakdown", "without the model"), ("breakdown_model", "with the model")):
        if key in res:
            rows, totals = res[key]
            table_rows = [[label, f"{s:.3f}"] for label, s in rows]
            table_rows += [["**total wall**", f"{totals['wall']:.3f}"],
                           ["**training (fit less its metric logging)**", f"{totals['training']:.3f}"],
                           ["**everything else**", f"{totals['non_training']:.3f}"],
                           ["(everything else, each run)", ", ".join(f"{x:.3f}" for x in totals["non_training_runs"])]]
            note = f" (stages not found in nnexp.app: {totals['missing']})" if totals["missing"] else ""
            note += "; MLflow {}imported by the run".format("" if totals.get("mlflow_imported") else "not ")
            parts.append(f"### Where a run's time goes: MNIST, epochs=1, warm cache, {title}{note} "
                         f"(the run with the median of {len(totals['non_training_runs'])})\n\n"
                         + markdown_table(["stage", "seconds"], table_rows, "lr"))
    if "mnist" in res:
        rows = [[dtype, _s(v.get("cold")), _s(v.get("warm")), _s(v.get("import nnexp.data")),
                 v.get("error", "")] for dtype, v in res["mnist"].items()]
        parts.append("### MNIST load (in-process, train/val/test, minmax, val_fraction=0.1)\n\n"
                     + markdown_table(["dtype", "cold", "warm", "import nnexp.data", ""], rows, "lrrrl"))
    if "sweeps" in res:
        for name, sw in res["sweeps"].items():
            speedup = "n/a" if sw["speedup"] is None else f"{sw['speedup']:.2f}x"
            rows = [[label, _s(v["seconds"]), ", ".join(f"{x:.2f}" for x in v["runs_s"]), v["returncode"],
                     v["runs"], v["other_cores"], (v["error"] or "").replace("\n", " ")[:120]]
                    for label, v in sw["launchers"].items()]
            parts.append(f"### 12-job sweep, {name} (`{sw['command']}`)\n\n"
                         + markdown_table(["launcher", "median wall", "runs (s)", "exit", "runs by status",
                                           "other cores", "error"], rows, "lrrrlrl")
                         + f"\n\nSpeed-up of 2 joblib workers over serial: {speedup}")

    def target(what, value, passed, shown):
        verdicts.append({"target": what, "value": value, "passed": passed})
        return [what, shown, verdict(passed)]

    rows = []
    if "breakdown" in res:
        other = res["breakdown"][1]["non_training"]
        rows.append(target(f"non-training part of a run < {NON_TRAINING_LIMIT} s (MNIST, warm, "
                           f"no model)", other, other < NON_TRAINING_LIMIT, _s(other)))
    if "breakdown_model" in res:
        other = res["breakdown_model"][1]["non_training"]
        rows.append(target("... the same with the model logged (reported)", other,
                           other < NON_TRAINING_LIMIT, _s(other)))
    leaks = [k for k, v in st["mlflow_loaded_by"].items() if v]
    rows.append(target("`import mlflow` only where needed", leaks, not leaks,
                       "loaded by " + ", ".join(leaks) if leaks else "not loaded by start-up paths"))
    if "mnist" in res:
        warm = res["mnist"].get("float64", {}).get("warm")
        rows.append(target(f"warm MNIST load < {WARM_LOAD_LIMIT} s (float64)", warm,
                           None if warm is None else warm < WARM_LOAD_LIMIT, _s(warm)))
    if "sweeps" in res:
        for name, sw in res["sweeps"].items():
            sp = sw["speedup"]
            rows.append(target(f"12-job sweep ({name}), 2 joblib workers >= {SWEEP_SPEEDUP}x serial", sp,
                               None if sp is None else sp >= SWEEP_SPEEDUP,
                               "n/a" if sp is None else f"{sp:.2f}x"))
    if "two_at_once" in res:
        ceiling = [[name, v["epochs"], _s(v["alone"]), _s(v["together"]), f"{v['ceiling']:.2f}x"]
                   for name, v in res["two_at_once"].items()]
        parts.append("### Two trainings at once (the machine's ceiling for 2 workers)\n\n"
                     + markdown_table(["data", "epochs", "fit alone", "each, two at once",
                                       "2 x alone / together"], ceiling, "lrrrr"))
    parts.append("### Targets\n\n" + markdown_table(["target", "measured", "verdict"], rows, "lrl"))
    return "\n\n".join(parts), verdicts


# --------------------------------------------------------------------------- main

def default_data_root() -> str:
    shared = Path("/work/shared/data")
    return str(shared) if (shared / "mnist").is_dir() else os.environ.get("NNEXP_DATA_DIR", "data")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one repeat of each, no sweeps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-root", default=default_data_root())
    p.add_argument("--skip-sweeps", action="store_true")
    p.add_argument("--sweep-repeats", type=int, default=3, help="runs of each sweep and launcher")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--instrumented", action="store_true", help=argparse.SUPPRESS)  # child mode
    p.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.skip_sweeps = 1, True
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.instrumented:
        run_instrumented(args.overrides)
        return
    started, load_before = time.perf_counter(), load_average()
    box = Sandbox(args.data_root)
    res: dict = {}
    try:
        print("start-up ...", file=sys.stderr)
        res["startup"] = measure_startup(box, args.repeats)
        print("tracking store ...", file=sys.stderr)
        res["store"] = measure_store(box, args.repeats)
        print("MNIST load ...", file=sys.stderr)
        res["mnist"] = measure_mnist_load(box, args.repeats)
        print("short runs ...", file=sys.stderr)
        res["runs"] = measure_runs(box, args.repeats)
        print("instrumented runs ...", file=sys.stderr)
        res["breakdown"] = measure_breakdown(box, log_model=False, repeats=args.repeats)
        res["breakdown_model"] = measure_breakdown(box, log_model=True, repeats=args.repeats)
        if not args.skip_sweeps:
            print("sweeps ...", file=sys.stderr)
            res["sweeps"] = measure_sweeps(box, args.sweep_repeats)
            print("two trainings at once ...", file=sys.stderr)
            res["two_at_once"] = measure_two_at_once(box, args.repeats)
    finally:
        if args.keep:
            print(f"kept {box.dir}", file=sys.stderr)
        else:
            box.cleanup()
    info = machine()
    text, verdicts = report(res)
    command = "python bench/overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print("\n## Start-up, per-run and sweep costs\n")
    print(f"Machine: {describe_machine(info)}. Load average before/after: {load_before[0]:.2f} / "
          f"{load_average()[0]:.2f}. Command: `{command.strip()}`. Data root: {args.data_root}. "
          f"Wall time {time.perf_counter() - started:.0f} s.\n")
    print(text)
    path = write_json("overhead", {"machine": info, "command": command, "results": res,
                                   "targets": verdicts})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
