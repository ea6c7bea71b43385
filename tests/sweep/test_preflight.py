"""A sweep that cannot compose is refused before it touches anything (nnexp.sweep.preflight).

The defect: ``python -m nnexp -m optimizer=sgd,nosuch`` (or ``model.hiden=[4],[8]``, or
``+optimizer.foo=1`` on every job) printed Hydra's error, but only after the store, an
experiment, a FAILED parent run, ``mlruns/`` and a ``multirun/`` folder had been made. The bad option itself is
``tests/reliability/test_bad_input.py::test_bad_group_option_in_a_sweep_is_refused_before_its_parent_exists``.
"""

from __future__ import annotations

import hashlib

import pytest
from omegaconf import OmegaConf

from nnexp.sweep.preflight import probe_jobs
from tests.conftest import run_cli

GROUPS = {"optimizer", "model", "data", "sweep"}


def multirun_config(task: list[str], params: dict | None = None):
    """The parts of a multirun config probe_jobs reads."""
    return OmegaConf.create({"hydra": {"overrides": {"task": task},
                                       "sweeper": {"params": params}}})


def test_a_sweep_of_plain_values_needs_one_probe():
    probes = probe_jobs(multirun_config(["seed=0,1,2,3,4,5,6,7", "data=spiral", "lr=0.1,0.01"]),
                        GROUPS.__contains__)
    assert probes == [["seed=0", "data=spiral", "lr=0.1"]]


def test_every_swept_option_of_a_group_is_composed_once():
    probes = probe_jobs(multirun_config(["optimizer=sgd,adam,rmsprop", "lr=0.1,0.01", "model=small,wide"]),
                        GROUPS.__contains__)
    assert [p[0] for p in probes] == ["optimizer=sgd", "optimizer=adam", "optimizer=rmsprop"]
    assert {p[2] for p in probes} == {"model=small", "model=wide"}
    assert all(len(p) == 3 for p in probes)


def test_the_command_line_wins_over_the_sweepers_params_as_in_hydra():
    probes = probe_jobs(multirun_config(["optimizer=adam", "+extra=1"],
                                        {"optimizer": "sgd,momentum", "lr": "0.1,0.01"}),
                        GROUPS.__contains__)
    assert probes == [["optimizer=adam", "lr=0.1", "+extra=1"]]


def test_a_search_space_hydra_cannot_list_is_left_out():
    probes = probe_jobs(multirun_config([], {"optimizer": "choice(sgd, adam)",
                                             "lr": "tag(log, interval(0.0001, 0.1))"}),
                        GROUPS.__contains__)
    assert probes == [["optimizer=sgd"], ["optimizer=adam"]]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("overrides,says", [
    (["nosuch=1,2"], "unknown config key nosuch"),
    (["model.hiden=[4],[8]"], "unknown config key model.hiden (did you mean model.hidden?)"),
    (["optimizer=sgd,adam", "+optimizer.foo=1"], "unknown config key optimizer.foo"),
    (["optimizer=sgd,nosuch", "hydra/launcher=pool"], "Could not find 'optimizer/nosuch'"),
])
def test_a_sweep_that_cannot_compose_leaves_no_trace(migrated_store, overrides, says):
    workdir = migrated_store
    before = _digest(workdir / "mlflow.db")
    result = run_cli("-m", *overrides, "data=spiral", "epochs=1", "progress=false", cwd=workdir)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert "sweep: parent run" not in result.stdout
    assert _digest(workdir / "mlflow.db") == before            # the store is not touched
    assert sorted(p.name for p in workdir.iterdir()) == ["mlflow.db"]   # no mlruns/, no multirun/


@pytest.mark.slow
def test_no_store_is_created_for_a_refused_sweep(tmp_path):
    result = run_cli("-m", "optimizer=sgd,nosuch", "data=spiral", cwd=tmp_path)
    assert result.returncode == 2 and "Could not find 'optimizer/nosuch'" in result.stderr
    assert list(tmp_path.iterdir()) == []
