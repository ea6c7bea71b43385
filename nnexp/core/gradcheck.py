"""Gradient checking: backprop against central differences of the real loss.

For a parameter entry ``w``, the numerical derivative is
``n = (L(w + eps) - L(w - eps)) / (2 eps)``, accurate to O(eps^2) plus rounding of order
``machine_eps * |L| / eps``; it is compared with the analytic ``a`` from
:meth:`MLP.loss_and_grads` by the relative error ``|a - n| / max(|a| + |n|, tiny)``.

Use a float64 network: in float32 the rounding term (~1e-7 / eps) swamps the comparison.

In float64 the rounding term is an *absolute* error of about 1e-11 (eps = 1e-5, |L| ~ 1), so a
relative error below 1e-6 can only be expected of entries with |a| above ~1e-5. Real networks
usually have a few entries far smaller (cancelling contributions of different samples, units
that are nearly saturated or leaky slopes multiplied over layers), and their relative errors
are noise, not bugs. ``floor`` makes the comparison absolute below that size:
``|a - n| / max(|a| + |n|, floor)``; ``floor=1e-4`` (an absolute tolerance of 1e-10 at the
1e-6 level) suits float64 networks on real data. The default keeps the plain relative error.
The default step is 1e-5, near the optimum ``(machine_eps)^(1/3)`` for central differences in
float64; with 1e-6 the rounding term is ten times larger.
"""

from __future__ import annotations

import numpy as np

_TINY = float(np.finfo(np.float64).tiny)


def gradcheck(net, X, Y, eps: float = 1e-5, max_checks_per_param: int | None = None,
              seed: int = 0, floor: float | None = None, train: bool = False) -> dict[str, float]:
    """Max relative error per parameter array: ``{"W1": err, "b1": err, ...}``.

    The error of an entry is ``|a - n| / max(|a| + |n|, floor)``, with ``floor`` the smallest
    positive float64 unless given (see the module docstring).

    ``max_checks_per_param`` limits the entries checked per array (a random subset drawn from
    ``default_rng(seed)``); None checks every entry. The network's parameters are restored
    exactly (each perturbed entry gets its saved value back) and its gradients hold the
    analytic values afterwards.

    ``train``: check the training-mode loss (batch statistics for batch norm; dropout with
    the fixed masks of ``seed``: every evaluation draws them from the same seed). Batch norm's
    running statistics, which training passes update, are restored afterwards.
    """
    X, Y = net.as_inputs(X, Y)
    saved_buffers = {name: a.copy() for name, a in net.buffers().items()}
    try:
        return _check(net, X, Y, eps, max_checks_per_param, seed, floor, train)
    finally:
        for name, a in net.buffers().items():
            np.copyto(a, saved_buffers[name])


def _check(net, X, Y, eps, max_checks_per_param, seed, floor, train) -> dict[str, float]:
    if train:
        _, grads = net.loss_and_grads(X, Y, train=True, seed=seed)

        def loss(X, Y):
            return net.loss(X, Y, train=True, seed=seed)
    else:
        _, grads = net.loss_and_grads(X, Y)
        loss = net.loss
    analytic = [g.copy() for g in grads]
    rng = np.random.default_rng(seed)
    floor = _TINY if floor is None else float(floor)
    errors = {}
    for name, param, a in zip(net.param_names, net.params, analytic):
        entries = param.reshape(-1)             # a view: writing to it perturbs the network
        a = a.reshape(-1)
        checked = np.arange(entries.size)
        if max_checks_per_param is not None and max_checks_per_param < entries.size:
            checked = np.sort(rng.choice(entries.size, size=max_checks_per_param, replace=False))
        worst = 0.0
        for i in checked:
            saved = entries[i]
            try:
                entries[i] = saved + eps
                loss_plus = loss(X, Y)
                entries[i] = saved - eps
                loss_minus = loss(X, Y)
            finally:
                entries[i] = saved
            numeric = (loss_plus - loss_minus) / (2.0 * eps)
            analytic_i = float(a[i])
            worst = max(worst, abs(analytic_i - numeric) / max(abs(analytic_i) + abs(numeric), floor))
        errors[name] = worst
    return errors
