"""Training speed of nnexp.core next to PyTorch (CPU) and scikit-learn, on MNIST-shaped data.

    python bench/train_speed.py                  # everything, ~10-15 min on 2 cores
    python bench/train_speed.py --quick          # smoke test: 1 epoch of 10,000 samples
    python bench/train_speed.py --workloads a --threads 1 --frameworks nnexp,torch
    python bench/train_speed.py --mnist-root /work/shared/data     # the real images

What is timed: full training epochs -- shuffle, gather each mini-batch, forward, loss, backward,
optimizer step -- over 60,000 samples of 784 inputs and 10 classes, for the workloads of
``_workloads.py`` ((a) 6 sigmoid layers of 50 at batch 10, (b) 784-256-256-10 ReLU at batch 128,
(c) 784-1024-1024-10 ReLU at batch 512, (d) and (e): (b) with dropout 0.2 and with batch norm;
scikit-learn has neither, its cells are n/a; (f) and (g): (a) and (b) with nnexp's
diagnostics=on statistics, against nnexp's own (a) and (b), torch training the plain network)
x {SGD, Adam} x {float32, float64} x {1 thread, the machine's default}:

- nnexp: ``fit(net, opt, (X, Y), val=None, epochs=1, batch_size=...)``, what users run.
- PyTorch: ``nn.Sequential`` of ``Linear`` + activation, ``CrossEntropyLoss``, a
  ``torch.randperm`` shuffle per epoch and index-gathered batches (no DataLoader: its worker
  and collate machinery would measure something else), ``zero_grad(set_to_none=True)``,
  ``loss.item()`` per batch (nnexp also reads every batch loss); ``optim.SGD`` (default
  implementation) and ``optim.Adam(fused=True)``, falling back to ``foreach=True`` if the
  fused kernel is not available on the CPU (said so in the table).
- scikit-learn: ``MLPClassifier.partial_fit`` (one shuffled pass over the data per call) with
  ``alpha=0`` and, for SGD, ``momentum=0``; it trains in float32 or float64 as given.

Thread pinning: each (framework, thread count) runs in its own worker process whose
environment sets every BLAS/OpenMP thread variable before NumPy or torch is loaded
(``torch.set_num_threads`` too), checked with threadpoolctl. Workers for one thread count are
alive together and the parent asks them for one cell at a time, the frameworks of a cell back
to back, so a change in machine load hits all three alike.

Per cell: a warm-up pass over ``--warmup`` of the data (buffers, BLAS threads, allocator), then
up to ``--epochs`` epochs (fewer once a cell has used ``--budget`` seconds, at least one); the
median is reported. Each epoch also records how many cores other processes kept busy while it
ran; an epoch above ``--max-other`` cores is "disturbed" and is retried (up to ``--retries``
extra epochs), and a cell left with disturbed epochs only is marked with ``~``.

The matrix-multiply peak is measured by the same workers: the best of a few
``np.matmul`` of two 2048 x 2048 matrices (sgemm/dgemm), per dtype and thread count. GFLOP/s
count the exact matmul FLOPs of an epoch (``_workloads.matmul_flops``).

``--rerun-disturbed bench/results/<file>.json`` reruns, for all frameworks, the cells of an
earlier run that had a disturbed framework, and prints the merged table (a shared machine
rarely stays quiet for the whole run).

Results: one markdown table on stdout, the targets of issue 7 with PASS/MISS, and a JSON file
under bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (  # noqa: E402
    CpuSnapshot, describe_machine, load_average, machine, machine_threads, markdown_table,
    median, other_cores, pinned_env, verdict, write_json,
)
from _workloads import (  # noqa: E402
    DIAGNOSTICS_BASE, DTYPES, LEARNING_RATES, N_SAMPLES, OPTIMIZERS, WORKLOADS, matmul_flops,
)

FRAMEWORKS = ("nnexp", "torch", "sklearn")
RESULT_PREFIX = "@@result "     # worker lines carrying a reply; anything else is passed through
PEAK_SIZE = 2048
TORCH_VERSION = "2.13.0"        # the CPU build installed for the benchmark


# =========================================================================== worker side
# Everything below up to the parent side runs inside a pinned worker process.

class _Data:
    """The data set of a worker, made once per dtype: ``X``, integer labels, one-hot ``Y``."""

    def __init__(self, n: int, mnist_root: str | None):
        self.n, self.root, self.cache = n, mnist_root, {}

    def get(self, dtype: str):
        if dtype not in self.cache:
            from _workloads import one_hot, random_mnist, real_mnist

            if self.root:
                X, labels = real_mnist(self.root, dtype)
                X, labels = X[:self.n], labels[:self.n]
            else:
                X, labels = random_mnist(self.n, dtype)
            self.cache[dtype] = (X, labels, one_hot(labels, dtype))
        return self.cache[dtype]


def nnexp_trainer(w, optimizer: str, dtype: str, data: _Data):
    """``epoch(seed, n) -> mean loss``: one ``fit`` epoch over the first ``n`` samples."""
    from _workloads import nnexp_model
    from nnexp.core import fit

    X, _, Y = data.get(dtype)
    net, opt = nnexp_model(w, optimizer, dtype)

    def epoch(seed: int, n: int) -> float:
        on_step = on_epoch = None
        if w.diagnostics:             # what diagnostics=on does: the app's sampling period
            from nnexp.core.diagnostics import recorder_for
            from nnexp.report.run_report import every_for

            from _workloads import diagnostics_section

            every = every_for(diagnostics_section(), n, w.batch_size)
            recorder = recorder_for(net, every=every)
            on_step, on_epoch = recorder.hook, lambda e, m: recorder.epoch_metrics()
        history = fit(net, opt, (X[:n], Y[:n]), val=None, epochs=1, batch_size=w.batch_size,
                      seed=seed, on_step=on_step, on_epoch=on_epoch)
        return history.train_loss[-1]

    return epoch, {"optimizer_impl": type(opt).__name__}


def _torch_optimizer(optimizer: str, params):
    """``optim.SGD``, or ``optim.Adam(fused=True)`` if a fused step works here, else foreach."""
    import torch

    lr = LEARNING_RATES[optimizer]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr), "SGD (default: for-loop)"
    try:
        opt = torch.optim.Adam(params, lr=lr, fused=True)
        for p in params:                # a real step: fused support is checked lazily
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return torch.optim.Adam(params, lr=lr, fused=True), "Adam(fused=True)"
    except (RuntimeError, TypeError) as error:
        print(f"torch: fused Adam unavailable ({error}); using foreach=True", file=sys.stderr)
        return torch.optim.Adam(params, lr=lr, foreach=True), "Adam(foreach=True) [no fused]"


def torch_trainer(w, optimizer: str, dtype: str, data: _Data):
    import torch

    X, labels, _ = data.get(dtype)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels.astype("int64"))
    layers = []
    for k, (d_in, d_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
        hidden = k < len(w.sizes) - 2
        layers.append(torch.nn.Linear(d_in, d_out, bias=not (hidden and w.batch_norm)))
        if hidden:
            if w.batch_norm:
                layers.append(torch.nn.BatchNorm1d(d_out))
            layers.append(torch.nn.Sigmoid() if w.activation == "sigmoid" else torch.nn.ReLU())
            if w.dropout:
                layers.append(torch.nn.Dropout(w.dropout))
    torch.manual_seed(0)
    model = torch.nn.Sequential(*layers).to(getattr(torch, dtype))
    params = list(model.parameters())
    opt, impl = _torch_optimizer(optimizer, params)
    loss_fn, bs = torch.nn.CrossEntropyLoss(), w.batch_size

    def epoch(seed: int, n: int) -> float:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        total = 0.0
        for start in range(0, n, bs):
            rows = order[start:start + bs]
            xb, yb = Xt[rows], yt[rows]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        return total / n

    return epoch, {"optimizer_impl": impl}


def sklearn_trainer(w, optimizer: str, dtype: str, data: _Data):
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    if w.dropout or w.batch_norm:
        raise NotImplementedError("scikit-learn's MLPClassifier has no dropout or batch norm")
    if w.diagnostics:
        raise NotImplementedError("the diagnostics rows compare nnexp with itself and torch")
    X, labels, _ = data.get(dtype)
    clf = MLPClassifier(
        hidden_layer_sizes=w.sizes[1:-1],
        activation={"sigmoid": "logistic", "relu": "relu"}[w.activation],
        solver=optimizer, alpha=0.0, batch_size=w.batch_size,
        learning_rate_init=LEARNING_RATES[optimizer], momentum=0.0, nesterovs_momentum=False,
        shuffle=True, random_state=0)
    classes = np.arange(w.sizes[-1])

    def epoch(seed: int, n: int) -> float:
        clf.partial_fit(X[:n], labels[:n], classes=classes)
        # sklearn keeps whatever float dtype it is given; check that it really did
        if clf.coefs_[0].dtype != X.dtype:
            raise RuntimeError(f"sklearn trained in {clf.coefs_[0].dtype}, not {X.dtype}")
        return clf.loss_

    return epoch, {"optimizer_impl": f"MLPClassifier(solver={optimizer!r})"}


TRAINERS = {"nnexp": nnexp_trainer, "torch": torch_trainer, "sklearn": sklearn_trainer}


def measure_cell(framework: str, request: dict, data: _Data) -> dict:
    """Warm up, then time epochs of one (workload, optimizer, dtype) cell."""
    import math

    w = WORKLOADS[request["workload"]]
    epoch, info = TRAINERS[framework](w, request["optimizer"], request["dtype"], data)
    n = data.n
    epoch(seed=1000, n=max(w.batch_size, int(n * request["warmup"])))
    times, disturbed, losses = [], [], []
    started = time.perf_counter()
    max_epochs = request["epochs"] + request["retries"]
    while len(times) < request["epochs"] and len(times) + len(disturbed) < max_epochs:
        before = CpuSnapshot.take()
        losses.append(epoch(seed=len(losses), n=n))
        after = CpuSnapshot.take()
        seconds, others = after.wall - before.wall, other_cores(before, after)
        (disturbed if others > request["max_other"] else times).append((seconds, others))
        if times and time.perf_counter() - started > request["budget"]:
            break
    clean = bool(times)
    used = times or disturbed
    return {**info, "seconds": median(s for s, _ in used), "epochs": [s for s, _ in used],
            "other_cores": [round(o, 2) for _, o in used], "clean": clean,
            "disturbed_epochs": len(disturbed), "final_loss": losses[-1],
            "finite": all(math.isfinite(v) for v in losses)}


def measure_peak(request: dict) -> dict:
    """sgemm/dgemm GFLOP/s: the best of ``repeats`` undisturbed products of two square
    matrices (up to three times as many tries while other processes compete)."""
    import numpy as np

    size, rng = request["size"], np.random.default_rng(0)
    A = rng.random((size, size)).astype(request["dtype"])
    B = rng.random((size, size)).astype(request["dtype"])
    C = np.empty_like(A)
    np.matmul(A, B, out=C)                       # warm-up: threads, pages
    clean, disturbed = [], []
    while len(clean) < request["repeats"] and len(clean) + len(disturbed) < 3 * request["repeats"]:
        before = CpuSnapshot.take()
        np.matmul(A, B, out=C)
        after = CpuSnapshot.take()
        others = other_cores(before, after)
        (disturbed if others > request["max_other"] else clean).append(after.wall - before.wall)
    best = min(clean or disturbed)
    return {"gflops": 2 * size ** 3 / best / 1e9, "clean": bool(clean)}


def worker_info(framework: str) -> dict:
    """Versions and the thread counts every loaded runtime reports (threadpoolctl)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    info = {"numpy": np.__version__}
    if framework == "torch":
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    elif framework == "sklearn":
        import sklearn
        import sklearn.neural_network  # noqa: F401 - load its runtimes before asking

        info["sklearn"] = sklearn.__version__
    info["threadpools"] = [{"api": p["internal_api"], "lib": Path(p["filepath"]).name,
                            "threads": p["num_threads"]} for p in threadpool_info()]
    return info


