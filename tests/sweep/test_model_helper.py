"""The model helper (nnexp/tracking/model_helper.py) through the command line: a sweep's best
LoggedModel and a single run's model are logged by it, the driver logs them itself when the
helper is gone, the helper never outlives a killed driver, the one ``python -m nnexp`` starts
before Hydra is stopped by a sweep or run that logs no model, and it only takes CPU the jobs
leave idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnexp.sweep.tags import TAG_BEST_MODEL
from tests.reliability.helpers import (
    LONG_RUN,
    QUICK,
    alive,
    client_for,
    isolated_env,
    model_helper_pids,
    proc_stat,
    wait_for_epochs,
)

pytestmark = pytest.mark.slow


def _helper_of(driver: int, timeout: float = 30) -> int:
    """The pid of the driver's model helper, once it has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = model_helper_pids(driver)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no model helper under process {driver}")


def _imported(importtime_output: str) -> list[str]:
    """The modules ``python -X importtime`` reports importing, from its standard error."""
    return [line.split("|")[-1].strip() for line in importtime_output.splitlines()
            if line.startswith("import time:")]


def _sweep(tmp_path: Path, *args: str) -> subprocess.Popen:
    return _nnexp(tmp_path, "-m", *args)


def _nnexp(tmp_path: Path, *args: str, python_flags: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *python_flags, "-m", "nnexp", *args], cwd=tmp_path,
                            env=isolated_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _logged_models(tmp_path: Path):
    client = client_for(tmp_path)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client, client.search_logged_models(experiment_ids=ids)


def test_a_sweep_with_its_helper_logs_the_best_childs_model_and_the_helper_leaves(tmp_path):
    sweep = _sweep(tmp_path, "data=spiral", "epochs=3", "progress=false", "lr=0.01,0.001")
    helper = _helper_of(sweep.pid)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    assert not alive(helper)
    client, (model,) = _logged_models(tmp_path)
    parent = next(r for r in client.search_runs([model.experiment_id]) if r.data.tags.get("nnexp.sweep") == "parent")
    assert model.source_run_id == parent.data.tags["nnexp.best_run_id"]
    assert parent.data.tags[TAG_BEST_MODEL] == f"{model.source_run_id}:{model.model_id}"
    assert f"runs:/{model.source_run_id}/model" in out
    # (tests/tracking/test_logged_model.py loads the sweep's best model and predicts with it)


def _kill_the_helper_once_training(process: subprocess.Popen, tmp_path: Path) -> None:
    """SIGKILL the helper the run or sweep has taken (once epochs are logged: an early helper
    killed before that is replaced by a new one), and check that no other helper starts."""
    wait_for_epochs(tmp_path / "mlflow.db", process, n=2)
    killed = _helper_of(process.pid)
    os.kill(killed, signal.SIGKILL)
    while process.poll() is None:   # (the killed one is listed until it has died)
        assert set(model_helper_pids(process.pid)) <= {killed}, "a new model helper replaced the killed one"
        time.sleep(0.05)


def test_a_dead_helper_leaves_the_model_to_the_driver(tmp_path):
    sweep = _sweep(tmp_path, "data=spiral", "epochs=60", "data.n_per_class=2000", "early_stopping=off",
                   "progress=false", "diagnostics=off", "lr=0.01,0.001")
    _kill_the_helper_once_training(sweep, tmp_path)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    assert "sweep: 2 jobs: 2 finished" in out and "predict with the best child's model" in out
    assert "warning" not in err
    _, models = _logged_models(tmp_path)
    assert len(models) == 1


def test_the_helper_dies_with_a_killed_driver(tmp_path):
    sweep = _sweep(tmp_path, *LONG_RUN, "tracking.log_model=true", "seed=0,1")
    helper = _helper_of(sweep.pid)
    wait_for_epochs(tmp_path / "mlflow.db", sweep, n=2)
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(helper), f"the model helper {helper} outlived its killed driver"


