"""Helpers shared by the benchmarks: thread pinning, timing, disturbance, tables, machine facts.

Kept free of NumPy at import time on purpose: the parent processes of the benchmarks only
orchestrate, and BLAS thread counts must be fixed in a child's environment *before* that child
imports NumPy (OpenBLAS and MKL read them once, when they load).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# Every knob the BLAS/OpenMP runtimes we may load read for their thread count.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def machine_threads() -> int:
    """The machine's default thread count: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def pinned_env(threads: int, base: dict | None = None, **extra: str) -> dict:
    """A copy of the environment with every BLAS/OpenMP thread knob set to ``threads``."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_VARS})
    env.update(extra)
    return env


# --------------------------------------------------------------------------- CPU accounting
def _busy_jiffies() -> int:
    """Non-idle CPU time of the whole machine since boot, in clock ticks (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]          # idle + iowait
    return sum(fields[:8]) - idle         # user nice system idle iowait irq softirq steal


_HZ = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    """Wall clock, the CPU time of this process (all threads) and of its reaped children, and
    the machine's busy time, all in seconds."""

    wall: float
    own: float
    busy: float

    @classmethod
    def take(cls) -> "CpuSnapshot":
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return cls(time.perf_counter(), own, _busy_jiffies() / _HZ)


def other_cores(start: CpuSnapshot, end: CpuSnapshot) -> float:
    """How many cores *other* processes kept busy on average between two snapshots.

    This is the disturbance measure of the benchmarks: the load average lags by a minute and
    counts our own threads, while machine-busy minus our own CPU time (and that of the
    children we waited for) says how much the rest of the machine competed with the interval
    that was timed. Clock ticks are 10 ms, so intervals under a second are coarse.
    """
    wall = max(end.wall - start.wall, 1e-9)
    return max(0.0, ((end.busy - start.busy) - (end.own - start.own)) / wall)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_until_quiet(max_other: float = 0.3, window: float = 2.0, timeout: float = 120.0) -> float:
    """Wait (up to ``timeout`` s) for a ``window`` in which other processes use < ``max_other``
    cores; returns the last measured value. Used before timing things that spawn processes."""
    deadline = time.monotonic() + timeout
    while True:
        start = CpuSnapshot.take()
        time.sleep(window)
        busy = other_cores(start, CpuSnapshot.take())
        if busy < max_other or time.monotonic() > deadline:
            return busy


# --------------------------------------------------------------------------- timing
def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


@dataclass
class Timed:
    """A finished subprocess: its wall time, exit status and output."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    other_cores: float = 0.0

    def tail(self, lines: int = 5) -> str:
        return "\n".join((self.stderr or self.stdout).strip().splitlines()[-lines:])


def run_timed(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
              timeout: float | None = None) -> Timed:
    """Run ``cmd`` to completion; wall time from just before the fork to its exit."""
    start = CpuSnapshot.take()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    end = CpuSnapshot.take()   # after the wait: the child's CPU time counts as our own
    return Timed(end.wall - start.wall, proc.returncode, proc.stdout, proc.stderr,
                 other_cores(start, end))


# --------------------------------------------------------------------------- reporting
def markdown_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` is one letter per column (l or r)."""
    align = align or "l" * len(headers)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(values):
        return "| " + " | ".join(v.rjust(w) if a == "r" else v.ljust(w)
                                 for v, w, a in zip(values, widths, align)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if a == "r" else ("-" * (w + 2))
                          for w, a in zip(widths, align)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "MISS")


def write_json(name: str, payload: dict) -> Path:
    """Write ``payload`` to bench/results/<name>-<timestamp>.json (git-ignored)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def machine() -> dict:
    """CPU model, core count, Python, and NumPy with the BLAS it was built against.

    Runs NumPy in a child process, so calling it never loads BLAS into an orchestrator.
    """
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    probe = ("import json, numpy as np;"
             "blas = np.show_config(mode='dicts')['Build Dependencies']['blas'];"
             "print(json.dumps({'numpy': np.__version__, 'blas': blas.get('name'),"
             " 'blas_version': blas.get('version'), 'blas_config': blas.get('openblas configuration')}))")
    info = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                     text=True, check=True).stdout)
    return {"cpu": model, "cpus": os.cpu_count(), "default_threads": machine_threads(),
            "python": platform.python_version(), "platform": platform.platform(),
            "nnexp_source": source_version(), **info}


def source_version() -> str:
    """The commit of the tree measured, ``+modified`` if nnexp/ differs from it."""
    root = BENCH_DIR.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+modified" if git("status", "--porcelain", "--", "nnexp") else "")


def describe_machine(m: dict) -> str:
    return (f"{m['cpu']}, {m['cpus']} CPUs (default threads {m['default_threads']}), "
            f"Python {m['python']}, NumPy {m['numpy']} with {m['blas']} {m['blas_version']}; "
            f"nnexp at {m.get('nnexp_source', '?')}")
