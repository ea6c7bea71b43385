"""A sweep on a Ray cluster whose only CPUs are on a worker node in another working folder.

The head has no CPUs, so every job runs on the worker, whose processes start in the worker's
own folder with an environment that names no tracking store: a job finds its sweep (parent,
experiment, store) only from what the launcher ships with it. The store is the team server
(``mlflow server`` on PostgreSQL), so the jobs need no shared folder for their artifacts either.

Ray 2.60's GCS, raylet and agents listen on every interface whatever ``--node-ip-address``
says (``ss -ltnp`` shows ``*:PORT``). So the whole test (PostgreSQL, the MLflow server, both Ray
nodes and the sweep) runs in a private network namespace whose only interface is loopback
(``unshare -n``, as root): :func:`test_sweep_on_ray_cluster_logs_to_team_server` starts
pytest again there, on :func:`test_ray_cluster_sweep_in_a_private_network`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.infra.services import Missing, RayCluster, private_network_problem

pytestmark = pytest.mark.slow
JOBS, EPOCHS = 4, 5
# set in the private network namespace the test re-runs itself in
INSIDE = "NNEXP_TEST_PRIVATE_NETWORK"


def test_sweep_on_ray_cluster_logs_to_team_server(tmp_path):
    """The sweep below, in a network of its own (see the module docstring)."""
    if os.environ.get(INSIDE):
        pytest.skip("this is the namespace's own run of the test below")
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    problem = private_network_problem("Ray listens on every interface", (), "apt-get install util-linux iproute2")
    if problem:
        pytest.skip(problem)
    inner = f"{Path(__file__).relative_to(REPO)}::test_ray_cluster_sweep_in_a_private_network"
    command = ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "private-network",
               sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               "--basetemp", str(tmp_path / "inside"), inner]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, INSIDE: "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)   # the namespace's services die with its processes
        out, _ = process.communicate()
        raise AssertionError(f"the test in the private network did not end in 20 min:\n{out[-4000:]}") from None
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]   # -rs: the reason
    if skipped and " passed" not in out:
        pytest.skip(skipped[0])
    assert process.returncode == 0 and "1 passed" in out, out[-6000:]


@pytest.fixture
def ray_cluster(tmp_path, team_server):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install -e '.[ray]'")
    # the worker machine's own environment: nnexp importable, the team's credentials, no URI
    worker_env = {"PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO)),
                  "MLFLOW_TRACKING_USERNAME": team_server.admin,
                  "MLFLOW_TRACKING_PASSWORD": team_server.admin_password,
                  "MLFLOW_DISABLE_TELEMETRY": "true"}
    try:
        cluster = RayCluster(tmp_path / "ray", worker_cpus=2, worker_env=worker_env)
    except Missing as missing:
        pytest.skip(str(missing))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.mark.skipif(not os.environ.get(INSIDE), reason="run in a private network namespace by "
                    "test_sweep_on_ray_cluster_logs_to_team_server")
def test_ray_cluster_sweep_in_a_private_network(ray_cluster, team_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    driver = tmp_path / "driver"
    driver.mkdir()
    seeds = ",".join(str(s) for s in range(JOBS))
    result = run_cli("-m", "hydra/launcher=ray_cluster", "data=xor", f"epochs={EPOCHS}",
                     "early_stopping=off", "tracking.experiment=team_ray", f"seed={seeds}",
                     cwd=driver, env={**team_server.client_env(), **ray_cluster.auth_env,
                                      "RAY_ADDRESS": ray_cluster.address}, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "only this folder reaches" not in result.stderr  # a server URI: no warning
    for name, value in team_server.client_env().items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(team_server.url)
    experiment = client.get_experiment_by_name("team_ray")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == JOBS and len(runs) == JOBS + 1
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.params["seed"] for r in children} == {str(s) for s in range(JOBS)}
    for child in children:
        for key in [k for k in child.data.metrics if k.startswith(("train_", "val_"))]:
            assert len(client.get_metric_history(child.info.run_id, key)) == EPOCHS, key
        assert client.list_artifacts(child.info.run_id), "artifacts reached the server"
    assert parent.data.metrics.get("sweep_jobs") == JOBS, parent.data.metrics
    # the jobs ran on the worker node, not in the driver's folder
    assert not (driver / "mlruns").exists() and not (driver / "mlflow.db").exists()
    assert not any((tmp_path / "ray" / "worker").rglob("mlflow.db"))
