"""load(..., reuse=True), what the jobs of a sweep in one process share (nnexp/data/kept.py): the
same arrays as a plain load, bit for bit; kept arrays read-only; a previous job's split written
over only once nobody holds it."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from nnexp.data import DATASETS, kept, load
from tests.data.conftest import options_for

PARTS = ("train", "val", "test")


@pytest.fixture(autouse=True)
def nothing_kept():
    kept.forget()
    yield
    kept.forget()


def _same(a, b):
    for part in PARTS:
        pa, pb = getattr(a, part), getattr(b, part)
        assert (pa is None) == (pb is None)
        for x, y in zip(pa or (), pb or ()):
            assert x.dtype == y.dtype and x.shape == y.shape and x.flags.c_contiguous
            np.testing.assert_array_equal(x, y)
    for name in ("y_train", "y_val", "y_test", "raw_example"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("options", [{}, {"limit": 40, "val_fraction": 0.25}, {"scaling": "standardize"},
                                     {"scaling": "none"}])
def test_reused_data_are_a_plain_loads_bit_for_bit(name, options, fake_roots):
    opts = options_for(name, fake_roots) | options
    if name == "xor":
        opts = {k: v for k, v in opts.items() if k not in ("limit", "val_fraction")}
    for seed in (0, 1, 0, 2):          # new seeds and a seed seen before, in one process
        for dtype in ("float32", "float64"):
            _same(load(name, seed=seed, dtype=dtype, reuse=True, **opts),
                  load(name, seed=seed, dtype=dtype, **opts))


def test_the_files_are_read_once_and_the_test_split_shared(fake_roots, monkeypatch):
    from nnexp.data import registry

    calls = []
    loader = DATASETS["mnist"]

    @functools.wraps(loader.fetch)   # the same options (Loader.defaults reads the signature)
    def fetch(**kw):
        calls.append(1)
        return loader.fetch(**kw)

    counting = registry.Loader(fetch, loader.split, loader.scaling, loader.val_fraction)
    monkeypatch.setitem(DATASETS, "mnist", counting)
    opts = {"root": fake_roots, "download": False}
    a = load("mnist", seed=0, dtype="float32", reuse=True, **opts)
    b = load("mnist", seed=1, dtype="float32", reuse=True, **opts)
    assert len(calls) == 1
    assert b.test[0] is a.test[0] and not a.test[0].flags.writeable
    assert not np.array_equal(a.y_train, b.y_train)      # the split follows the seed
    load("mnist", seed=1, dtype="float32", **opts)         # without reuse: read again
    assert len(calls) == 2


def test_a_split_still_held_is_never_written_over(fake_roots):
    opts = {"root": fake_roots, "download": False}
    held = load("mnist", seed=0, dtype="float32", reuse=True, **opts)
    before = held.train[0].copy()
    other = load("mnist", seed=1, dtype="float32", reuse=True, **opts)
    assert not np.shares_memory(other.train[0], held.train[0])
    np.testing.assert_array_equal(held.train[0], before)
    assert not held.train[0].flags.writeable and not other.train[0].flags.writeable


def test_a_split_nobody_holds_takes_the_next_jobs_rows(fake_roots):
    opts = {"root": fake_roots, "download": False}
    first = load("mnist", seed=0, dtype="float32", reuse=True, **opts)
    address = first.train[0].__array_interface__["data"][0]
    del first
    second = load("mnist", seed=1, dtype="float32", reuse=True, **opts)
    assert second.train[0].__array_interface__["data"][0] == address
    _same(second, load("mnist", seed=1, dtype="float32", **opts))
