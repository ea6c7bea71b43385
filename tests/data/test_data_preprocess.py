"""Splits keep class ratios; scaling statistics come from the training split only; targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnexp.data import load
from nnexp.data.preprocess import encode_targets, fit_scaler, stratified_split, transform


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=6).filter(lambda c: sum(c) > 0),
    share=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_split_partitions_and_keeps_ratios(counts, share, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(y)
    n_held = round(share * len(y))
    kept, held = stratified_split(y, n_held, np.random.default_rng(seed))
    assert len(held) == n_held
    np.testing.assert_array_equal(np.sort(np.concatenate((kept, held))), np.arange(len(y)))
    assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()
    # each class gives its exact quota, rounded: off by less than one sample
    quota = np.array(counts) * n_held / len(y)
    assert (np.abs(np.bincount(y[held], minlength=len(counts)) - quota) < 1).all()


def test_stratified_split_is_seeded():
    y = np.arange(1000) % 7
    a = stratified_split(y, 100, np.random.default_rng(1))
    b = stratified_split(y, 100, np.random.default_rng(1))
    c = stratified_split(y, 100, np.random.default_rng(2))
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_load_keeps_class_ratios_in_every_split():
    ds = load("breast_cancer", seed=3)
    overall = 212 / 569  # malignant
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert abs(y.mean() - overall) <= 1 / len(y)
    assert len(ds.y_test) == round(0.2 * 569) and len(ds.y_val) == round(0.2 * (569 - 114))


@pytest.mark.parametrize("name", ["breast_cancer", "digits", "spiral"])
def test_standardize_uses_training_statistics_only(name):
    raw = load(name, scaling="none", seed=5)
    std = load(name, scaling="standardize", seed=5)
    X = raw.train[0]
    mean, sd = X.mean(axis=0), X.std(axis=0)
    sd[sd == 0] = 1
    for (Xr, _), (Xs, _) in zip((raw.train, raw.val, raw.test), (std.train, std.val, std.test)):
        np.testing.assert_allclose(Xs, (Xr - mean) / sd, atol=1e-12)
    # the validation and test splits are not centred on their own statistics
    assert np.abs(std.test[0].mean(axis=0)).max() > 1e-3


def test_minmax_fitted_on_training_split():
    raw = load("breast_cancer", scaling="none", seed=1)
    mm = load("breast_cancer", scaling="minmax", seed=1)
    X = raw.train[0]
    low, high = X.min(axis=0), X.max(axis=0)
    np.testing.assert_allclose(mm.test[0], (raw.test[0] - low) / (high - low), atol=1e-12)
    assert mm.train[0].min() == 0 and mm.train[0].max() == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["standardize", "minmax"])
def test_zero_variance_features_are_safe(kind, dtype):
    rng = np.random.default_rng(0)
    X = np.column_stack((rng.normal(size=50), np.full(50, 3.7), np.zeros(50), np.full(50, 1e9)))
    out = transform(X, fit_scaler(kind, X), np.dtype(dtype))
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 1:], 0)


def test_minmax_with_known_range_maps_pixels_to_unit_interval():
    X = np.array([[0, 255, 128], [255, 0, 1]], dtype=np.uint8)
    out = transform(X, fit_scaler("minmax", X, value_range=(0, 255)), np.dtype(np.float32))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, X.astype(np.float32) / np.float32(255))
    assert out.max() == 1.0 and out.min() == 0.0


def test_none_only_casts():
    X = np.arange(6, dtype=np.uint8).reshape(3, 2)
    out = transform(X, fit_scaler("none", X), np.dtype(np.float64))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, X)


def test_encode_targets():
    y = np.array([2, 0, 1, 2])
    Y = encode_targets(y, 3, "one_hot", np.dtype(np.float32))
    assert Y.dtype == np.float32 and Y.shape == (4, 3)
    np.testing.assert_array_equal(Y.argmax(axis=1), y)
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    B = encode_targets(np.array([1, 0, 1]), 2, "binary", np.dtype(np.float64))
    np.testing.assert_array_equal(B, [[1.0], [0.0], [1.0]])
