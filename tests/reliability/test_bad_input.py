"""Bad input through the real command line: one line naming the problem, a non-zero exit, no
run created or left RUNNING, and the earlier run in the same store untouched.

Every case starts from a copy of a store that already holds one FINISHED run (made once per
session by the real command line).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from tests.data.conftest import STEMS, fake_images, idx_bytes, write_file
from tests.reliability.helpers import (
    QUICK, all_runs, assert_refused, assert_untouched, client_for, nnexp, one_error_line,
    snapshot,
)

pytestmark = pytest.mark.slow

# (id, extra command-line arguments, text the one-line message must contain)
CONFIG_CASES = [
    ("unknown_group_option", ["optimizer=adamx"], "Could not find 'optimizer/adamx'"),
    ("unknown_key", ["foo=1"], "unknown config key foo (python -m nnexp --cfg job lists every key)"),
    ("unknown_nested_key", ["model.widths=[4]"], "unknown config key model.widths"),
    ("misspelt_nested_key", ["model.hiden=[4]"], "unknown config key model.hiden (did you mean model.hidden?)"),
    ("unparsable_override", ["model.hidden=[16,"], "cannot parse the override 'model.hidden=[16,'"),
    ("wrong_type_lr", ["lr=abc"], "optimizer.lr must be a number, got 'abc'"),
    ("wrong_type_epochs", ["epochs=1.5"], "epochs must be a whole number >= 1, got 1.5"),
    ("negative_lr", ["lr=-0.1"], "optimizer.lr must be a finite number > 0, got -0.1"),
    ("zero_lr", ["lr=0"], "optimizer.lr must be a finite number > 0, got 0"),
    ("negative_epochs", ["epochs=-3"], "epochs must be a whole number >= 1, got -3"),
    ("batch_size_zero", ["batch_size=0"], "batch_size must be a whole number >= 1"),
    ("empty_model", ["model.hidden=[]"], "model.hidden must be a non-empty list"),
    ("zero_width_layer", ["model.hidden=[16,0]"], "model.hidden[1] must be an integer >= 1, got 0"),
    ("unknown_activation", ["model.activation=relux"], "model.activation: unknown activation 'relux'; choose one of"),
    ("impossible_output_loss", ["model.output=identity", "model.loss=cross_entropy"],
     "output 'identity' cannot be trained with loss 'cross_entropy'"),
    ("val_fraction_above_1", ["data.val_fraction=1.5"], "data.val_fraction must be a number in [0.0, 1.0), got 1.5"),
    ("val_fraction_1", ["data.val_fraction=1"], "data.val_fraction must be a number in [0.0, 1.0), got 1"),
    ("val_fraction_negative", ["data.val_fraction=-0.1"], "data.val_fraction must be a number in [0.0, 1.0)"),
    ("early_stopping_without_validation", ["data.val_fraction=0"], "early_stopping needs a validation set"),
    ("unknown_data_option", ["data=spiral", "+data.colour=red"], "unknown config key data.colour"),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_one_line_and_leaves_the_store_alone(with_earlier_run, args, expected):
    assert expected in assert_refused(*with_earlier_run, *args)


@pytest.mark.parametrize(("launcher", "expected"), [
    ("pool", "hydra.launcher.n_jobs must be a whole number >= 1, or -1 for one per CPU, got 0"),
    ("joblib", "hydra.launcher.n_jobs must be a whole number other than 0"),
])
def test_a_sweep_without_workers_is_refused_before_its_parent_exists(with_earlier_run, launcher, expected):
    workdir, before = with_earlier_run
    result = nnexp("-m", f"hydra/launcher={launcher}", "hydra.launcher.n_jobs=0", "lr=0.1,0.01",
                   *QUICK, cwd=workdir)
    assert result.returncode == 2
    assert expected in one_error_line(result)
    assert_untouched(workdir, before)


def test_the_debug_switch_shows_the_traceback(with_earlier_run):
    workdir, before = with_earlier_run
    result = nnexp("lr=-1", *QUICK, cwd=workdir, env={"NNEXP_DEBUG": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError: optimizer.lr must be a finite number > 0" in result.stderr
    assert_untouched(workdir, before)


# -- data ----------------------------------------------------------------------------------------
MNIST_OFFLINE = ("data=mnist", "data.download=false", "model.hidden=[8]", "batch_size=50")


def write_mnist(root, n_train=60, n_test=20) -> dict:
    """A small, valid MNIST-format set under ``root/mnist``; returns ``{stem: path}``."""
    train, test = fake_images(n_train, 0), fake_images(n_test, 1)
    return {stem: write_file(root / "mnist" / f"{stem}.gz", idx_bytes(array))
            for stem, array in zip(STEMS, (*train, *test))}


def truncate_images(files):
    data = idx_bytes(fake_images(60, 0)[0])
    write_file(files["train-images-idx3-ubyte"], data[:-100])


def garble_magic(files):
    data = bytearray(idx_bytes(fake_images(60, 0)[0]))
    data[2:4] = b"\x0d\x0e"
    write_file(files["train-images-idx3-ubyte"], bytes(data))


def not_gzip(files):
    files["t10k-labels-idx1-ubyte"].write_bytes(b"<html>mirror error page</html>")


def fewer_labels(files):
    write_file(files["train-labels-idx1-ubyte"], idx_bytes(fake_images(59, 0)[1]))


def label_out_of_range(files):
    labels = fake_images(20, 1)[1].copy()
    labels[3] = 42
    write_file(files["t10k-labels-idx1-ubyte"], idx_bytes(labels))


CORRUPT_IDX = [
    (truncate_images, "train-images-idx3-ubyte.gz is truncated"),
    (garble_magic, "is not an IDX image file"),
    (not_gzip, "is named .gz but is not gzip-compressed"),
    (fewer_labels, "60 images but 59 labels"),
    (label_out_of_range, "has label 42"),
]


def test_missing_data_files_are_named(with_earlier_run, tmp_path):
    workdir, before = with_earlier_run
    empty = tmp_path / "empty-root"
    empty.mkdir()
    result = nnexp(*MNIST_OFFLINE, f"data.root={empty}", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert f"missing from {empty / 'mnist'}" in line and "train-images-idx3-ubyte.gz" in line
    assert "data.download=false" in line
    assert_untouched(workdir, before)


@pytest.mark.parametrize(("damage", "expected"), CORRUPT_IDX, ids=[c[0].__name__ for c in CORRUPT_IDX])
def test_corrupt_idx_files_are_named(with_earlier_run, tmp_path, damage, expected):
    workdir, before = with_earlier_run
    root = tmp_path / "root"
    damage(write_mnist(root))
    result = nnexp(*MNIST_OFFLINE, f"data.root={root}", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert expected in line and str(root / "mnist") in line
    assert_untouched(workdir, before)


def test_a_corrupt_cache_entry_is_rebuilt_and_the_run_succeeds(with_earlier_run, tmp_path):
    """The one fault where exit 0 is right: the cache only saves time, and an entry that does
    not match its source is ignored, parsed again and rewritten."""
    from nnexp.data import cache

    workdir, before = with_earlier_run
    root = tmp_path / "root"
    write_mnist(root)
    args = (*MNIST_OFFLINE, f"data.root={root}", *QUICK)
    first = nnexp(*args, cwd=workdir)
    assert first.returncode == 0, first.stderr
    entries = sorted((workdir / "cache").glob("idx-*.npy"))
    assert len(entries) == 4
    damaged = {entries[0]: b"\x93NUMPY garbage", entries[1]: entries[1].read_bytes()[:-7]}
    for path, data in damaged.items():
        path.write_bytes(data)

    second = nnexp(*args, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    for path in damaged:  # rebuilt: a valid array again, of the shape its source announces
        assert np.load(path, allow_pickle=False).dtype == np.uint8
    client = client_for(workdir)
    runs = [r for r in all_runs(client) if r.info.run_id != before.run_id]
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    (a, b) = ([m.value for m in client.get_metric_history(r.info.run_id, "val_loss")] for r in runs)
    assert a == b  # the rebuilt cache gives the same arrays
    after = snapshot(workdir, before.run_id)
    assert (after.status, after.metrics, after.curves) == (before.status, before.metrics, before.curves)
    assert cache.FORMAT in entries[0].name


# -- the tracking store ----------------------------------------------------------------------------
def test_mlruns_folder_that_cannot_be_written(with_earlier_run):
    """Root ignores permission bits, so as root the folder is made immutable (chattr +i)."""
    workdir, before = with_earlier_run
    store = workdir / "mlruns"
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(store)]).returncode:
            pytest.skip("running as root without a working chattr: no way to make a folder unwritable")
        undo = ["chattr", "-i", str(store)]
    else:
        store.chmod(0o555)
        undo = ["chmod", "755", str(store)]
    try:
        result = nnexp(*QUICK, cwd=workdir)
    finally:
        subprocess.run(undo, check=True)
    assert result.returncode == 2, result.stderr
    assert f"the MLflow store {store / 'mlflow.db'} is not writable" in one_error_line(result)
    assert_untouched(workdir, before)


@pytest.mark.parametrize("make", ["file_where_folder_expected", "database_is_a_folder",
                                  "database_is_garbage", "under_proc", "in_proc"])
def test_tracking_store_that_cannot_be_used(with_earlier_run, make):
    workdir, before = with_earlier_run
    elsewhere = workdir / "elsewhere"
    if make == "file_where_folder_expected":
        elsewhere.write_text("a file where the store folder should be")
        db, expected = elsewhere / "mlflow.db", f"cannot create the MLflow store folder {elsewhere}"
    elif make == "database_is_a_folder":
        db = elsewhere / "mlflow.db"
        db.mkdir(parents=True)
        expected = f"the MLflow store {db} is not a usable SQLite database"
    elif make == "database_is_garbage":
        db = elsewhere / "mlflow.db"
        elsewhere.mkdir()
        db.write_bytes(b"this is not a database" * 100)
        expected = f"the MLflow store {db} is not a usable SQLite database"
    elif make == "under_proc":
        db, expected = "/proc/nnexp-test/mlflow.db", "cannot create the MLflow store folder /proc/nnexp-test"
    else:   # the folder exists and root may write to it, but it takes no new file
        db, expected = "/proc/mlflow.db", "cannot create files in the MLflow store folder /proc"
    result = nnexp(*QUICK, cwd=workdir, env={"MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
    assert result.returncode == 2, result.stderr
    assert expected in one_error_line(result)
    assert_untouched(workdir, before)


def test_artifact_folder_that_cannot_be_made(with_earlier_run):
    """mlruns/artifacts is a file: refused before the run starts (a new experiment, whose
    artifact folder would be mlruns/artifacts/xor)."""
    workdir, before = with_earlier_run
    artifacts = workdir / "mlruns" / "artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.write_text("a file where the artifact folder should be")
    result = nnexp("data=xor", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert f"cannot create the MLflow artifact folder {artifacts / 'xor'}" in one_error_line(result)
    assert_untouched(workdir, before)


MALFORMED_URIS = [
    ("not a uri", "is a folder, not a tracking URI"),
    ("foo://bar", "is not a tracking URI MLflow can use"),
    ("sqlite:///", "names no database file"),
    ("sqlite://", "names no database file"),          # in-memory: the run would vanish
    ("sqlite:relative.db", "names no database file"),
    ("http://", "names no server"),
    ("file:./mlruns", "MLflow's old file store"),
]


@pytest.mark.parametrize(("uri", "expected"), MALFORMED_URIS, ids=[u for u, _ in MALFORMED_URIS])
def test_malformed_tracking_uri(with_earlier_run, uri, expected):
    workdir, before = with_earlier_run
    result = nnexp(*QUICK, cwd=workdir, env={"MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert f"MLFLOW_TRACKING_URI={uri!r}" in line and expected in line
    assert_untouched(workdir, before)


def test_bad_group_option_in_a_sweep_is_refused_before_its_parent_exists(with_earlier_run):
    """The sweep's jobs are composed once before anything is written (nnexp.sweep.preflight):
    one line, exit 2, no parent run, no experiment, no folder, the earlier run untouched.
    Before, Hydra's own check came after the parent run existed and left it FAILED."""
    workdir, before = with_earlier_run
    result = nnexp("-m", "optimizer=sgd,adamx", *QUICK, cwd=workdir)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("nnexp:")]
    assert len(errors) == 1 and "Could not find 'optimizer/adamx'" in errors[0]
    assert "Traceback" not in result.stderr and "sweep: parent run" not in result.stdout
    assert not (workdir / "multirun").exists()
    assert_untouched(workdir, before)
