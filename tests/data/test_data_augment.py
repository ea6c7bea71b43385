"""Random image shifts against a per-sample reference written the obvious way."""

import numpy as np
import pytest

from nnexp.data.augment import image_shifter, shift_images


def shifted_by_hand(image: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """One (h, w) image moved by (dy, dx), pixel by pixel."""
    h, w = image.shape
    out = np.full((h, w), fill, image.dtype) if np.isscalar(fill) else fill.reshape(h, w).copy()
    for r in range(h):
        for c in range(w):
            if 0 <= r + dy < h and 0 <= c + dx < w:
                out[r + dy, c + dx] = image[r, c]
    return out


@pytest.mark.parametrize("max_shift", [0, 1, 2])
@pytest.mark.parametrize("fill", [0.0, "per_pixel"])
def test_every_row_is_its_image_moved_by_the_drawn_offset(max_shift, fill):
    rng = np.random.default_rng(3)
    h, w, n = 5, 7, 40
    X = rng.random((n, h * w))
    fill = rng.random(h * w) if fill == "per_pixel" else fill
    got = shift_images(X, (h, w), max_shift, np.random.default_rng(11), fill)
    offsets = np.random.default_rng(11).integers(-max_shift, max_shift + 1, size=(2, n))
    for i in range(n):
        want = shifted_by_hand(X[i].reshape(h, w), offsets[0, i], offsets[1, i], fill)
        np.testing.assert_array_equal(got[i].reshape(h, w), want)
    assert not np.shares_memory(got, X)


def test_offsets_cover_the_square_and_the_seed_repeats_them():
    X = np.arange(64, dtype=float).reshape(1, 64).repeat(2000, axis=0)
    a = shift_images(X, (8, 8), 2, np.random.default_rng(0))
    b = shift_images(X, (8, 8), 2, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert len({row.tobytes() for row in a}) == 25          # every (dy, dx) in [-2, 2]^2 seen
    c = shift_images(X, (8, 8), 2, np.random.default_rng(1))
    assert not np.array_equal(a, c)


def test_image_shifter_reuses_its_buffer_and_refuses_what_is_not_an_image():
    augment = image_shifter("digits", 1)
    X = np.random.default_rng(0).random((10, 64))
    first = augment(X, np.random.default_rng(0))
    second = augment(X, np.random.default_rng(1))
    assert first is second
    with pytest.raises(ValueError, match="image data sets only"):
        image_shifter("breast_cancer", 1)
    with pytest.raises(ValueError, match="whole number"):
        image_shifter("mnist", 1.5)
    with pytest.raises(ValueError, match="max_shift must be in"):
        shift_images(X, (8, 8), 8, np.random.default_rng(0))
