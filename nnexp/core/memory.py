"""How much memory training a network will take, and how much this process may still use.

Asked before anything is allocated, so that a model too large for the machine is refused with
one line instead of ending in ``MemoryError`` halfway through building it (or, under a memory
limit, after a tracking run already exists).

The estimate, in elements of the network's dtype (``b`` bytes each), for layer widths
``[d_0, ..., d_L]``, a training batch of ``n`` rows and an optimizer that keeps ``s`` arrays of
the parameters' size (its state and its scratch, measured by :func:`optimizer_slots`)::

    P          = sum_k (d_{k-1} + 1) d_k              weights and biases
    network    = 2 P                                  the parameters and their gradients
    optimizer  = s P                                  e.g. Adam: m, v, a scratch and decayed g
    best copy  = P                                    fit keeps the best epoch's weights
    workspace  = 2 n (d_0 + 1 + sum_{k<L} 3 (d_k + 1) + 5 d_L)
                                                      [X, 1], [A_k; 1], f/f' scratch and deltas
                                                      per hidden layer, logits, P, Y and scratch
                                                      for the output; twice: the full batches
                                                      and the last, shorter one
    evaluation = 3 * 2**20 * L                        chunks of about 2**20 activations a layer
    inputs     = N (d_0 + 1)                          fit's copy of the N training rows as [X, 1]
                                                      (counted when N is known; a full batch,
                                                      batch_size null, is then n = N)

    bytes = b (network + optimizer + best copy + workspace + evaluation)

The data are not in it: they are loaded (and counted by :func:`available`) before the network
is built. What is available is the smallest of: the address-space limit (``RLIMIT_AS``) less
the process's virtual size, the data-segment limit (``RLIMIT_DATA``) less its data size, the
cgroup's limit less its usage (``memory.max`` in v2, ``memory.limit_in_bytes`` in v1), and
``MemAvailable`` from ``/proc/meminfo``; on a system with none of these nothing is refused.

Standard library and NumPy only, like the rest of the core.
"""

from __future__ import annotations

import math
import resource
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_EVAL_ELEMENTS = 2 ** 20     # the network's evaluation chunk, activations per layer
_PROBE = 1 << 15             # elements of the parameter array an optimizer is probed with
_UNLIMITED = (resource.RLIM_INFINITY, -1)


@dataclass(frozen=True)
class Estimate:
    """Bytes a training run's network will take, in parts (see the module docstring)."""

    parameters: int
    network: int
    optimizer: int
    best_copy: int
    workspace: int

    @property
    def total(self) -> int:
        return self.network + self.optimizer + self.best_copy + self.workspace


def n_parameters(sizes) -> int:
    """``P = sum_k (d_{k-1} + 1) d_k``: the weights and biases of dense layers ``sizes``."""
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def estimate(sizes, dtype, *, batch_size: int | None, optimizer_slots: int,
             n_train: int | None = None) -> Estimate:
    """The bytes of the module docstring's estimate for layer widths ``sizes``; ``batch_size``
    None is a full batch of ``n_train`` rows (1 when that is unknown too)."""
    b = np.dtype(dtype).itemsize
    P = n_parameters(sizes)
    n = batch_size or n_train or 1
    per_row = sizes[0] + 1 + sum(3 * (d + 1) for d in sizes[1:-1]) + 5 * sizes[-1]
    workspace = 2 * n * per_row + 3 * _EVAL_ELEMENTS * (len(sizes) - 1) + (n_train or 0) * (sizes[0] + 1)
    return Estimate(P, 2 * P * b, optimizer_slots * P * b, P * b, workspace * b)


def optimizer_slots(optimizer, dtype) -> int:
    """How many arrays of the parameters' size ``optimizer`` keeps, measured: one step on a
    probe array through its public ``step``, counting the bytes it still holds after (state,
    scratch) with ``tracemalloc`` (NumPy reports its buffers to it). A fresh optimizer of the
    same class and settings is never needed: ``reset()`` forgets the probe afterwards."""
    dtype = np.dtype(dtype)
    w, g = np.zeros(_PROBE, dtype), np.ones(_PROBE, dtype)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        if hasattr(optimizer, "begin_training"):   # a per-step schedule needs the length
            optimizer.begin_training(1)
        before = tracemalloc.get_traced_memory()[0]
        optimizer.step([w], [g])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
        optimizer.reset()
    return max(0, math.ceil(held / (_PROBE * dtype.itemsize) - 0.05))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (VmSize, VmData) in bytes; 0 if unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_limit() -> tuple[int, str] | None:
    """Limit less usage of this process's memory cgroup (v2, else v1), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":        # v2 unified hierarchy
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            limit, usage, name = base / "memory.max", base / "memory.current", "cgroup memory.max"
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            limit, usage, name = base / "memory.limit_in_bytes", base / "memory.usage_in_bytes", \
                "cgroup memory.limit_in_bytes"
        else:
            continue
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:   # v1 "unlimited" is ~2**63
            return max(0, cap - used), f"{name} {cap / 2**30:.1f} GB less usage"
    return None


def available() -> tuple[int | None, str]:
    """``(bytes this process can still allocate, where the figure comes from)``; ``(None, ...)``
    when no limit can be read."""
    found: list[tuple[int, str]] = []
    for which, field, name in ((resource.RLIMIT_AS, "VmSize", "RLIMIT_AS"),
                               (resource.RLIMIT_DATA, "VmData", "RLIMIT_DATA")):
        soft = resource.getrlimit(which)[0]
        if soft not in _UNLIMITED:
            found.append((max(0, soft - _status_kb(field)),
                          f"{name} {soft / 2**30:.1f} GB less the {_status_kb(field) / 2**30:.1f} GB in use"))
    cgroup = _cgroup_limit()
    if cgroup:
        found.append(cgroup)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        return None, "no memory limit readable"
    return min(found)


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2 ** 30 else f"{n / 2**20:.0f} MB"
