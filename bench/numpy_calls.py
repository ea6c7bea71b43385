"""Count the NumPy calls a training step of ``nnexp.core.fit`` makes, and what each kind costs.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/numpy_calls.py     # (a), SGD and Adam
    python bench/numpy_calls.py --workload b --optimizer adam --dtype float64

At batch size 10 (workload (a)) the arithmetic of a step is small; what costs is the number of
calls into NumPy -- each one parses its arguments, resolves dtypes and dispatches a loop --
and the Python between them. This script splits a step's time that way:

1. the step time: uninstrumented epochs of ``fit`` on a slice of the benchmark data;
2. the calls: one epoch with every module-level NumPy callable the core reaches as
   ``np.name`` (ufuncs such as ``np.multiply``, dispatchers such as ``np.dot``) swapped for a
   counting wrapper that also records the arguments of a window of calls; and one epoch with
   a ``sys.setprofile`` hook that counts and times the *methods* (``X.take``,
   ``np.add.reduce``, ``S.argmax``), which cannot be wrapped;
3. the time inside NumPy: the recorded calls replayed in order from a flat list (the same
   arrays, shapes and ``out=`` buffers, with no nnexp code in between) plus the profiled
   method times; step time minus that is nnexp's Python around the calls. The tables time
   each replayed call on its own, which adds ~0.1 us of clock to each.

Only calls made from ``nnexp/core`` source files count, not NumPy's own Python calling itself.
Per-epoch work (the permutation, the accuracy count) is spread over the epoch's steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import markdown_table, median  # noqa: E402
from _workloads import WORKLOADS, nnexp_model, one_hot, random_mnist  # noqa: E402

COUNT_SAMPLES = 6_000      # 600 steps at batch 10: stable counts and averages
WINDOW = 2_000             # calls recorded for replay, from about the middle of the epoch
REPLAYS = 3                # passes over the recorded window


class Tally:
    """What was seen: calls per (caller in nnexp.core, NumPy function), recorded calls for
    replay, and profiled nanoseconds of the methods."""

    def __init__(self, window: tuple[int, int] = (0, WINDOW)):
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.method_ns: dict[tuple[str, str], float] = defaultdict(float)
        self.recorded: list = []           # (key, real callable, args, kwargs)
        self.seen = 0
        self.first, self.size = window

    def count(self, key, real=None, args=(), kwargs=None) -> None:
        self.calls[key] += 1
        self.seen += 1
        if real is not None and self.first <= self.seen < self.first + self.size:
            self.recorded.append((key, real, args, kwargs or {}))


def _core_dir() -> str:
    import nnexp.core

    return str(Path(nnexp.core.__file__).resolve().parent)


class _Counted:
    """Stands in for a NumPy callable: counts (and may record) calls made from the core."""

    __slots__ = ("_real", "_name", "_tally", "_core")

    def __init__(self, real, name: str, tally: Tally, core_dir: str):
        self._real, self._name, self._tally, self._core = real, name, tally, core_dir

    def __call__(self, *args, **kwargs):
        code = sys._getframe(1).f_code
        if code.co_filename.startswith(self._core):   # not NumPy's own Python code
            self._tally.count((code.co_qualname, self._name), self._real, args, kwargs)
        return self._real(*args, **kwargs)

    def __getattr__(self, attr):                      # np.add.reduce: the real bound method,
        return getattr(self._real, attr)              # which the profile hook counts


class wrapped_functions:
    """Context manager: module-level NumPy callables swapped for :class:`_Counted` wrappers.

    The core looks them up as ``np.name`` when it runs (or binds them once per call of a
    function), so the swap is seen without touching its code.
    """

    def __init__(self, tally: Tally, core_dir: str):
        import numpy as np

        self.np, self.tally, self.core = np, tally, core_dir
        self.saved: dict = {}

    def __enter__(self):
        ufunc = self.np.ufunc
        # vars(), not dir() + getattr(): getattr would import numpy's lazy submodules
        for name, obj in list(vars(self.np).items()):
            if not name.startswith("_") and (isinstance(obj, ufunc) or type(obj).__name__ in (
                    "_ArrayFunctionDispatcher", "builtin_function_or_method")):
                self.saved[name] = obj
                setattr(self.np, name, _Counted(obj, f"np.{name}", self.tally, self.core))
        return self

    def __exit__(self, *exc):
        for name, obj in self.saved.items():
            setattr(self.np, name, obj)


class profiled_methods:
    """Context manager: calls of array and ufunc methods made from ``core_dir`` files, counted
    and timed from the ``c_call`` to the ``c_return`` event less ``overhead_ns`` (the hook's own
    share, see :func:`_hook_overhead_ns`)."""

    def __init__(self, tally: Tally, core_dir: str, overhead_ns: float = 0.0):
        import numpy as np

        self.types, self.ufunc = (np.ndarray, np.ufunc), np.ufunc
        self.tally, self.core, self.overhead = tally, core_dir, overhead_ns
        self.pending: list = []   # (bound method, start ns) in flight

    def __enter__(self):
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)

    def _hook(self, frame, event, arg):
        if event == "c_call":
            if isinstance(getattr(arg, "__self__", None), self.types) \
                    and frame.f_code.co_filename.startswith(self.core):
                self.pending.append((arg, time.perf_counter_ns()))
        elif event in ("c_return", "c_exception") and self.pending and self.pending[-1][0] is arg:
            _, t0 = self.pending.pop()
            owner = arg.__self__
            kind = f"np.{owner.__name__}" if isinstance(owner, self.ufunc) else "ndarray"
            key = (frame.f_code.co_qualname, f"{kind}.{arg.__name__}")
            self.tally.count(key)
            self.tally.method_ns[key] += time.perf_counter_ns() - t0 - self.overhead


def _hook_overhead_ns(n: int = 20_000) -> float:
    """Profiled minus plain time of a small ``ndarray.take`` like the ones ``fit`` makes."""
    import numpy as np

    a, rows, out = np.ones((100, 50)), np.arange(10), np.empty((10, 50))
    take = a.take
    t0 = time.perf_counter_ns()
    for _ in range(n):
        take(rows, 0, out, "clip")
    plain = (time.perf_counter_ns() - t0) / n
    probe = Tally()
    with profiled_methods(probe, str(Path(__file__).resolve())):   # calls from this file
        for _ in range(n):
            take(rows, 0, out, "clip")
    return max(0.0, sum(probe.method_ns.values()) / n - plain)


def _clock_overhead_ns(n: int = 20_000) -> float:
    """What two back-to-back ``perf_counter_ns`` calls cost; subtracted from each timing."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        t0 = clock()
        samples.append(clock() - t0)
    return float(median(samples))


