"""Saving and loading networks as .npz files without pickle."""

import json
import os

import numpy as np
import pytest

from nnexp.core import MLP, load_npz


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_keeps_weights_architecture_and_predictions(tmp_path, dtype):
    net = MLP([4, 6, 5, 1], activation="leaky_relu", output="sigmoid", loss="binary_cross_entropy",
              init="uniform", init_kwargs={"epsilon": 0.3}, activation_kwargs={"slope": 0.05},
              dtype=dtype, seed=7)
    path = tmp_path / "model.npz"
    net.save_npz(path)
    loaded = MLP.load_npz(path)
    assert loaded.config() == net.config()
    assert loaded.layers[0].activation.slope == 0.05 and loaded.dtype == net.dtype
    for a, b in zip(loaded.params, net.params):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    X = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert load_npz(str(path)).config() == net.config()


def test_the_file_is_plain_arrays_and_json(tmp_path):
    path = tmp_path / "m.npz"
    MLP([3, 2]).save_npz(path)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["W1", "architecture", "b1"]
        header = json.loads(str(archive["architecture"][()]))
        assert archive["architecture"].shape == () and archive["architecture"].dtype.kind == "U"
    assert header["sizes"] == [3, 2] and header["format"] == "nnexp.mlp"


def test_saving_replaces_atomically_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "model.npz"
    MLP([3, 4, 2], seed=0).save_npz(path)
    MLP([3, 4, 2], seed=1).save_npz(path)                 # overwrite in place
    assert os.listdir(tmp_path) == ["model.npz"]
    np.testing.assert_array_equal(MLP.load_npz(path).flat, MLP([3, 4, 2], seed=1).flat)


def test_a_file_with_an_object_array_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    good = tmp_path / "good.npz"
    MLP([3, 2]).save_npz(good)
    with np.load(good) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["W1"] = np.array([{"payload": 1}], dtype=object)      # would need pickle to load
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"cannot load network from '{path}'.*[Oo]bject arrays"):
        MLP.load_npz(path)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("architecture"), "no 'architecture' entry"),
    (lambda a: a.__setitem__("W1", np.zeros((2, 2))), "W1 is float64\\[2, 2\\]"),
    (lambda a: a.__setitem__("architecture", np.array("[1, 2]")), "not an nnexp.mlp file"),
])
def test_inconsistent_files_are_refused_with_the_file_named(tmp_path, change, message):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    MLP([3, 2]).save_npz(good)
    with np.load(good) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=f"cannot load network from '{bad}': {message}"):
        MLP.load_npz(bad)


def test_not_a_zip_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="cannot load network from"):
        MLP.load_npz(path)


def test_batch_norm_running_statistics_and_new_options_round_trip(tmp_path):
    from nnexp.core import SGD, fit

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(40, 4)) + 2.0, np.eye(3)[rng.integers(0, 3, 40)]
    net = MLP([4, 6, 5, 3], activation=["relu", "tanh"], batch_norm=[True, False],
              dropout=[0.1, 0.0], label_smoothing=0.1, seed=0)
    fit(net, SGD(lr=0.1), (X, Y), epochs=2, batch_size=8)
    path = tmp_path / "bn.npz"
    net.save_npz(path)
    loaded = MLP.load_npz(path)
    assert loaded.config() == net.config()
    assert set(loaded.buffers()) == {"running_mean1", "running_var1"}
    for name, a in net.buffers().items():
        assert not np.allclose(a, 0 if "mean" in name else 1)   # trained, not initial values
        np.testing.assert_array_equal(loaded.buffers()[name], a)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.evaluate(X, Y) == net.evaluate(X, Y)
