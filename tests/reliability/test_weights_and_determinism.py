"""Weights files load without pickle (a crafted file is refused without running its code), and
the same config and seed give identical metric histories and weights twice in a row."""

from __future__ import annotations

import ast
import pathlib
from pathlib import Path

import numpy as np
import pytest

import nnexp
from nnexp import app
from nnexp.core import MLP

FAST = ("epochs=4", "tracking.log_model=false", "progress=false")


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def crafted_weights(good: Path, path: Path, marker: Path) -> Path:
    """``good`` with W1 replaced by an object array holding :class:`Payload`."""
    with np.load(good, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["W1"] = np.array([Payload(marker)], dtype=object)
    np.savez(path, **arrays)                 # np.save pickles object arrays
    return path


@pytest.fixture
def logged_weights(tracking_uri, compose, tmp_path) -> Path:
    """weights.npz of a real run, downloaded from MLflow."""
    from mlflow.tracking import MlflowClient

    result = app.run(compose(*FAST), show_progress=False)
    return Path(MlflowClient(tracking_uri).download_artifacts(result.run_id, "weights.npz", str(tmp_path)))


def test_logged_weights_are_plain_arrays_loaded_without_pickle(logged_weights):
    with np.load(logged_weights, allow_pickle=False) as archive:
        assert all(archive[name].dtype.kind in "fU" for name in archive.files)
    net = MLP.load_npz(logged_weights)
    assert net.sizes == (30, 16, 8, 2)


def test_a_crafted_object_array_is_refused_and_runs_nothing(logged_weights, tmp_path):
    marker = tmp_path / "code-ran"
    evil = crafted_weights(logged_weights, tmp_path / "evil.npz", marker)
    with pytest.raises(ValueError, match=r"cannot load network from .*evil\.npz.*[Oo]bject arrays"):
        MLP.load_npz(evil)
    # the MLflow model loads its weights the same way
    from nnexp.tracking.pyfunc_model import NnexpModel

    class Context:
        artifacts = {"weights": str(evil)}

    with pytest.raises(ValueError, match="Object arrays cannot be loaded"):
        NnexpModel().load_context(Context())
    assert not marker.exists()
    with np.load(evil, allow_pickle=True) as archive:   # the file really carries a payload
        archive["W1"]
    assert marker.exists()


def test_every_np_load_in_nnexp_refuses_pickles():
    """A static guard: each ``np.load``/``numpy.load`` call in the package passes
    ``allow_pickle=False`` explicitly."""
    calls = []
    for source in Path(nnexp.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("np", "numpy")):
                flags = {k.arg: k.value for k in node.keywords}
                safe = isinstance(flags.get("allow_pickle"), ast.Constant) and flags["allow_pickle"].value is False
                calls.append((f"{source.name}:{node.lineno}", safe))
    assert calls and all(safe for _, safe in calls), calls


def test_same_config_and_seed_give_identical_histories_twice_in_a_row(tracking_uri, compose, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    cfg = compose(*FAST, "optimizer=momentum", "lr=0.05", "batch_size=16")
    runs = [app.run(cfg, show_progress=False) for _ in range(2)]
    assert runs[0].run_id != runs[1].run_id
    curves = []
    for result in runs:
        keys = [k for k in client.get_run(result.run_id).data.metrics if k != "epoch_seconds"]
        curves.append({k: [(m.step, m.value) for m in client.get_metric_history(result.run_id, k)]
                       for k in keys})
    assert curves[0] == curves[1] and len(curves[0]["val_loss"]) == 4
    weights = [MLP.load_npz(client.download_artifacts(r.run_id, "weights.npz", str(tmp_path / r.run_id)))
               for r in runs]
    np.testing.assert_array_equal(weights[0].flat, weights[1].flat)
