"""Training-set augmentation for image data: random translations, drawn anew every epoch.

A flattened image ``x`` of shape ``(h * w,)`` is read as ``img[r, c] = x[r * w + c]``. A shift
by ``(dy, dx)`` moves every pixel to ``(r + dy, c + dx)``; what falls off the edge is lost and
what comes in is ``fill``, the background: 0 for min-max scaled pixels, or per pixel
``(0 - shift) / scale`` for standardised ones. Each sample draws its
own ``dy, dx`` uniformly from ``{-s, ..., s}``, so ``s = 2`` gives 25 equally likely offsets.

Cost: one pass over the training set per epoch. The samples are grouped by their offset
(``(2s + 1)^2`` groups), and each group is moved with one slice assignment, so the Python
loop runs per offset, not per sample: 0.07-0.10 s for 54,000 MNIST images in float32 on this machine (shift 2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

IMAGE_SHAPES = {"mnist": (28, 28), "fashion_mnist": (28, 28), "digits": (8, 8)}


def _span(shift: int, size: int) -> tuple[slice, slice]:
    """(destination, source) slices along one axis for a move by ``shift`` pixels."""
    if shift >= 0:
        return slice(shift, size), slice(0, size - shift)
    return slice(0, size + shift), slice(-shift, size)


def shift_images(X: np.ndarray, image_shape: tuple[int, int], max_shift: int,
                 rng: np.random.Generator, fill: float | np.ndarray = 0.0,
                 out: np.ndarray | None = None) -> np.ndarray:
    """``X`` ``(n, h*w)`` with each row translated by a random ``(dy, dx)`` in
    ``[-max_shift, max_shift]^2`` (a new array, or ``out``; ``X`` is not modified).

    The offsets come from ``rng`` (``2n`` integers, drawn first), so the same generator state
    gives the same images.
    """
    h, w = image_shape
    n = X.shape[0]
    if X.ndim != 2 or X.shape[1] != h * w:
        raise ValueError(f"shift_images needs rows of {h}x{w} = {h * w} pixels, got shape {X.shape}")
    if max_shift < 0 or max_shift >= min(h, w):
        raise ValueError(f"max_shift must be in [0, {min(h, w) - 1}] for {h}x{w} images, "
                         f"got {max_shift}")
    offsets = rng.integers(-max_shift, max_shift + 1, size=(2, n))
    if out is None:
        out = np.empty_like(X)
    out[...] = fill                      # a number, or one background value per pixel
    images, moved = X.reshape(n, h, w), out.reshape(n, h, w)
    # one group per offset: encode (dy, dx) as one integer and sort the samples by it
    code = (offsets[0] + max_shift) * (2 * max_shift + 1) + (offsets[1] + max_shift)
    order = np.argsort(code, kind="stable")
    bounds = np.flatnonzero(np.diff(code[order])) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        dy, dx = int(offsets[0, group[0]]), int(offsets[1, group[0]])
        (rows_to, rows_from), (cols_to, cols_from) = _span(dy, h), _span(dx, w)
        moved[group, rows_to, cols_to] = images[group, rows_from, cols_from]
    return out


def image_shifter(dataset: str, max_shift: int, fill: float | np.ndarray = 0.0
                  ) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The ``augment(X, rng) -> X`` callable that :func:`nnexp.core.fit` applies once per
    epoch: random shifts of up to ``max_shift`` pixels of ``dataset``'s images. The array it
    returns is reused by the next call (one training set's worth of memory, not one per epoch).

    Raises ValueError for a data set that is not made of images (shifting table columns or
    spiral coordinates has no meaning), naming the ones that are.
    """
    if dataset not in IMAGE_SHAPES:
        raise ValueError(f"data.augment.shift works on image data sets only "
                         f"({', '.join(sorted(IMAGE_SHAPES))}), not {dataset!r}")
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"data.augment.shift must be a whole number of pixels >= 0, got {max_shift!r}")
    shape = IMAGE_SHAPES[dataset]
    buffer: list[np.ndarray] = []   # one output array, reused from epoch to epoch

    def augment(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not buffer or buffer[0].shape != X.shape or buffer[0].dtype != X.dtype:
            buffer[:] = [np.empty_like(X)]
        return shift_images(X, shape, max_shift, rng, fill, out=buffer[0])

    return augment
