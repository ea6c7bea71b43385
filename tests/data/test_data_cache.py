"""The parsed-array cache: served on the second load, invalidated by a changed source, never trusted blindly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnexp.data import cache, idx, load
from nnexp.data.files import sha256_file


@pytest.fixture
def parses(monkeypatch):
    """Count calls of the python-mnist parse (the cold path)."""
    calls = []
    original = idx.parse_pair
    monkeypatch.setattr(idx, "parse_pair", lambda *a: calls.append(a[0].path.name) or original(*a))
    return calls


@pytest.fixture
def root(tmp_path, make_idx_set):
    make_idx_set(tmp_path / "root" / "mnist")
    return tmp_path / "root"


def entries():
    return sorted(cache.cache_dir().glob("*.npy"))


def same(a, b):
    for (Xa, Ya), (Xb, Yb) in zip((a.train, a.val, a.test), (b.train, b.val, b.test)):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(Ya, Yb)


def test_second_load_is_served_from_the_cache(root, parses):
    first = load("mnist", root=root, download=False)
    assert parses == ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    assert len(entries()) == 4  # one per source file
    second = load("mnist", root=root, download=False)
    assert len(parses) == 2  # not parsed again
    same(first, second)


def test_cache_entries_are_memory_mapped_uint8(root):
    load("mnist", root=root, download=False)
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    arr = cache.lookup(sha256_file(path), (100, 28, 28))
    assert isinstance(arr, np.memmap) and arr.dtype == np.uint8 and not arr.flags.writeable


def test_changed_source_invalidates_the_cache(root, parses, write_idx):
    before = load("mnist", root=root, download=False, val_fraction=0, scaling="none")
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    new_images = np.full((100, 28, 28), 7, dtype=np.uint8)
    write_idx(path, new_images)
    after = load("mnist", root=root, download=False, val_fraction=0, scaling="none")
    assert parses == ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"]
    assert (after.train[0] == 7).all() and not (before.train[0] == 7).all()


def _garbage(path: Path):
    path.write_bytes(b"not a numpy file at all" * 10)


def _truncated(path: Path):
    path.write_bytes(path.read_bytes()[:-100])


def _empty(path: Path):
    path.write_bytes(b"")


def _appended(path: Path):
    path.write_bytes(path.read_bytes() + b"\0" * 16)


def _wrong_shape(path: Path):
    np.save(path, np.zeros((3, 3), dtype=np.uint8))


def _wrong_dtype(path: Path):
    arr = np.load(path)
    np.save(path, arr.astype(np.int64))


@pytest.mark.parametrize("damage", [_garbage, _truncated, _empty, _appended, _wrong_shape, _wrong_dtype])
def test_corrupt_cache_is_rebuilt(root, parses, damage):
    good = load("mnist", root=root, download=False)
    sha = sha256_file(root / "mnist" / "train-images-idx3-ubyte.gz")
    damage(cache.entry_path(sha))
    assert cache.lookup(sha, (100, 28, 28)) is None
    again = load("mnist", root=root, download=False)
    assert parses[-1] == "train-images-idx3-ubyte.gz" and len(parses) == 3
    same(good, again)
    assert cache.lookup(sha, (100, 28, 28)) is not None  # repaired


def test_unwritable_cache_still_loads(root, tmp_path, monkeypatch, parses):
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder cannot be made here")
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(blocker / "cache"))
    load("mnist", root=root, download=False)
    load("mnist", root=root, download=False)
    assert len(parses) == 4  # parsed each time, but no crash


def test_nothing_is_written_next_to_the_data(root):
    before = sorted(p.name for p in (root / "mnist").iterdir())
    load("mnist", root=root, download=False)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == before


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("NNEXP_CACHE_DIR")
    assert cache.cache_dir() == tmp_path / "xdg" / "nnexp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "nnexp"
