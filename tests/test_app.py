"""A run in-process (nnexp.app.run): what it records in MLflow, and how it ends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnexp import app
from nnexp.errors import ConfigError

FAST = ("epochs=3", "tracking.log_model=false")


def get_run(uri, run_id):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri).get_run(run_id)


def all_runs(uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def test_run_records_params_metrics_tags_and_artifacts(tracking_uri, compose):
    cfg = compose(*FAST, "optimizer=sgd", "lr=0.05")
    result = app.run(cfg, overrides=["optimizer=sgd", "lr=0.05"], show_progress=False)
    run = get_run(tracking_uri, result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "sgd-lr0.05-16x8"
    assert run.data.params["optimizer.name"] == "sgd"
    assert run.data.params["lr"] == "0.05"
    assert run.data.params["model.hidden"] == "[16, 8]"
    for key in ("test_loss", "test_acc", "best_val_loss", "best_epoch", "epochs_run"):
        assert math.isfinite(run.data.metrics[key]), key
    assert run.data.metrics["epochs_run"] == 3
    assert run.data.tags["nnexp.stop_reason"] == "completed"
    assert run.data.tags["nnexp.overrides"] == "optimizer=sgd lr=0.05"
    assert run.data.tags["nnexp.version"]
    assert run.data.tags["nnexp.blas_threads"].isdigit()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for metric in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"):
        history = client.get_metric_history(result.run_id, metric)
        assert [m.step for m in history] == [1, 2, 3], metric
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "learning_curves.png", "weights.npz"} <= names


def test_bad_value_raises_before_any_run_exists(tracking_uri, compose):
    with pytest.raises(ConfigError, match="lr must be"):
        app.run(compose("lr=-1"), show_progress=False)
    assert all_runs(tracking_uri) == []


def test_diverged_run_is_failed_with_its_curves_kept(tracking_uri, compose):
    cfg = compose("optimizer=sgd", "lr=1e6", "epochs=20", "model.activation=identity",
                  "tracking.log_model=false", "early_stopping=off")
    result = app.run(cfg, show_progress=False)
    assert result.stop_reason == "diverged"
    run = get_run(tracking_uri, result.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["nnexp.stop_reason"] == "diverged"
    assert "diverged" in run.data.tags["nnexp.error"]
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri).get_metric_history(result.run_id, "train_loss")


def test_error_during_training_fails_the_run(tracking_uri, compose, monkeypatch):
    import nnexp.core

    def broken_fit(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(nnexp.core, "fit", broken_fit)
    with pytest.raises(RuntimeError) as caught:
        app.run(compose(*FAST), show_progress=False)
    run = get_run(tracking_uri, caught.value.nnexp_run_id)
    assert run.info.status == "FAILED"
    assert "disk on fire" in run.data.tags["nnexp.error"]


def test_ctrl_c_during_training_kills_the_run_and_keeps_epochs(tracking_uri, compose, monkeypatch):
    import nnexp.core

    real_fit = nnexp.core.fit

    def interrupted_fit(*args, on_epoch, **kwargs):
        def stop_after_two(epoch, metrics):
            on_epoch(epoch, metrics)
            if epoch == 2:
                raise KeyboardInterrupt

        return real_fit(*args, on_epoch=stop_after_two, **kwargs)

    monkeypatch.setattr(nnexp.core, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        app.run(compose("epochs=10", "tracking.log_model=false"), show_progress=False)
    (run,) = all_runs(tracking_uri)
    assert run.info.status == "KILLED"
    from mlflow.tracking import MlflowClient

    steps = [m.step for m in MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "val_loss")]
    assert steps == [1, 2]


def test_same_config_and_seed_give_identical_histories(tracking_uri, compose):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    curves = []
    for _ in range(2):
        result = app.run(compose(*FAST), show_progress=False)
        curves.append([m.value for m in client.get_metric_history(result.run_id, "val_loss")])
    assert curves[0] == curves[1]


def test_resume_skips_a_finished_identical_config(tracking_uri, compose):
    first = app.run(compose(*FAST), show_progress=False)
    again = app.run(compose(*FAST, "tracking.resume=true"), show_progress=False)
    assert again.status == "SKIPPED" and again.run_id == first.run_id
    different = app.run(compose(*FAST, "tracking.resume=true", "seed=1"), show_progress=False)
    assert different.status == "FINISHED" and different.run_id != first.run_id


def test_gradcheck_mode_logs_errors_per_parameter(tracking_uri, compose):
    result = app.run(compose("mode=gradcheck", "model.activation=tanh"), show_progress=False)
    assert result.status == "FINISHED"
    run = get_run(tracking_uri, result.run_id)
    assert {"gradcheck_W1", "gradcheck_b1", "gradcheck_W3", "gradcheck_b3"} <= set(run.data.metrics)
    assert run.data.metrics["gradcheck_max"] < 1e-6


def test_default_run_is_strong_on_breast_cancer(tracking_uri, compose):
    result = app.run(compose("tracking.log_model=false"), show_progress=False)
    assert result.metrics["test_acc"] >= 0.97
    assert result.stop_reason in ("completed", "early_stopped")


def test_weights_artifact_loads_without_pickle(tracking_uri, compose, tmp_path):
    from mlflow.tracking import MlflowClient

    result = app.run(compose(*FAST), show_progress=False)
    path = MlflowClient(tracking_uri).download_artifacts(result.run_id, "weights.npz", str(tmp_path))
    with np.load(path, allow_pickle=False) as weights:
        assert len(weights.files) >= 6


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "accuracy"), [("xor", 1.0), ("spiral", 0.95), ("breast_cancer", 0.97)])
def test_experiment_presets_reproduce_the_tutorials(tracking_uri, compose, preset, accuracy):
    result = app.run(compose(f"experiment={preset}", "tracking.log_model=false"), show_progress=False)
    assert result.status == "FINISHED"
    assert result.metrics["test_acc"] >= accuracy


def test_opening_the_store_again_leaves_cyclic_garbage_collectable(tracking_uri):
    """The first open_store freezes MLflow's imports out of the garbage collector's reach; later
    opens (one per job of a long serial sweep) must not freeze each job's garbage with them."""
    import gc
    import weakref

    from nnexp.tracking import open_store

    open_store(tracking_uri, "gc")

    class Node:
        pass

    node = Node()
    node.itself = node  # a cycle: only the collector can free it
    alive = weakref.ref(node)
    del node
    open_store(tracking_uri, "gc")
    gc.collect()
    assert alive() is None


def test_sweep_jobs_share_one_read_only_data_set(compose):
    """Jobs of a sweep reuse the previous job's arrays when they ask for the same data; a single
    run, or another data config, loads afresh; nothing can write into shared arrays."""
    first = app.load_data(compose("optimizer=sgd"), reuse=True)
    again = app.load_data(compose("optimizer=adam", "lr=0.1"), reuse=True)   # other optimizer, same data
    assert again is first
    with pytest.raises(ValueError, match="read-only"):
        first.train[0][0, 0] = 1.0
    other_seed = app.load_data(compose("seed=1"), reuse=True)
    assert other_seed is not first and not np.array_equal(other_seed.train[0], first.train[0])
    assert app.load_data(compose("seed=1", "model.output=sigmoid", "model.loss=binary_cross_entropy"),
                         reuse=True).train[1].shape[1] == 1                   # targets follow the model
    single = app.load_data(compose("optimizer=sgd"))
    assert single is not first and single.train[0].flags.writeable
    np.testing.assert_array_equal(single.train[0], first.train[0])            # the same numbers
