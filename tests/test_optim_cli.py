"""The new optimizer, schedule, model and early-stopping options through the real command
line (``python -m nnexp ...`` subprocesses on the embedded breast_cancer data), checked
against the store and against the same config trained in this process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnexp import app, build
from nnexp.core import fit, load_npz
from tests.conftest import default_db, run_cli

pytestmark = pytest.mark.slow

QUICK = ["tracking.log_model=false", "progress=false"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with no tracking URI set: the default store is used."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def runs_in(cwd):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{default_db(cwd)}")
    return client, client.search_runs([e.experiment_id for e in client.search_experiments()])


def run_ok(cwd, *args):
    """Run the command line, expect one FINISHED run, return (client, run)."""
    cwd.mkdir(exist_ok=True)
    run_cli(*args, *QUICK, cwd=cwd, check=True)
    client, runs = runs_in(cwd)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return client, runs[0]


def logged(client, run, key):
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]


def weights_of(client, run, folder):
    folder.mkdir(exist_ok=True)
    return load_npz(client.download_artifacts(run.info.run_id, "weights.npz", str(folder)))


def steps_per_epoch(cfg):
    n = app.load_data(cfg).train[0].shape[0]
    return math.ceil(n / cfg["batch_size"])


def test_adamw_with_clipping_trains_as_the_python_api_does(workdir, compose):
    args = ["optimizer=adamw", "optimizer.weight_decay=0.05", "optimizer.clip_norm=1.0", "lr=0.01",
            "epochs=5", "early_stopping=off"]
    client, run = run_ok(workdir, *args)
    assert run.data.params["optimizer.name"] == "adamw"
    assert run.data.params["optimizer.clip_norm"] == "1.0"
    cfg = compose(*args, *QUICK)
    data = app.load_data(cfg)
    net = build.build_model(cfg, data.n_inputs, data.n_outputs)
    history = fit(net, build.build_optimizer(cfg), train=data.train, val=data.val, epochs=5,
                  batch_size=cfg["batch_size"], seed=cfg["seed"])
    assert logged(client, run, "train_loss") == pytest.approx(history.train_loss, rel=1e-12)
    unclipped = compose(*args[:2], "lr=0.01", "epochs=5", "early_stopping=off", *QUICK)
    other = fit(build.build_model(unclipped, data.n_inputs, data.n_outputs),
                build.build_optimizer(unclipped), train=data.train, epochs=5,
                batch_size=cfg["batch_size"], seed=cfg["seed"])
    assert other.train_loss != pytest.approx(history.train_loss, rel=1e-6)   # clipping bites
    assert logged(client, run, "lr") == [0.01] * 5


@pytest.mark.parametrize("args", [
    ["schedule=cosine", "schedule.warmup_steps=5", "schedule.min_lr=0.0001"],
    ["schedule=one_cycle"],
], ids=["cosine", "one_cycle"])
def test_per_step_schedules_log_the_rate_of_each_epochs_last_step(workdir, compose, args):
    args = [*args, "lr=0.01", "epochs=6", "early_stopping=off"]
    client, run = run_ok(workdir, *args)
    cfg = compose(*args, *QUICK)
    per_epoch = steps_per_epoch(cfg)
    schedule = build.build_optimizer(cfg).schedule
    expected = [schedule(0.01, per_epoch * e - 1, 6 * per_epoch) for e in range(1, 7)]
    rates = logged(client, run, "lr")
    assert rates == pytest.approx(expected, rel=1e-12)
    assert len(set(rates)) == 6 and rates[-1] < 0.01 / 10      # it changes, and ends low


@pytest.mark.parametrize("args, key", [
    (["schedule=cosine", "schedule.min_lr=-1"], "schedule.min_lr"),
    (["schedule=one_cycle", "schedule.pct_start=0"], "schedule.pct_start"),
    (["optimizer.clip_norm=0"], "optimizer.clip_norm"),
    (["optimizer=adamw", "optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
    (["model.init=normal", "+model.init_kwargs.std=-1"], "std must be a finite number > 0"),
    (["+model.activation_kwargs.slope=0.2"], "unknown option 'slope' for activation 'relu'"),
    (["model.init_kwargs.std=0.5"], "+model.init_kwargs.std=0.5"),   # Hydra: adding needs a +
])
def test_bad_values_exit_2_with_one_line_naming_the_key_and_no_run(workdir, args, key):
    result = run_cli(*args, *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nnexp: error:") and key in lines[0], result.stderr
    if default_db(workdir).exists():
        assert runs_in(workdir)[1] == []


def test_init_and_activation_options_change_the_network(workdir):
    args = ["model.init=normal", "model.activation=leaky_relu", "+model.activation_kwargs.slope=0.2",
            "optimizer=sgd", "lr=1e-9", "epochs=1", "early_stopping=off"]  # ~ the initial weights
    wide = run_ok(workdir / "a", *args, "+model.init_kwargs.std=0.5")
    narrow = run_ok(workdir / "b", *args)
    net = weights_of(*wide, workdir / "wa")
    assert net.activation_kwargs == {"slope": 0.2} and net.init_kwargs == {"std": 0.5}
    assert net.weights[0].std() == pytest.approx(0.5, rel=0.1)          # 30 x 16 draws
    assert weights_of(*narrow, workdir / "wb").weights[0].std() == pytest.approx(0.01, rel=0.1)


def test_restore_best_false_keeps_the_last_epochs_weights(workdir, compose):
    args = ["optimizer=sgd", "lr=0.3", "epochs=60", "early_stopping.patience=3"]
    kept = {}
    for restore in ("true", "false"):
        client, run = run_ok(workdir / restore, *args, f"early_stopping.restore_best={restore}")
        assert run.data.tags["nnexp.stop_reason"] == "early_stopped"
        m = run.data.metrics
        assert m["best_epoch"] < m["epochs_run"]                   # best and last differ
        kept[restore] = (weights_of(client, run, workdir / f"w{restore}"), m)
    # the same training in this process: best-epoch and last-epoch weights
    cfg = compose(*args, "early_stopping.restore_best=false", *QUICK)
    data = app.load_data(cfg)
    net = build.build_model(cfg, data.n_inputs, data.n_outputs)
    history = fit(net, build.build_optimizer(cfg), train=data.train, val=data.val, epochs=60,
                  batch_size=cfg["batch_size"], early_stopping=build.build_early_stopping(cfg),
                  seed=cfg["seed"])
    best = np.concatenate([p.ravel() for p in history.best_params])
    np.testing.assert_allclose(kept["false"][0].flat, net.flat, rtol=1e-12)
    np.testing.assert_allclose(kept["true"][0].flat, best, rtol=1e-12)
    assert np.abs(net.flat - best).max() > 1e-6
    for restore, (weights, metrics) in kept.items():   # test scores are of the kept weights
        loss, acc = weights.evaluate(*data.test)
        assert metrics["test_loss"] == pytest.approx(loss, rel=1e-9), restore
