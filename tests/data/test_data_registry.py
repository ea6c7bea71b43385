"""The load() contract for every registered data set, its options and its config file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from nnexp.data import DATASETS, Dataset, load
from nnexp.errors import DataError
from tests.data.conftest import options_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_data_set_meets_the_contract(name, dtype, fake_roots):
    ds = load(name, dtype=dtype, seed=1, **options_for(name, fake_roots))
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.dtype == np.dtype(dtype)
    assert isinstance(ds.class_names, tuple) and all(isinstance(c, str) for c in ds.class_names)
    assert ds.n_outputs == ds.n_classes == len(ds.class_names) >= 2
    for (X, Y), y in ((ds.train, ds.y_train), (ds.val, ds.y_val), (ds.test, ds.y_test)):
        assert X.dtype == Y.dtype == np.dtype(dtype)
        assert X.flags.c_contiguous and Y.flags.c_contiguous
        assert X.shape == (len(y), ds.n_inputs) and Y.shape == (len(y), ds.n_outputs)
        assert y.dtype == np.int64 and len(y) > 0
        np.testing.assert_array_equal(Y.argmax(axis=1), y)
        np.testing.assert_array_equal(Y.sum(axis=1), 1)
        assert np.isfinite(X).all()
    assert name in repr(ds)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_same_seed_same_arrays_other_seed_other_split(name, fake_roots):
    opts = options_for(name, fake_roots)
    a, b, c = load(name, seed=4, **opts), load(name, seed=4, **opts), load(name, seed=5, **opts)
    for part in ("train", "val", "test"):
        for x, y in zip(getattr(a, part), getattr(b, part)):
            np.testing.assert_array_equal(x, y)
    if name != "xor":  # xor has nothing random
        assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.train[0], c.train[0])


def test_config_files_match_the_registry():
    files = sorted((REPO / "conf" / "data").glob("*.yaml"))
    assert sorted(f.stem for f in files) == sorted(DATASETS)
    for f in files:
        config = yaml.safe_load(f.read_text())
        assert config.pop("name") == f.stem
        assert not {"seed", "dtype", "targets"} & set(config)  # the app passes those
        assert config.pop("augment") == {"shift": 0}   # fit's, not the loader's (build_augment)
        defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in DATASETS[f.stem].defaults.items()}
        assert config == defaults, f.name


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_config_file_loads(name, fake_roots):
    config = yaml.safe_load((REPO / "conf" / "data" / f"{name}.yaml").read_text())
    config.pop("name")
    config.pop("augment")   # applied by fit, not the loader
    config.update({k: v for k, v in options_for(name, fake_roots).items()})
    load(name, **config)


def test_xor_uses_all_four_cases_everywhere():
    ds = load("xor")
    for X, Y in (ds.train, ds.val, ds.test):
        np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
        np.testing.assert_array_equal(Y.argmax(axis=1), [0, 1, 1, 0])


def test_binary_targets():
    ds = load("breast_cancer", targets="binary", val_fraction=0)
    assert ds.n_outputs == 1 and ds.val is None and ds.y_val is None
    for (_, Y), y in ((ds.train, ds.y_train), (ds.test, ds.y_test)):
        assert Y.shape == (len(y), 1)
        np.testing.assert_array_equal(Y[:, 0], y)
    assert ds.class_names == ("benign", "malignant")
    assert load("xor", targets="binary").n_outputs == 1


def test_limit_subsamples_training_data_stratified(fake_roots):
    ds = load("mnist", root=fake_roots, download=False, limit=50, val_fraction=0.2)
    assert len(ds.y_train) == 40 and len(ds.y_val) == 10 and len(ds.y_test) == 30
    assert (np.bincount(ds.y_train, minlength=10) == 4).all()
    full = load("spiral", limit=10**6)
    assert len(full.y_train) + len(full.y_val) + len(full.y_test) == 300


def test_spiral_options():
    ds = load("spiral", n_classes=5, n_per_class=40, noise=0.0, val_fraction=0, test_fraction=0.25)
    assert ds.n_classes == 5 and len(ds.y_train) == 150 and len(ds.y_test) == 50
    assert np.bincount(ds.y_test).tolist() == [10] * 5
    radius = np.hypot(*ds.train[0].T)
    assert radius.max() <= 1 + 1e-12


def test_split_options_do_not_move_the_spiral():
    a = load("spiral", seed=2, val_fraction=0.1, scaling="none")
    b = load("spiral", seed=2, val_fraction=0.3, scaling="none")
    points = lambda ds: np.sort(np.concatenate([ds.train[0], ds.val[0], ds.test[0]]), axis=0)
    np.testing.assert_array_equal(points(a), points(b))


BAD = [
    ("breast_cancer", {"scaling": "zscore"}, "data.scaling must be one of standardize, minmax, none"),
    ("breast_cancer", {"val_fraction": 1.0}, "data.val_fraction must be a number in [0.0, 1.0)"),
    ("breast_cancer", {"val_fraction": -0.1}, "data.val_fraction"),
    ("breast_cancer", {"val_fraction": "0.2"}, "data.val_fraction"),
    ("breast_cancer", {"test_fraction": 0}, "data.test_fraction must be a number in (0.0, 1.0)"),
    ("breast_cancer", {"test_fraction": 1}, "data.test_fraction"),
    ("breast_cancer", {"limit": 0}, "data.limit must be an integer >= 1"),
    ("breast_cancer", {"limit": 2.5}, "data.limit"),
    ("breast_cancer", {"limit": True}, "data.limit"),
    ("breast_cancer", {"root": "x"}, "unknown data option data.root; valid options are scaling, val_fraction"),
    ("breast_cancer", {"colour": 1, "size": 2}, "unknown data option data.colour, data.size"),
    ("mnist", {"test_fraction": 0.2}, "unknown data option data.test_fraction"),
    ("mnist", {"download": "yes"}, "data.download must be true or false"),
    ("mnist", {"mirrors": "http://a/"}, "data.mirrors must be a non-empty list"),
    ("mnist", {"mirrors": []}, "data.mirrors"),
    ("mnist", {"mirrors": ["ftp://a/"]}, "data.mirrors"),
    ("mnist", {"root": 3}, "data.root must be a folder path or null"),
    ("xor", {"val_fraction": 0.1}, "unknown data option data.val_fraction; valid options are scaling"),
    ("spiral", {"n_classes": 1}, "data.n_classes must be an integer in [2, 1000]"),
    ("spiral", {"n_per_class": 1}, "data.n_per_class must be an integer in [2, 1000000]"),
    ("spiral", {"noise": -1}, "data.noise must be a number >= 0.0"),
    ("spiral", {"noise": float("nan")}, "data.noise"),
    ("breast_cancer", {"limit": 1}, "data.val_fraction=0.2 of 1 samples leaves none for training"),
    ("digits", {"targets": "binary"}, "digits has 10 classes but targets=binary needs exactly 2; use targets=one_hot"),
    ("digits", {"targets": "onehot"}, "targets must be one of one_hot, binary"),
    ("digits", {"dtype": "float16"}, "unknown dtype 'float16'; choose one of: float32, float64"),
    ("digits", {"dtype": "not a dtype"}, "unknown dtype 'not a dtype'; choose one of: float32, float64"),
    ("digits", {"seed": -1}, "seed must be a non-negative integer"),
    ("digits", {"seed": 1.5}, "seed must be a non-negative integer"),
    ("mnsit", {}, "unknown data set 'mnsit': choose one of breast_cancer, digits, mnist"),
]


@pytest.mark.parametrize("name,options,message", BAD, ids=[f"{n}-{','.join(o) or 'name'}" for n, o, _ in BAD])
def test_bad_options_name_the_option_and_the_valid_range(name, options, message):
    with pytest.raises(DataError) as e:
        load(name, **options)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_options_accept_numpy_scalars():
    ds = load("spiral", n_classes=np.int64(4), noise=np.float32(0.1), val_fraction=0, seed=np.int64(1))
    assert ds.n_classes == 4


def test_options_accept_an_omegaconf_list(fake_roots):
    omegaconf = pytest.importorskip("omegaconf")
    mirrors = omegaconf.OmegaConf.create(["http://127.0.0.1:9/"])  # what Hydra passes unconverted
    assert load("mnist", root=fake_roots, mirrors=mirrors).n_inputs == 784


def test_missing_scikit_learn_says_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    for name in ("breast_cancer", "digits"):
        with pytest.raises(DataError, match=r"install scikit-learn"):
            load(name)


def test_import_is_cheap():
    code = (
        "import sys, nnexp.data; "
        "print(sorted(m for m in ('sklearn', 'tqdm', 'urllib.request', 'mnist', 'http.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_embedded_data_is_read_without_importing_sklearn():
    code = "import sys; from nnexp.data import load; load('breast_cancer'); load('digits'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_bad_common_option_fails_before_fetching(tmp_path, dead_url):
    # root is empty and the mirror dead: a download attempt would give a different error
    with pytest.raises(DataError, match="data.val_fraction must be"):
        load("mnist", root=tmp_path, mirrors=[dead_url], val_fraction=2)
    assert not (tmp_path / "mnist").exists()