def serve(framework: str, threads: int, n: int, mnist_root: str | None) -> None:
    """Worker main loop: one JSON request per stdin line, one reply per request."""
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    data = _Data(n, mnist_root)
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            return
        try:
            if op == "info":
                reply = worker_info(framework)
            elif op == "peak":
                reply = measure_peak(request)
            elif op == "cell":
                reply = measure_cell(framework, request, data)
            elif op == "count":
                from numpy_calls import count_calls

                reply = count_calls(request["workload"], request["optimizer"], request["dtype"])
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as error:  # noqa: BLE001 - reported in the table as n/a
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(RESULT_PREFIX + json.dumps(reply, default=str), flush=True)


# =========================================================================== parent side

class Worker:
    """A pinned worker process for one (framework, thread count), spoken to over pipes."""

    def __init__(self, framework: str, threads: int, args):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", framework,
               "--threads", str(threads), "--samples", str(args.samples)]
        if args.mnist_root:
            cmd += ["--mnist-root", args.mnist_root]
        self.framework, self.threads = framework, threads
        self.proc = subprocess.Popen(cmd, env=pinned_env(threads), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
            sys.stderr.write(f"[{self.framework}/{self.threads}] {line}")
        return {"error": f"worker exited with status {self.proc.wait()}"}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def framework_available(framework: str) -> str | None:
    """None if the framework can be imported here, else why not (checked in a child)."""
    module = {"nnexp": "nnexp.core", "torch": "torch", "sklearn": "sklearn.neural_network"}[framework]
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                           text=True)
    if probe.returncode == 0:
        return None
    hint = f" (pip install torch=={TORCH_VERSION})" if framework == "torch" else ""
    return f"cannot import {module}{hint}"


