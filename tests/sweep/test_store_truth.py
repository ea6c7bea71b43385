"""The store is the sweep's truth (issue 13): each sweep its own parent and folder, children in
the parent's store and experiment, refusals before any job, the job context, compare's errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import run_cli

TINY = ("data=spiral", "epochs=2", "tracking.log_model=false", "progress=false")


def client_for(folder):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")


def runs_of(client):
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def parents(client):
    return [r for r in runs_of(client) if r.data.tags.get("nnexp.sweep") == "parent"]


def children_of(client, parent):
    return [r for r in runs_of(client) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_job_context_round_trips_any_uri_and_name_through_hydra_overrides():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nnexp.sweep.context import JobContext

    context = JobContext("abc", "exp 'x', ${y}", "http://u:p@h:1/x?a=1&b=2", "/data root", 1, "h", "/w", "i")
    (override, data) = OverridesParser.create().parse_overrides(context.overrides())
    assert JobContext.decode(override.value()) == context
    assert data.value() == "/data root"


def test_relative_sqlite_uri_is_made_absolute(tmp_path):
    from nnexp.sweep.context import absolute_uri

    assert absolute_uri("sqlite:///mlruns/mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert absolute_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert absolute_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_two_sweeps_started_at_once_from_one_folder_keep_their_own_children(workdir):
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    first = subprocess.Popen([sys.executable, "-m", "nnexp", "-m", "lr=0.01,0.001", *TINY], cwd=workdir,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen([sys.executable, "-m", "nnexp", "-m", "optimizer=sgd,momentum,adam", *TINY],
                              cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    client = client_for(workdir)
    by_swept = {p.data.tags["nnexp.swept"]: p for p in parents(client)}
    assert set(by_swept) == {"lr", "optimizer"}
    lr_children = children_of(client, by_swept["lr"])
    opt_children = children_of(client, by_swept["optimizer"])
    assert sorted(c.data.params["lr"] for c in lr_children) == ["0.001", "0.01"]
    assert sorted(c.data.params["optimizer.name"] for c in opt_children) == ["adam", "momentum", "sgd"]
    assert by_swept["lr"].data.metrics["sweep_jobs"] == 2
    assert by_swept["optimizer"].data.metrics["sweep_jobs"] == 3
    folders = {p.data.tags["nnexp.sweep_dir"] for p in by_swept.values()}
    assert len(folders) == 2   # one folder each, even when started in the same second


@pytest.mark.slow
def test_a_data_sweep_is_filed_under_the_data_sets_it_used(workdir):
    run_cli("-m", "data=spiral,xor", "epochs=2", "tracking.log_model=false", "progress=false",
            cwd=workdir, check=True)
    client = client_for(workdir)
    names = {e.name for e in client.search_experiments()}
    assert "breast_cancer" not in names
    experiment = client.get_experiment_by_name("spiral+xor")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and sorted(r.data.params.get("data.name", "") for r in runs) == ["", "spiral", "xor"]


@pytest.mark.slow
def test_job_folders_with_chdir_still_write_into_the_parents_store(workdir):
    run_cli("-m", "lr=0.01,0.001", *TINY, "hydra.job.chdir=true", cwd=workdir, check=True)
    (parent,) = parents(client_for(workdir))
    assert len(children_of(client_for(workdir), parent)) == 2
    assert not list((workdir / "multirun").glob("**/mlflow.db"))   # no store in a job folder


@pytest.mark.slow
@pytest.mark.parametrize("swept", ["tracking.experiment=a,b", "tracking.uri=sqlite:///a.db,sqlite:///b.db"])
def test_sweeping_where_runs_go_is_refused_before_any_job(workdir, swept):
    result = run_cli("-m", swept, *TINY, cwd=workdir)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be swept" in lines[0], result.stderr
    assert not (workdir / "mlflow.db").exists() and not (workdir / "a.db").exists()


@pytest.mark.slow
def test_compare_answers_bad_ids_and_folders_in_one_line(workdir):
    run_cli("-m", "lr=0.01,0.001", *TINY, cwd=workdir, check=True)
    run_cli(*TINY, cwd=workdir, check=True)
    client = client_for(workdir)
    single = [r for r in runs_of(client) if "mlflow.parentRunId" not in r.data.tags
              and r.data.tags.get("nnexp.sweep") != "parent"][0]

    def compare(*args):
        return subprocess.run([sys.executable, "-m", "nnexp.compare", *args], cwd=workdir,
                              capture_output=True, text=True, timeout=120)

    for args, expected in ((("--sweep", "0" * 32), "no run"), (("--sweep", single.info.run_id), "not a sweep's parent"),
                           (("--out", "/proc/x"), "cannot write to /proc/x")):
        result = compare(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert not list(workdir.glob("outputs/compare/*/comparison.csv"))
    ok = compare()
    assert ok.returncode == 0 and "2 runs" in ok.stdout and "learning_curves.png" in ok.stdout
