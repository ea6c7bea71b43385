"""Synthetic toy sets generated in memory: ``xor`` and ``spiral``."""

from __future__ import annotations

import numpy as np

from nnexp.data.base import Source, check_float, check_int


def load_xor(*, rng) -> Source:
    """Loader for ``xor``: the four cases of exclusive or, ``X (4, 2)`` of 0/1, ``y = x0 ^ x1``.

    xor is the classic test that a network can represent a function no linear model can, not a
    test of generalisation: there are only four cases and each one is needed to define the
    function (hold one out and nothing in the other three says what it should be). So the
    registry uses all four cases as the training, validation and test split alike.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return Source(X=X, y=y, class_names=("0", "1"), value_range=(0.0, 1.0))


def load_spiral(*, rng: np.random.Generator, n_classes=3, n_per_class=100, noise=0.2) -> Source:
    """Loader for ``spiral``: the CS231n toy set, ``n_classes`` interleaved spiral arms in 2-d.

    Arm ``j`` has ``n_per_class`` points at radius ``r`` evenly in [0, 1] and angle
    ``t = 4 j + 4 r + noise * N(0, 1)``, placed at ``(r sin t, r cos t)`` -- the same as the
    CS231n loop, vectorised. Returns ``X (n_classes * n_per_class, 2)`` and the arm as label.
    """
    n_classes = check_int("spiral", "n_classes", n_classes, low=2, high=1000)
    n_per_class = check_int("spiral", "n_per_class", n_per_class, low=2, high=1_000_000)
    noise = check_float("spiral", "noise", noise, low=0.0)
    arm = np.repeat(np.arange(n_classes), n_per_class)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    t = 4.0 * arm + 4.0 * r + noise * rng.standard_normal(arm.size)
    X = np.column_stack((r * np.sin(t), r * np.cos(t)))
    return Source(X=X, y=arm.astype(np.int64), class_names=tuple(str(j) for j in range(n_classes)))