def check_threads(info: dict, threads: int) -> list[str]:
    """Complaints if any runtime in a worker does not run ``threads`` threads."""
    bad = [f"{p['lib']} ({p['api']}) runs {p['threads']} threads"
           for p in info.get("threadpools", []) if p["threads"] != threads]
    if "torch_threads" in info and info["torch_threads"] != threads:
        bad.append(f"torch runs {info['torch_threads']} threads")
    return bad


def run_thread_count(threads: int, args, cells: list[dict], results: list[dict],
                     log: dict) -> None:
    """Start the workers for ``threads``, measure the peak and ``cells``, stop them. Results
    replace any earlier ones for the same cell and framework (``--rerun-disturbed``)."""
    workers = {fw: Worker(fw, threads, args) for fw in args.frameworks}
    try:
        for fw, worker in workers.items():
            info = worker.ask(op="info")
            log["workers"][f"{fw}/{threads}"] = info
            for complaint in check_threads(info, threads):
                print(f"warning: {fw} worker pinned to {threads}: {complaint}", file=sys.stderr)
        pinning = workers.get("nnexp") or next(iter(workers.values()))
        for dtype in args.dtypes:
            peak = pinning.ask(op="peak", dtype=dtype, size=PEAK_SIZE, repeats=args.peak_repeats,
                               max_other=args.max_other)
            key = f"{dtype}/{threads}"
            if peak.get("gflops", 0) > log["peak"].get(key, {}).get("gflops", 0):
                log["peak"][key] = peak   # the best seen: a rerun never lowers the peak
            print(f"  {'s' if dtype == 'float32' else 'd'}gemm {PEAK_SIZE}, {threads} thread(s): "
                  f"{peak.get('gflops', float('nan')):.1f} GFLOP/s"
                  f"{'' if peak.get('clean') else ' ~disturbed'}", file=sys.stderr)
        for cell in cells:
            for fw, worker in workers.items():
                started = time.perf_counter()
                reply = worker.ask(op="cell", **cell, **args.cell_options)
                results[:] = [r for r in results if (r["framework"], _key(r)) !=
                              (fw, (cell["workload"], cell["optimizer"], cell["dtype"], threads))]
                results.append({"framework": fw, "threads": threads, **cell, **reply,
                                "load_average": load_average()[0]})
                print(f"  {_cell_name(cell)} {threads}t {fw:<7} "
                      f"{_describe(reply)} ({time.perf_counter() - started:.0f} s)",
                      file=sys.stderr)
        if args.count_calls and "nnexp" in workers and threads == 1 and not log["numpy_calls"]:
            for optimizer in args.optimizers:
                log["numpy_calls"][optimizer] = workers["nnexp"].ask(
                    op="count", workload="a", optimizer=optimizer, dtype="float32")
    finally:
        for worker in workers.values():
            worker.close()


