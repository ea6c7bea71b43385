"""IDX files written here (raw and gzipped) parse through python-mnist; every defect is a clear error."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from nnexp.data import idx, load
from nnexp.errors import DataError

rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
LABELS = (np.arange(12) % 10).astype(np.uint8)


def parse(images_path, labels_path):
    return idx.parse_pair(
        idx.read_header(images_path, idx.IMAGES_MAGIC), idx.read_header(labels_path, idx.LABELS_MAGIC)
    )


def assert_one_line_about(error: pytest.ExceptionInfo, path, *fragments):
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message or path.name in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("images_gz,labels_gz", [(False, False), (True, True), (False, True)])
def test_files_load_through_python_mnist(tmp_path, write_idx, images_gz, labels_gz):
    img = write_idx(tmp_path / ("img.gz" if images_gz else "img"), IMAGES)
    lbl = write_idx(tmp_path / ("lbl.gz" if labels_gz else "lbl"), LABELS)
    images, labels = parse(img, lbl)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (12,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)


def test_python_mnist_is_really_the_parser(tmp_path, write_idx, monkeypatch):
    from mnist import MNIST

    calls = []
    original = MNIST.load
    monkeypatch.setattr(MNIST, "load", lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    parse(write_idx(tmp_path / "img.gz", IMAGES), write_idx(tmp_path / "lbl.gz", LABELS))
    assert len(calls) == 1


def test_non_square_images(tmp_path, write_idx):
    images = rng.integers(0, 256, (5, 3, 7), dtype=np.uint8)
    got, _ = parse(write_idx(tmp_path / "img", images), write_idx(tmp_path / "lbl", LABELS[:5]))
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic(tmp_path, write_idx, gz):
    img = write_idx(tmp_path / ("img.gz" if gz else "img"), IMAGES, magic=0x1234)
    with pytest.raises(DataError) as e:
        idx.read_header(img, idx.IMAGES_MAGIC)
    assert_one_line_about(e, img, "magic number 4660", "expected 2051")


def test_labels_given_as_images(tmp_path, write_idx):
    lbl = write_idx(tmp_path / "lbl", LABELS)
    with pytest.raises(DataError) as e:
        idx.read_header(lbl, idx.IMAGES_MAGIC)
    assert_one_line_about(e, lbl, "not an IDX image file")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_images(tmp_path, write_idx, gz):
    img = write_idx(tmp_path / ("img.gz" if gz else "img"), IMAGES, cut=100)
    lbl = write_idx(tmp_path / "lbl", LABELS)
    with pytest.raises(DataError) as e:
        parse(img, lbl)
    assert_one_line_about(e, img, "truncated", f"needs {16 + IMAGES.size} bytes", f"holds {16 + IMAGES.size - 100}")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_labels(tmp_path, write_idx, gz):
    img = write_idx(tmp_path / "img", IMAGES)
    lbl = write_idx(tmp_path / ("lbl.gz" if gz else "lbl"), LABELS, cut=3)
    with pytest.raises(DataError) as e:
        parse(img, lbl)
    assert_one_line_about(e, lbl, "truncated")


def test_truncated_header(tmp_path):
    img = tmp_path / "img"
    img.write_bytes(idx.IMAGES_MAGIC.to_bytes(4, "big") + b"\0\0\0\1")
    with pytest.raises(DataError) as e:
        idx.read_header(img, idx.IMAGES_MAGIC)
    assert_one_line_about(e, img, "truncated inside its header")


def test_empty_file(tmp_path):
    img = tmp_path / "img"
    img.write_bytes(b"")
    with pytest.raises(DataError) as e:
        idx.read_header(img, idx.IMAGES_MAGIC)
    assert_one_line_about(e, img, "truncated")


def test_too_long(tmp_path, write_idx):
    img = write_idx(tmp_path / "img", IMAGES)
    img.write_bytes(img.read_bytes() + b"\0" * 5)
    with pytest.raises(DataError) as e:
        parse(img, write_idx(tmp_path / "lbl", LABELS))
    assert_one_line_about(e, img, "too long")


def test_count_mismatch(tmp_path, write_idx):
    img = write_idx(tmp_path / "img", IMAGES)
    lbl = write_idx(tmp_path / "lbl", LABELS[:10])
    with pytest.raises(DataError) as e:
        parse(img, lbl)
    assert_one_line_about(e, img, "12 images but 10 labels")


def test_broken_gzip_cut_short(tmp_path, write_idx):
    img = write_idx(tmp_path / "img.gz", IMAGES)
    img.write_bytes(img.read_bytes()[:-40])  # a download that stopped early
    with pytest.raises(DataError) as e:
        parse(img, write_idx(tmp_path / "lbl", LABELS))
    assert_one_line_about(e, img, "not a valid gzip file")


def test_broken_gzip_corrupt_bytes(tmp_path, write_idx):
    img = write_idx(tmp_path / "img.gz", IMAGES)
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 0xFF
    img.write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        parse(img, write_idx(tmp_path / "lbl", LABELS))
    assert_one_line_about(e, img, "not a valid gzip file")


def test_gzip_name_on_a_raw_file(tmp_path, write_idx):
    raw = write_idx(tmp_path / "img", IMAGES)
    named_gz = tmp_path / "img.gz"
    raw.rename(named_gz)
    with pytest.raises(DataError) as e:
        idx.read_header(named_gz, idx.IMAGES_MAGIC)
    assert_one_line_about(e, named_gz, "not gzip-compressed", "drop the .gz")


def test_gzip_of_garbage(tmp_path):
    bad = tmp_path / "img.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError) as e:
        idx.read_header(bad, idx.IMAGES_MAGIC)
    assert_one_line_about(e, bad, "not a valid gzip file")


# Through load(): the same defects in a data set folder name the file and the download command.


@pytest.mark.parametrize(
    "stem,damage,fragment",
    [
        ("train-images-idx3-ubyte", "cut", "truncated"),
        ("train-labels-idx1-ubyte", "cut", "truncated"),
        ("t10k-images-idx3-ubyte", "magic", "magic number"),
        ("t10k-labels-idx1-ubyte", "gzip", "not a valid gzip file"),
    ],
)
def test_load_reports_the_broken_file(tmp_path, make_idx_set, stem, damage, fragment):
    files = make_idx_set(tmp_path / "mnist")
    path, array = files[stem]
    raw = gzip.decompress(path.read_bytes())
    if damage == "cut":
        path.write_bytes(gzip.compress(raw[:-7]))
    elif damage == "magic":
        path.write_bytes(gzip.compress(b"\0\0\x08\x09" + raw[4:]))
    else:
        path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path, download=False)
    assert_one_line_about(e, path, fragment, "python -m nnexp.data download mnist")


def test_load_rejects_labels_out_of_range(tmp_path, make_idx_set, write_idx):
    files = make_idx_set(tmp_path / "mnist")
    path, labels = files["t10k-labels-idx1-ubyte"]
    bad = labels.copy()
    bad[3] = 10
    write_idx(path, bad)
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path, download=False)
    assert_one_line_about(e, path, "label 10", "10 classes")


def test_load_rejects_train_and_test_of_different_sizes(tmp_path, make_idx_set, write_idx):
    files = make_idx_set(tmp_path / "mnist")
    path, _ = files["t10k-images-idx3-ubyte"]
    write_idx(path, np.zeros((30, 20, 20), dtype=np.uint8))
    with pytest.raises(DataError, match=r"\(28, 28\) pixels but test images \(20, 20\)"):
        load("mnist", root=tmp_path, download=False)


def test_python_mnist_imports_under_w_error_when_first_compiled(tmp_path):
    # A fresh pycache prefix makes CPython compile python-mnist again, which is when it warns
    # about `is 'lists'` and `is not 2`; under -W error those warnings would fail the import.
    code = "from nnexp.data import idx; idx._mnist_reader(); print('ok')"
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
