"""Sweeps end to end (subprocesses): parent and nested children, parallel jobs, failures,
resume and the Optuna search."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import default_db, run_cli

pytestmark = pytest.mark.slow

TINY = ("epochs=2", "tracking.log_model=false", "progress=false")


def store(cwd):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{default_db(cwd)}")


def parents_and_children(client):
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    parents = [r for r in runs if r.data.tags.get("nnexp.sweep") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_multirun_is_one_parent_with_nested_children_and_a_summary(workdir):
    run_cli("-m", "optimizer=sgd,adam", "lr=0.1,0.01", *TINY, cwd=workdir, check=True)
    client = store(workdir)
    (parent,), children = parents_and_children(client)
    assert len(children) == 4
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted((c.data.params["optimizer.name"], c.data.params["lr"]) for c in children) == [
        ("adam", "0.01"), ("adam", "0.1"), ("sgd", "0.01"), ("sgd", "0.1")]
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep_jobs"] == 4 and parent.data.metrics["sweep_finished"] == 4
    assert parent.data.tags["nnexp.best_run_id"] in {c.info.run_id for c in children}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.csv", "learning_curves.png", "score_vs_lr.png", "score_vs_optimizer.png"} <= artifacts
    table = client.download_artifacts(parent.info.run_id, "comparison.csv", str(workdir))
    rows = list(csv.DictReader(io.StringIO(Path(table).read_text())))
    assert len(rows) == 4 and float(rows[0]["best_val_loss"]) <= float(rows[-1]["best_val_loss"])

    compare = subprocess.run([sys.executable, "-m", "nnexp.compare"], cwd=workdir,
                             capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stderr
    assert "adam-lr0.1-16x8" in compare.stdout
    assert (workdir / "outputs" / "compare" / parent.info.run_id / "score_vs_lr.png").exists()


def test_parallel_joblib_sweep_loses_no_run_and_no_metric_point(workdir):
    epochs = 6
    run_cli("-m", "lr=0.1,0.05,0.02,0.01,0.005,0.002", f"epochs={epochs}", "tracking.log_model=false",
            "early_stopping=off", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", cwd=workdir,
            check=True, timeout=600)
    client = store(workdir)
    (parent,), children = parents_and_children(client)
    assert len(children) == 6
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["nnexp.blas_threads"] == "1"  # no oversubscribed cores
        for metric in ("train_loss", "val_loss", "val_acc", "lr", "epoch_seconds"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, metric)]
            assert sorted(steps) == list(range(1, epochs + 1)), (metric, steps)
    default = client.get_experiment_by_name("Default")
    if default is not None:
        assert client.search_runs([default.experiment_id]) == []


def test_one_diverging_and_one_failing_job_do_not_stop_the_others(workdir):
    result = run_cli("-m", "optimizer=sgd", "model.activation=identity", "early_stopping=off",
                     "lr=0.01,1e6", "model.hidden=[8],[0]", *TINY, cwd=workdir)
    # the failing jobs (zero-width model) make the exit status 1; the sweep still finishes
    assert result.returncode == 1, result.stderr
    assert "failed" in result.stderr and "model.hidden" in result.stderr
    client = store(workdir)
    (parent,), children = parents_and_children(client)
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert metrics["sweep_jobs"] == 4
    assert metrics["sweep_failed"] == 2       # model.hidden=[0]: refused before a run exists
    assert metrics["sweep_diverged"] == 1     # lr=1e6
    assert metrics["sweep_finished"] == 1
    statuses = sorted(c.info.status for c in children)
    assert statuses == ["FAILED", "FINISHED"]
    table = client.download_artifacts(parent.info.run_id, "comparison.csv", str(workdir))
    assert Path(table).read_text().count("failed") == 2


def test_resume_skips_finished_children(workdir):
    args = ("-m", "lr=0.1,0.01", *TINY, "tracking.resume=true")
    run_cli(*args, cwd=workdir, check=True)
    second = run_cli(*args, cwd=workdir, check=True)
    client = store(workdir)
    parents, children = parents_and_children(client)
    assert len(parents) == 1 and len(children) == 2     # nothing trained twice, same parent
    assert parents[0].data.metrics["sweep_skipped"] == 2
    assert "2 skipped" in second.stdout
    # a new value in the same sweep is the only job that trains
    run_cli("-m", "lr=0.1,0.01,0.001", *TINY, "tracking.resume=true", cwd=workdir, check=True)
    parents, children = parents_and_children(client)
    assert len(children) == 3


def test_optuna_sweep_file_runs_trials_end_to_end(workdir):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    result = run_cli("-m", "+sweep=optuna_search", "hydra.sweeper.n_trials=3", *TINY, cwd=workdir,
                     check=True, timeout=600)
    assert "Best value" in result.stdout + result.stderr
    (parent,), children = parents_and_children(store(workdir))
    assert len(children) == 3
    assert {c.data.params["group.model"] for c in children} <= {"wide", "small", "deep"}


def test_the_joblib_launcher_reuses_the_warmed_up_workers():
    """The warm-up only pays if Hydra's joblib launcher runs its jobs in the very processes it
    warmed: joblib reuses workers only for identical Parallel arguments. The launcher's are
    taken here the way Hydra makes them: the plugin instantiated from the composed config,
    then ``launch``'s own adjustments. Nothing waits for the warm-up: the launcher's call
    comes while the workers are still importing, and must queue on the same workers."""
    import copy
    import os

    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg
    from joblib import Parallel, delayed

    from nnexp.sweep import warm_up_workers

    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        config = compose(config_name="config", return_hydra_config=True,
                         overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    launcher_arguments = copy.deepcopy(instantiate(config.hydra.launcher).joblib)
    launcher_arguments["backend"] = "loky"
    process_joblib_cfg(launcher_arguments)
    warming = warm_up_workers(config)       # its workers take about a second to import
    job_pids = set(Parallel(**launcher_arguments)(delayed(os.getpid)() for _ in range(6)))
    warming.join(120)
    assert len(warming.worker_pids) == 2 and os.getpid() not in warming.worker_pids
    # (quick tasks may all land on one worker; new workers would have new pids)
    assert job_pids and job_pids <= warming.worker_pids


def test_no_warm_up_for_the_basic_launcher_or_one_job():
    from hydra import compose, initialize_config_module

    from nnexp.sweep import warm_up_workers

    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        basic = compose(config_name="config", return_hydra_config=True)
        one_job = compose(config_name="config", return_hydra_config=True,
                          overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=1"])
    assert warm_up_workers(basic) is None
    assert warm_up_workers(one_job) is None


@pytest.mark.parametrize("task,preloaded", [
    (["seed=0,1,2", "data=mnist"], True), (["lr=0.1,0.01"], True),
    (["data=spiral,xor"], False), (["dtype=float32,float64"], False), (["data.limit=100,200"], False),
    (["+experiment=mnist_relu,mnist_sigmoid_bn"], False)])
def test_workers_load_the_data_only_when_no_job_can_differ_in_it(task, preloaded):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from nnexp.sweep.workers import jobs_data

    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        config = compose(config_name="config", return_hydra_config=True, overrides=["data=mnist", "dtype=float32"])
    OmegaConf.update(config, "hydra.overrides.task", task, force_add=True)
    found = jobs_data(config)
    assert (found is not None) == preloaded
    if preloaded:
        assert found["data"]["name"] == "mnist" and found["dtype"] == "float32" and found["seed"] == 0


@pytest.mark.parametrize("overrides,threads", [
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "1"),
    (["hydra/launcher=pool", "hydra.launcher.n_jobs=-1"], "1"),
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=2"], "2"),
    (["hydra/launcher=submitit_local"], None),    # no CPU count asked for: left alone
    ([], None)])
def test_parallel_jobs_get_the_blas_threads_of_their_cpus(overrides, threads, monkeypatch):
    from hydra import compose, initialize_config_module

    from nnexp.sweep.workers import BLAS_THREAD_VARIABLES, limit_blas_threads

    if any("submitit" in o for o in overrides):
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    with initialize_config_module(config_module="nnexp.conf", version_base="1.3"):
        config = compose(config_name="config", return_hydra_config=True, overrides=overrides)
    for variable in BLAS_THREAD_VARIABLES:   # unset, and restored after the test (monkeypatch
        monkeypatch.setenv(variable, "x")    # records only a variable that it found set)
        monkeypatch.delenv(variable)
    limit_blas_threads(config)
    assert {os.environ.get(v) for v in BLAS_THREAD_VARIABLES} == {threads}