def _replay_ns(recorded: list, repeats: int = REPLAYS) -> dict[tuple[str, str], float]:
    """Mean nanoseconds per call for each key, from the recorded calls replayed in their
    original order (whole training steps, so values stay as sane as in training), each call
    timed on its own, less the clock's overhead. Floating-point warnings are silenced as in
    ``fit``."""
    import numpy as np

    overhead, clock = _clock_overhead_ns(), time.perf_counter_ns
    total, count = defaultdict(float), defaultdict(int)
    with np.errstate(all="ignore"):
        for _ in range(repeats):
            for key, real, args, kwargs in recorded:
                t0 = clock()
                real(*args, **kwargs)
                total[key] += clock() - t0 - overhead
                count[key] += 1
    return {key: total[key] / count[key] for key in total}


def _replay_flat_ns(recorded: list, repeats: int = REPLAYS) -> float:
    """Mean nanoseconds per call of the recorded calls replayed in order with no clock
    around each: the cost of the same NumPy work with the thinnest Python front end."""
    import numpy as np

    with np.errstate(all="ignore"):
        t0 = time.perf_counter_ns()
        for _ in range(repeats):
            for _key, real, args, kwargs in recorded:
                real(*args, **kwargs)
        return (time.perf_counter_ns() - t0) / (repeats * len(recorded))


def _epoch(net, opt, X, Y, batch_size: int, seed: int = 0) -> float:
    from nnexp.core import fit

    start = time.perf_counter()
    fit(net, opt, (X, Y), val=None, epochs=1, batch_size=batch_size, seed=seed)
    return time.perf_counter() - start


def _breakdown(tally: Tally, part: int, steps: int) -> dict[str, tuple[float, float]]:
    """``{name: (calls per step, us per step)}``, grouped by caller (part 0) or function (1):
    replayed time per call for wrapped functions, profiled time for methods."""
    us_per_call = {key: ns / 1e3 for key, ns in _replay_ns(tally.recorded).items()}
    us_per_call.update({key: ns / tally.calls[key] / 1e3 for key, ns in tally.method_ns.items()})
    calls, us = defaultdict(float), defaultdict(float)
    for key, n in tally.calls.items():
        calls[key[part]] += n / steps
        us[key[part]] += n / steps * us_per_call.get(key, 0.0)   # rare calls: not in the window
    return {k: (calls[k], us[k]) for k in sorted(calls, key=lambda k: -us[k])}