def _cell_name(cell: dict) -> str:
    return f"({cell['workload']}) {cell['optimizer']:<4} {cell['dtype']}"


def _describe(reply: dict) -> str:
    if "error" in reply:
        return f"error: {reply['error']}"
    mark = "" if reply["clean"] else " ~disturbed"
    return f"{reply['seconds']:.2f} s/epoch{mark}"


def rerun_plan(path: str) -> tuple[dict, list[dict], dict]:
    """From an earlier JSON: the cells with a disturbed (or failed) framework, per thread
    count -- rerun for every framework, so that a cell's ratios come from one moment -- and
    the earlier results and log to merge into."""
    old = json.loads(Path(path).read_text())
    plan: dict[int, list[dict]] = {}
    for r in old["results"]:
        if r.get("clean", False):
            continue
        cell = {"workload": r["workload"], "optimizer": r["optimizer"], "dtype": r["dtype"]}
        if cell not in plan.setdefault(r["threads"], []):
            plan[r["threads"]].append(cell)
    log = {k: old.get(k, {}) for k in ("workers", "peak", "numpy_calls")}
    log["samples"] = old.get("samples", old["args"]["samples"])
    print(f"rerunning {sum(map(len, plan.values()))} disturbed cells of {path}", file=sys.stderr)
    return plan, old["results"], log