@pytest.mark.parametrize("command", [("-m", "seed=0,1"), ()], ids=["sweep", "single run"])
def test_a_command_that_logs_no_model_stops_the_helper_started_before_hydra(tmp_path, command):
    process = _nnexp(tmp_path, *command, *LONG_RUN)       # LONG_RUN: tracking.log_model=false
    helper = _helper_of(process.pid)                       # started before the config is known
    try:
        wait_for_epochs(tmp_path / "mlflow.db", process, n=2)
        assert not alive(helper), "the early model helper outlived the start of a command without a model"
    finally:
        process.kill()
        process.communicate(timeout=30)


def _autogroup(pid: int) -> str:
    """The scheduling autogroup of ``pid`` (``/autogroup-<id>``), "" where it has none."""
    path = Path(f"/proc/{pid}/autogroup")
    words = path.read_text().split() if path.exists() else []
    return words[0] if words else ""


def test_the_helper_yields_the_cpu_to_the_jobs(tmp_path):
    """Nice 19 in the driver's session, in a process group of its own. A session of its own
    would be an autogroup of its own where the kernel schedules by autogroup (most
    distributions), and an equal share of the CPU whatever its nice value: it then took a core
    from the first job's BLAS threads. Its own process group keeps a Ctrl-C of the sweep's."""
    sweep = _sweep(tmp_path, *LONG_RUN, "tracking.log_model=true", "seed=0,1")
    try:
        helper = _helper_of(sweep.pid)
        deadline = time.monotonic() + 10
        while int(proc_stat(helper)[16]) != 19 and time.monotonic() < deadline:   # set as it starts
            time.sleep(0.05)
        driver, ours = proc_stat(sweep.pid), proc_stat(helper)
        assert ours[16] == "19"
        assert ours[3] == driver[3], "the helper has a session (and autogroup) of its own"
        assert ours[2] != driver[2], "the helper shares the sweep's process group (a Ctrl-C reaches it)"
        # "/autogroup-<id> nice <n>", or empty where the process is not scheduled by autogroup
        # (a cgroup of its own, as in containers): then nothing more to compare
        assert _autogroup(helper) == _autogroup(sweep.pid)
    finally:
        sweep.kill()
        sweep.communicate(timeout=30)


def test_a_single_run_logs_its_model_through_the_helper_without_importing_mlflow(tmp_path):
    """The run's own process never imports MLflow (``-X importtime`` lists the driver's imports,
    not the helper's): the LoggedModel in the store can only be the helper's. (The first run in
    a folder imports MLflow to create the store: one run without a model makes it first.)"""
    first = _nnexp(tmp_path, "data=spiral", *QUICK)
    first.communicate(timeout=120)
    assert first.returncode == 0
    run = _nnexp(tmp_path, "data=spiral", "epochs=5", "progress=false", python_flags=("-X", "importtime"))
    helper = _helper_of(run.pid)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-3000:]
    imported = _imported(err)
    assert "nnexp.app" in imported and not [m for m in imported if m.split(".")[0] == "mlflow"]
    assert not alive(helper)
    client, (model,) = _logged_models(tmp_path)
    assert f"runs:/{model.source_run_id}/model" in out
    assert client.get_run(model.source_run_id).info.status == "FINISHED"
    # (tests/tracking/test_logged_model.py loads a single run's model and predicts with it)


def test_a_single_run_whose_helper_died_logs_its_model_itself(tmp_path):
    run = _nnexp(tmp_path, "data=spiral", "epochs=60", "data.n_per_class=2000", "early_stopping=off",
                 "progress=false", "diagnostics=off")
    _kill_the_helper_once_training(run, tmp_path)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "predict with its model" in out and "warning" not in err
    _, models = _logged_models(tmp_path)
    assert len(models) == 1


def test_help_starts_no_helper(tmp_path):
    run = _nnexp(tmp_path, "--help", python_flags=("-X", "importtime"))
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0 and "python -m nnexp optimizer=adam" in out
    imported = _imported(err)
    assert "hydra" in imported and "nnexp.tracking.model_helper" not in imported