def count_calls(workload_key: str, optimizer: str, dtype: str = "float32",
                n: int = COUNT_SAMPLES, repeats: int = 3) -> dict:
    """NumPy calls per step of ``fit`` for one workload, and where the step's time goes.

    Returns ``steps``, ``calls_per_step``, ``step_us`` (median of ``repeats`` uninstrumented
    epochs), ``numpy_us_per_step``, ``us_per_call`` (inside NumPy), ``step_us_per_call`` (all
    in) and ``by_function`` / ``by_caller``: ``{name: (calls, us) per step}``.
    """
    w = WORKLOADS[workload_key]
    X, labels = random_mnist(n, dtype)
    Y = one_hot(labels, dtype)
    net, opt = nnexp_model(w, optimizer, dtype)
    steps = -(-n // w.batch_size)
    _epoch(net, opt, X, Y, w.batch_size)                      # warm-up: buffers, caches
    step_us = median(_epoch(net, opt, X, Y, w.batch_size, seed) for seed in range(repeats)) \
        / steps * 1e6
    # every step makes dozens of calls, so call number 20 x steps lies within the epoch
    tally, core = Tally(window=(20 * steps, WINDOW)), _core_dir()
    with wrapped_functions(tally, core):
        _epoch(net, opt, X, Y, w.batch_size)
    with profiled_methods(tally, core, _hook_overhead_ns()):
        _epoch(net, opt, X, Y, w.batch_size)
    by_function = _breakdown(tally, 1, steps)
    calls = sum(c for c, _ in by_function.values())
    # inside NumPy: the wrapped calls at their flat-replay cost, plus the profiled methods
    method_calls = sum(tally.calls[key] for key in tally.method_ns) / steps
    numpy_us = ((calls - method_calls) * _replay_flat_ns(tally.recorded)
                + sum(tally.method_ns.values()) / steps) / 1e3
    return {"workload": workload_key, "optimizer": optimizer, "dtype": dtype, "steps": steps,
            "calls_per_step": calls, "step_us": step_us, "numpy_us_per_step": numpy_us,
            "us_per_call": numpy_us / calls, "step_us_per_call": step_us / calls,
            "by_function": by_function, "by_caller": _breakdown(tally, 0, steps)}


def summary(result: dict) -> str:
    """One sentence: calls per step and how the step time divides."""
    python_us = result["step_us"] - result["numpy_us_per_step"]
    return (f"workload ({result['workload']}) {result['optimizer']} {result['dtype']}: "
            f"{result['calls_per_step']:.1f} NumPy calls per step; a step takes "
            f"{result['step_us']:.1f} us = {result['numpy_us_per_step']:.1f} us inside NumPy "
            f"({result['us_per_call']:.2f} us per call) + {python_us:.1f} us of nnexp's Python "
            f"between the calls; {result['step_us_per_call']:.2f} us per call all in")


def report(result: dict, min_calls: float = 0.05) -> str:
    """:func:`summary` and two markdown tables, per NumPy function and per calling function
    (calls made less than ``min_calls`` times a step -- per-epoch work -- share one row)."""
    parts = [summary(result)]
    for title, table in (("NumPy function", result["by_function"]),
                         ("called from (nnexp.core)", result["by_caller"])):
        rows, rare = [], [0.0, 0.0]
        for name, (calls, us) in table.items():
            if calls < min_calls:
                rare[0] += calls
                rare[1] += us
            else:
                rows.append([name, f"{calls:.2f}", f"{us / calls:.2f}", f"{us:.1f}"])
        rows.append(["(per-epoch calls, spread over the steps)", f"{rare[0]:.2f}", "",
                     f"{rare[1]:.1f}"])
        parts.append(markdown_table([title, "calls/step", "us/call", "us/step"], rows, "lrrr"))
    return "\n\n".join(parts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="a", choices=sorted(WORKLOADS))
    parser.add_argument("--optimizer", action="append", choices=["sgd", "adam"],
                        help="repeatable; default both")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--samples", type=int, default=COUNT_SAMPLES)
    args = parser.parse_args(argv)
    if "OPENBLAS_NUM_THREADS" not in os.environ:
        print("note: BLAS threads not pinned; run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "
              "to match the benchmark's single-thread cells", file=sys.stderr)
    for optimizer in args.optimizer or ["sgd", "adam"]:
        print(report(count_calls(args.workload, optimizer, args.dtype, args.samples)), end="\n\n")


if __name__ == "__main__":
    main()
