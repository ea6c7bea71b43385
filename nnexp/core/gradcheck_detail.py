"""The gradient check, in detail: per parameter array its worst entry (index, analytic and
numerical values), and which samples sit on a kink of a ReLU-family activation.

Central differences ``(L(w + eps) - L(w - eps)) / 2 eps`` are wrong where a perturbation moves
a pre-activation ``z`` across the kink of ``max(0, z)``: there the loss is not differentiable
and the two sides disagree (a training row at the origin puts every first-layer ReLU input at
``z = b = 0`` when the biases start at zero). :func:`near_kinks` finds such rows so a check can
leave them out: a row counts if any ReLU/leaky-ReLU input is within ``margin`` of 0 (a weight
perturbation moves ``z`` by ``eps * |a|``, a bias perturbation by ``eps``).

NumPy and the standard library only; reads the network through its plan (``layers``),
``param_names``, ``params``, ``loss`` and ``loss_and_grads``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_KINKED = ("relu", "leaky_relu")


@dataclass(frozen=True)
class Worst:
    """The entry of one parameter array with the largest error."""

    error: float
    index: tuple[int, ...]
    analytic: float
    numeric: float


def near_kinks(net, X: np.ndarray, margin: float = 1e-4) -> np.ndarray:
    """``(n,)`` bool: rows of ``X`` with a ReLU-family pre-activation within ``margin`` of 0
    (all False for smooth activations). Layer by layer through the network's plan, in
    evaluation mode (batch norm with its running statistics)."""
    import copy

    from nnexp.core.layers import BN_EPS

    X = np.asarray(X, np.float64)
    flagged = np.zeros(X.shape[0], bool)
    A = X
    for layer in net.layers[:-1]:
        Z = A @ layer.W
        if layer.b is not None:
            Z = Z + layer.b
        if layer.batch_norm:
            Z = (Z - layer.running_mean) / np.sqrt(layer.running_var + BN_EPS) * layer.gamma + layer.beta
        if layer.activation_name in _KINKED:
            flagged |= (np.abs(Z) < margin).any(axis=1)
        A = copy.copy(layer.activation)(Z)      # a copy: calling may rebind it to float64
    return flagged


def worst_entries(net, X, Y, eps: float = 1e-5, floor: float = 1e-4) -> dict[str, Worst]:
    """Per array, the entry with the largest ``|a - n| / max(|a| + |n|, floor)`` (every entry
    checked; parameters restored exactly)."""
    _, grads = net.loss_and_grads(X, Y)
    analytic = [g.copy() for g in grads]
    out = {}
    for name, param, a in zip(net.param_names, net.params, analytic):
        entries, a = param.reshape(-1), a.reshape(-1)
        numeric = np.empty_like(a)
        for i in range(entries.size):
            saved = entries[i]
            try:
                entries[i] = saved + eps
                plus = net.loss(X, Y)
                entries[i] = saved - eps
                minus = net.loss(X, Y)
            finally:
                entries[i] = saved
            numeric[i] = (plus - minus) / (2.0 * eps)
        errors = np.abs(a - numeric) / np.maximum(np.abs(a) + np.abs(numeric), floor)
        i = int(np.argmax(errors))
        out[name] = Worst(float(errors[i]), tuple(int(j) for j in np.unravel_index(i, param.shape)),
                          float(a[i]), float(numeric[i]))
    return out