# --------------------------------------------------------------------------- the report

def _order(r: dict) -> tuple:
    return (r["threads"], r["workload"], OPTIMIZERS.index(r["optimizer"]),
            DTYPES.index(r["dtype"]), FRAMEWORKS.index(r["framework"]))


def _key(r: dict) -> tuple:
    return r["workload"], r["optimizer"], r["dtype"], r["threads"]


def enrich(results: list[dict], peaks: dict, n: int) -> None:
    """Add samples/s, the speed-up of nnexp over each framework, GFLOP/s and % of peak."""
    nnexp_rate = {_key(r): n / r["seconds"] for r in results
                  if r["framework"] == "nnexp" and "seconds" in r}
    for r in results:
        if "seconds" not in r:
            continue
        r["samples_per_s"] = n / r["seconds"]
        base = nnexp_rate.get(_key(r))
        r["nnexp_speedup"] = base / r["samples_per_s"] if base else None
        r["gflops"] = matmul_flops(WORKLOADS[r["workload"]].sizes, n) / r["seconds"] / 1e9
        peak = peaks.get(f"{r['dtype']}/{r['threads']}", {}).get("gflops")
        r["peak_pct"] = 100 * r["gflops"] / peak if peak else None


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([WORKLOADS[r["workload"]].label, r["optimizer"], r["dtype"], r["threads"],
                         r["framework"], "n/a", "", "", ""])
            continue
        mark = "" if r["clean"] else "~"
        impl = " (foreach)" if "foreach" in r.get("optimizer_impl", "") else ""
        rows.append([WORKLOADS[r["workload"]].label, r["optimizer"], r["dtype"], r["threads"],
                     r["framework"] + impl, f"{mark}{r['samples_per_s']:,.0f}",
                     f"{r['nnexp_speedup']:.2f}" if r["nnexp_speedup"] else "",
                     f"{r['gflops']:.1f}", f"{r['peak_pct']:.0f}%" if r["peak_pct"] else ""])
    return markdown_table(["config", "optimizer", "dtype", "threads", "framework", "samples/s",
                           "nnexp speed-up", "GFLOP/s", "% of gemm peak"], rows, "lllrlrrrr")


# The targets of issue 7: (workload, optimizer, minimum nnexp speed-up over torch), float32.
SPEEDUP_TARGETS = [("a", "sgd", 5.0), ("a", "adam", 4.0), ("b", "adam", 1.2), ("c", "adam", 1.0),
                   ("d", "adam", 1.2), ("e", "adam", 1.2)]   # (d), (e): issue 15's new layers
