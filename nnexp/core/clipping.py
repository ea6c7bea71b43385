"""Gradient clipping by the global L2 norm, as ``torch.nn.utils.clip_grad_norm_``.

With ``g_1 .. g_n`` the gradient arrays and ``N = sqrt(sum_i ||g_i||^2)`` their joint norm,
every ``g_i`` is multiplied in place by ``min(1, max_norm / (N + 1e-6))``: the direction of
the whole gradient is kept and its length capped at (just under) ``max_norm``. The ``1e-6``
is torch's, so that the two agree to rounding. A non-finite ``N`` gives a factor of 0 (or nan)
as in torch with ``error_if_nonfinite=False``; ``fit``'s divergence guard then stops the run.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-6   # torch's: clip_coef = max_norm / (total_norm + 1e-6)


def clip_grad_norm(grads, max_norm: float) -> float:
    """Scale the arrays of ``grads`` in place so that their joint L2 norm is at most
    ``max_norm``; returns the norm before clipping. Arrays are left untouched (not even
    multiplied by 1) when the norm is already within the bound."""
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    coef = max_norm / (total + _EPS)
    if not coef >= 1.0:                  # (a nan norm gives a nan factor, as in torch)
        for g in grads:
            np.multiply(g, coef, g)
    return total
