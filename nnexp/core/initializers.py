"""Weight initializers: ``init(shape, rng, **options) -> float64 array`` for a weight matrix.

``shape = (fan_in, fan_out)``. Biases always start at zero (set by the network, not here).

=====================================  ===========================================  ===========
name                                   distribution                                 options
=====================================  ===========================================  ===========
uniform                                U(-eps, eps)                                 epsilon=0.12
normal                                 N(0, std^2)                                  std=0.01
xavier_uniform (glorot_uniform)        U(-r, r), r = sqrt(6 / (fan_in + fan_out))
xavier_normal (glorot_normal)          N(0, 2 / (fan_in + fan_out))
he (he_normal)                         N(0, 2 / fan_in)
he_uniform                             U(-r, r), r = sqrt(6 / fan_in)
constant                               every weight = value                         value=0.0
=====================================  ===========================================  ===========

``constant`` exists to show the symmetry problem: hidden units that start equal receive equal
gradients and stay equal forever.

Values are drawn in float64 and cast by the network, so a float32 and a float64 network built
with the same seed start from the same weights (up to rounding).
"""

from __future__ import annotations

import math

import numpy as np

from nnexp.core._checks import positive


def uniform(shape: tuple[int, int], rng: np.random.Generator, *, epsilon: float = 0.12) -> np.ndarray:
    epsilon = positive(epsilon, "uniform init epsilon")
    return rng.uniform(-epsilon, epsilon, size=shape)


def normal(shape: tuple[int, int], rng: np.random.Generator, *, std: float = 0.01) -> np.ndarray:
    std = positive(std, "normal init std")
    return rng.normal(0.0, std, size=shape)


def xavier_uniform(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape)


def xavier_normal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, math.sqrt(2.0 / (shape[0] + shape[1])), size=shape)


def he_normal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, math.sqrt(2.0 / shape[0]), size=shape)


def he_uniform(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    limit = math.sqrt(6.0 / shape[0])
    return rng.uniform(-limit, limit, size=shape)


def constant(shape: tuple[int, int], rng: np.random.Generator, *, value: float = 0.0) -> np.ndarray:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"constant init value must be a finite number, got {value!r}")
    return np.full(shape, float(value))


#: name -> initializer; aliases share the function.
INITIALIZERS = {
    "uniform": uniform,
    "normal": normal,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "constant": constant,
}
