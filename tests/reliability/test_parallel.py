"""Parallel load on one SQLite store: 8 jobs at once lose no run and no metric point, file
nothing under the wrong experiment and never fail with "database is locked"; and the same
config and seed give the same metric history under the basic and the joblib launcher."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.reliability.helpers import (
    EPOCH_METRICS, QUICK, all_runs, client_for, history, isolated_env, nnexp,
)

pytestmark = pytest.mark.slow

EPOCHS = 3   # QUICK trains 3 epochs
EIGHT_JOBS = ("seed=0,1,2,3", "lr=0.01,0.001")
JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=8")


def assert_nothing_lost(workdir, stderr: str, n_runs: int, experiment: str = "breast_cancer"):
    """Every run FINISHED in ``experiment`` with every epoch of every metric; none elsewhere."""
    assert "database is locked" not in stderr
    client = client_for(workdir)
    runs = [r for r in all_runs(client) if r.data.tags.get("nnexp.sweep") != "parent"]
    assert len(runs) == n_runs, [r.info.run_name for r in runs]
    expected = client.get_experiment_by_name(experiment).experiment_id
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags.get("nnexp.error")
        assert run.info.experiment_id == expected
        for key in EPOCH_METRICS:
            assert [s for s, _ in history(client, run.info.run_id, key)] == list(range(1, EPOCHS + 1)), key
    default = client.get_experiment_by_name("Default")
    if default is not None:
        assert client.search_runs([default.experiment_id]) == []
    return client, runs


def curves_by_job(client, runs) -> dict[str, dict[str, list[float]]]:
    """Each job's metric histories (all but wall-clock time), keyed by the job's overrides."""
    return {r.data.tags["nnexp.overrides"]: {key: [v for _, v in history(client, r.info.run_id, key)]
                                             for key in EPOCH_METRICS if key != "epoch_seconds"}
            for r in runs}


def test_eight_independent_processes_on_a_new_database(tmp_path):
    """No sweep callback to create the database first: eight ``python -m nnexp`` started at the
    same moment in a folder without ``mlruns/`` (raw MLflow breaks here: its schema migrations
    race)."""
    env = isolated_env(tmp_path)
    processes = [subprocess.Popen([sys.executable, "-m", "nnexp", *QUICK, f"seed={seed}"], cwd=tmp_path,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for seed in range(8)]
    outputs = [p.communicate(timeout=300) for p in processes]
    stderr = "\n".join(err for _, err in outputs)
    failed = {f"seed={seed} (exit {p.returncode})": err[-3000:] for seed, (p, (_, err))
              in enumerate(zip(processes, outputs)) if p.returncode != 0}
    assert not failed, failed   # each failing process's own stderr, labelled
    client, runs = assert_nothing_lost(tmp_path, stderr, 8)
    assert sorted(r.data.params["seed"] for r in runs) == [str(s) for s in range(8)]
    assert {e.name for e in client.search_experiments()} == {"Default", "breast_cancer"}


def test_joblib_sweep_of_eight_jobs_on_a_new_store(tmp_path):
    result = nnexp("-m", *EIGHT_JOBS, *QUICK, *JOBLIB, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "sweep: 8 jobs: 8 finished" in result.stdout
    assert_nothing_lost(tmp_path, result.stderr, 8)


def test_joblib_on_an_existing_store_gives_the_basic_launchers_histories(with_earlier_run):
    """The same eight jobs one after another (basic launcher), then all at once (joblib) in
    the same, existing store: sixteen runs, none lost, and pairwise identical histories."""
    workdir, before = with_earlier_run
    basic = nnexp("-m", *EIGHT_JOBS, *QUICK, cwd=workdir, timeout=600)
    assert basic.returncode == 0, basic.stderr
    parallel = nnexp("-m", *EIGHT_JOBS, *QUICK, *JOBLIB, cwd=workdir, timeout=600)
    assert parallel.returncode == 0, parallel.stderr
    client, runs = assert_nothing_lost(workdir, basic.stderr + parallel.stderr, 17)
    runs = [r for r in runs if r.info.run_id != before.run_id]
    parents = [r for r in all_runs(client) if r.data.tags.get("nnexp.sweep") == "parent"]
    assert len(parents) == 2
    by_parent = {p.info.run_id: [r for r in runs if r.data.tags["mlflow.parentRunId"] == p.info.run_id]
                 for p in parents}
    launchers = {p.data.tags["nnexp.launcher"].rsplit(".", 1)[-1]: curves_by_job(client, by_parent[p.info.run_id])
                 for p in parents}
    assert sorted(launchers) == ["BasicLauncher", "JoblibLauncher"]
    assert len(launchers["BasicLauncher"]) == 8
    assert launchers["BasicLauncher"] == launchers["JoblibLauncher"]
