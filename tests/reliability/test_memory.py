"""A model too large for the memory this process may use is refused before anything is allocated:
one line with the estimate, what is available and the key to change, exit 2, no run.

The limit is set in the child with ``resource.setrlimit`` (``preexec_fn``); the estimate's maths
is checked against what the network and the optimizers really allocate.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from nnexp.core import MLP, OPTIMIZERS, memory
from tests.reliability.helpers import QUICK, all_runs, assert_untouched, client_for, isolated_env, nnexp, one_error_line

LIMIT = 3 * 2 ** 30   # address space of the child: Python, NumPy, Hydra and MLflow fit in it


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def nnexp_limited(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nnexp", *args], cwd=cwd, env=isolated_env(cwd),
                          capture_output=True, text=True, timeout=300, preexec_fn=_limited)


@pytest.mark.slow
def test_a_network_larger_than_the_machine_is_refused_before_a_run(with_earlier_run):
    """``[100000, 100000]``: 10^10 weights, 520 GB with Adam; was ``MemoryError``, exit 1.
    Refused before the data set is loaded: MNIST from an empty folder, with downloads off,
    would otherwise say its files are missing."""
    workdir, before = with_earlier_run
    result = nnexp("model.hidden=[100000,100000]", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "model.hidden=[100000, 100000] needs at least 52" in line and "GB to train" in line
    (workdir / "empty").mkdir()
    result = nnexp("model.hidden=[100000,100000]", "data=mnist", f"data.root={workdir / 'empty'}",
                   "data.download=false", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert "needs at least 52" in one_error_line(result)
    assert "is available (" in line and "choose a smaller model.hidden" in line
    assert_untouched(workdir, before)


@pytest.mark.slow
def test_under_a_memory_limit_a_network_that_does_not_fit_is_refused_and_one_that_fits_runs(migrated_store):
    """``[12000, 12000]`` under a 3 GB address-space limit: 7.6 GB estimated, refused naming
    RLIMIT_AS (it used to create a run and fail it); the default model runs under the same limit."""
    result = nnexp_limited("model.hidden=[12000,12000]", *QUICK, cwd=migrated_store)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert "needs at least 7.6 GB" in line and "(RLIMIT_AS 3.0 GB less the" in line
    assert all_runs(client_for(migrated_store)) == []

    result = nnexp_limited(*QUICK, cwd=migrated_store)
    assert result.returncode == 0, result.stderr
    (run,) = all_runs(client_for(migrated_store))
    assert run.info.status == "FINISHED"


def test_the_estimate_counts_what_the_network_and_the_optimizer_allocate():
    """P from the layer widths equals the network's parameter count; the optimizer's measured
    arrays are what it holds after a step (SGD: scratch and decayed gradient; Adam: m, v too)."""
    import tracemalloc

    sizes = [30, 64, 32, 2]
    net = MLP(sizes, dtype="float32")
    assert memory.n_parameters(sizes) == net.flat.size
    slots = {name: memory.optimizer_slots(cls(lr=0.1), "float64") for name, cls in OPTIMIZERS.items()}
    assert slots["sgd"] == 2 and slots["momentum"] == 3 and slots["adam"] == 4

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        big = MLP([100, 2000, 10], dtype="float64")
        opt = OPTIMIZERS["adam"](lr=0.1)
        opt.step(big.params, [np.ones_like(p) for p in big.params])
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    need = memory.estimate([100, 2000, 10], "float64", batch_size=1, optimizer_slots=4)
    # the estimate holds the network, the optimizer and a best copy; the test's own gradients
    # (one more P) stand in for the best copy
    held = need.network + need.optimizer + need.best_copy
    assert 0.9 * held <= used <= 1.1 * held, (used, held)


def test_the_full_estimate_is_made_again_when_the_input_width_is_known(compose, monkeypatch):
    """The hidden layers alone fit in 100 MB; with 2,000,000 inputs the first layer does not:
    validate passes, build_model refuses before the MLP allocates anything."""
    from nnexp import build
    from nnexp.config import validate
    from nnexp.errors import ConfigError

    monkeypatch.setattr(memory, "available", lambda: (100 * 2 ** 20, "a test's 100 MB"))
    cfg = compose("model.hidden=[16]")
    validate(cfg)
    with pytest.raises(ConfigError, match=r"model.hidden=\[16\] needs about 2.7 GB to train .* but about "
                                          r"100 MB is available \(a test's 100 MB\)"):
        build.build_model(cfg, n_inputs=2_000_000, n_outputs=10)


def test_a_full_batch_counts_every_training_row():
    """batch_size null: the workspace is for all N rows, plus fit's [X, 1] copy of them."""
    sizes = [784, 256, 10]
    small = memory.estimate(sizes, "float32", batch_size=32, optimizer_slots=2, n_train=54_000)
    full = memory.estimate(sizes, "float32", batch_size=None, optimizer_slots=2, n_train=54_000)
    per_row = (785 + 3 * 257 + 5 * 10) * 4
    assert full.workspace - small.workspace == 2 * (54_000 - 32) * per_row
    assert small.workspace > memory.estimate(sizes, "float32", batch_size=32, optimizer_slots=2).workspace


def test_available_reads_the_process_limit(tmp_path):
    """Under RLIMIT_AS, what is available is the limit less the process's virtual size."""
    code = ("import json, resource; from nnexp.core import memory; "
            f"resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT})); print(json.dumps(memory.available()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=isolated_env(tmp_path)).stdout
    free, where = json.loads(out)
    assert where.startswith("RLIMIT_AS 3.0 GB less the") and 0 < free < LIMIT
