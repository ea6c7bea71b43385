"""Gradient checking: backprop against central differences of the real loss.

For a parameter entry ``w``, the numerical derivative is
``n = (L(w + eps) - L(w - eps)) / (2 eps)``, accurate to O(eps^2) plus rounding of order
``machine_eps * |L| / eps``; it is compared with the analytic ``a`` from
:meth:`MLP.loss_and_grads` by the relative error ``|a - n| / max(|a| + |n|, tiny)``.

Use a float64 network: in float32 the rounding term (~1e-7 / eps) swamps the comparison. With
float64, eps = 1e-6 and gradients that are not vanishingly small, correct backprop gives errors
around 1e-8 to 1e-10; a wrong derivative gives errors near 1.
"""

from __future__ import annotations

import numpy as np

_TINY = float(np.finfo(np.float64).tiny)


def gradcheck(net, X, Y, eps: float = 1e-5, max_checks_per_param: int | None = None,
              seed: int = 0) -> dict[str, float]:
    """Max relative error per parameter array: ``{"W1": err, "b1": err, ...}``.

    ``max_checks_per_param`` limits the entries checked per array (a random subset drawn from
    ``default_rng(seed)``); None checks every entry. The network's parameters are restored
    exactly (each perturbed entry gets its saved value back) and its gradients hold the
    analytic values afterwards.
    """
    X, Y = net._as_inputs(X, Y)
    _, grads = net.loss_and_grads(X, Y)
    analytic = [g.copy() for g in grads]
    rng = np.random.default_rng(seed)
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
                loss_plus = net.loss(X, Y)
                entries[i] = saved - eps
                loss_minus = net.loss(X, Y)
            finally:
                entries[i] = saved
            numeric = (loss_plus - loss_minus) / (2.0 * eps)
            analytic_i = float(a[i])
            worst = max(worst, abs(analytic_i - numeric) / max(abs(analytic_i) + abs(numeric), _TINY))
        errors[name] = worst
    return errors