PEAK_TARGET = ("c", 80.0)   # % of the measured sgemm peak, float32, one thread
# issue 16: (workload with diagnostics, optimizer, most its epoch may take over the base's)
DIAGNOSTICS_TARGETS = [("f", "sgd", 1.10), ("g", "adam", 1.05)]


def _find(results, fw, workload, optimizer, dtype, threads):
    for r in results:
        if (r["framework"], r["workload"], r["optimizer"], r["dtype"], r["threads"]) == \
                (fw, workload, optimizer, dtype, threads) and "seconds" in r:
            return r
    return None


def targets(results: list[dict], default_threads: int, calls: dict) -> tuple[str, list[dict]]:
    """PASS/MISS per target; the default-thread-count rows are reported the same way."""
    rows, verdicts = [], []
    for threads in sorted({r["threads"] for r in results} & {1, default_threads}):
        official = threads == 1
        for workload, optimizer, minimum in SPEEDUP_TARGETS:
            r = _find(results, "torch", workload, optimizer, "float32", threads)
            ratio = r and r["nnexp_speedup"]
            passed = None if ratio is None else ratio >= minimum
            torch_impl = r.get("optimizer_impl", "") if r else ""
            what = (f"({workload}) {optimizer} float32, {threads} thread(s): nnexp >= {minimum}x "
                    f"torch {torch_impl}")
            rows.append([what, f"{ratio:.2f}x" if ratio else "n/a",
                         verdict(passed) if official else f"({verdict(passed)})"])
            verdicts.append({"target": what, "value": ratio, "passed": passed, "official": official})
        for optimizer in OPTIMIZERS:
            r = _find(results, "nnexp", PEAK_TARGET[0], optimizer, "float32", threads)
            pct = r and r["peak_pct"]
            passed = None if pct is None else pct >= PEAK_TARGET[1]
            what = (f"({PEAK_TARGET[0]}) {optimizer} float32, {threads} thread(s): nnexp >= "
                    f"{PEAK_TARGET[1]:.0f}% of sgemm peak")
            rows.append([what, f"{pct:.0f}%" if pct else "n/a",
                         verdict(passed) if official else f"({verdict(passed)})"])
            verdicts.append({"target": what, "value": pct, "passed": passed, "official": official})
        for workload, optimizer, maximum in DIAGNOSTICS_TARGETS:
            r = _find(results, "nnexp", workload, optimizer, "float32", threads)
            base = _find(results, "nnexp", DIAGNOSTICS_BASE[workload], optimizer, "float32",
                         threads)
            ratio = r and base and r["seconds"] / base["seconds"]
            passed = None if not ratio else ratio <= maximum
            what = (f"({workload}) {optimizer} float32, {threads} thread(s): diagnostics=on "
                    f"epoch <= {maximum}x ({DIAGNOSTICS_BASE[workload]})")
            rows.append([what, f"{ratio:.3f}x" if ratio else "n/a",
                         verdict(passed) if official else f"({verdict(passed)})"])
            verdicts.append({"target": what, "value": ratio, "passed": passed, "official": official})
    text = markdown_table(["target", "measured", "verdict"], rows, "lrl")
    text += ("\n\nVerdicts in parentheses: the targets are set for one thread; the machine's "
             "default thread count is reported against the same thresholds.")
    if calls:
        from numpy_calls import summary

        text += "\n\nWhere the time goes at batch 10 (nnexp, one thread; bench/numpy_calls.py):\n"
        text += "\n".join(f"- {summary(c)}" for c in calls.values() if "error" not in c)
    return text, verdicts


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1 epoch of 10,000 samples, short warm-up, no call count")
    p.add_argument("--workloads", default="a,b,c,d,e,f,g")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    p.add_argument("--dtypes", default=",".join(DTYPES))
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default: 1 and the machine's default)")
    p.add_argument("--samples", type=int, default=N_SAMPLES)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per cell (median)")
    p.add_argument("--budget", type=float, default=12.0,
                   help="seconds of timed epochs per cell after which no further epoch starts")
    p.add_argument("--warmup", type=float, default=0.1,
                   help="fraction of the data the warm-up pass covers")
    p.add_argument("--max-other", type=float, default=0.3,
                   help="cores used by other processes above which an epoch is disturbed")
    p.add_argument("--retries", type=int, default=2, help="extra epochs for disturbed ones")
    p.add_argument("--peak-repeats", type=int, default=5)
    p.add_argument("--mnist-root", default=None,
                   help="train on the real MNIST images under this data root instead")
    p.add_argument("--no-count", dest="count_calls", action="store_false",
                   help="skip counting NumPy calls per step at batch 10")
    p.add_argument("--rerun-disturbed", metavar="JSON",
                   help="rerun the cells an earlier run marked disturbed and merge the results")
    p.add_argument("--serve", choices=FRAMEWORKS, help=argparse.SUPPRESS)   # worker mode
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.warmup, args.retries = 10_000, 1, 0.05, 0
        args.peak_repeats, args.count_calls = 2, False
    split = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    args.workloads, args.optimizers = split(args.workloads), split(args.optimizers)
    args.dtypes, args.frameworks = split(args.dtypes), split(args.frameworks)
    args.thread_counts = ([int(t) for t in split(args.threads)] if args.threads
                          else sorted({1, machine_threads()}))
    args.cell_options = {"epochs": args.epochs, "budget": args.budget, "warmup": args.warmup,
                         "max_other": args.max_other, "retries": args.retries}
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, int(args.threads), args.samples, args.mnist_root)
        return
    started = time.perf_counter()
    info = machine()
    skipped = {fw: why for fw in args.frameworks if (why := framework_available(fw))}
    for fw, why in skipped.items():
        print(f"skipping {fw}: {why}", file=sys.stderr)
    args.frameworks = [fw for fw in args.frameworks if fw not in skipped]
    cells = [{"workload": w, "optimizer": o, "dtype": d}
             for w in args.workloads for o in args.optimizers for d in args.dtypes]
    plan = {threads: cells for threads in args.thread_counts}
    log = {"workers": {}, "peak": {}, "numpy_calls": {}}
    results: list[dict] = []
    if args.rerun_disturbed:
        plan, results, log = rerun_plan(args.rerun_disturbed)
        args.samples = log["samples"]
    load_before = load_average()
    for threads, todo in plan.items():
        if todo:
            print(f"{threads} thread(s):", file=sys.stderr)
            run_thread_count(threads, args, todo, results, log)
    results.sort(key=_order)
    enrich(results, log["peak"], args.samples)
    target_text, verdicts = targets(results, info["default_threads"], log["numpy_calls"])
    command = "python bench/train_speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    peaks = ", ".join(f"{'s' if k.startswith('float32') else 'd'}gemm {k.split('/')[1]}t "
                      f"{v.get('gflops', float('nan')):.0f}" for k, v in log["peak"].items())
    data = f"real MNIST from {args.mnist_root}" if args.mnist_root else "random MNIST-shaped data"
    print(f"\n## Training speed ({args.samples:,} samples per epoch, {data})\n")
    print(f"Machine: {describe_machine(info)}. Load average before/after: "
          f"{load_before[0]:.2f} / {load_average()[0]:.2f}. Matmul peak (GFLOP/s, {PEAK_SIZE}^3): "
          f"{peaks}. Command: `{command.strip()}`. Wall time {time.perf_counter() - started:.0f} s.\n")
    print(table(results))
    print("\n'nnexp speed-up' = nnexp samples/s / that framework's samples/s (above 1: nnexp is "
          "faster). '~' marks a cell whose epochs all ran while other processes used more than "
          f"{args.max_other} cores. n/a: not run or not supported (see the JSON).\n")
    print("## Targets\n")
    print(target_text)
    if skipped:
        print("\nNot run: " + "; ".join(f"{fw}: {why}" for fw, why in skipped.items()))
    log["samples"] = args.samples
    path = write_json("train_speed", {"machine": info, "command": command, "args": {
        k: v for k, v in vars(args).items() if k != "serve"}, "results": results, **log,
        "targets": verdicts, "skipped": skipped, "load_average": [load_before, load_average()]})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
