"""Adam and AdamW, with the scaled-gradient mode that ``fit`` fuses into the backward pass
(:class:`nnexp.core.steppers.ScaledAdamStepper`). Notation and the shared machinery (weight
decay, clipping, the flat buffer): :mod:`nnexp.core.optimizer_base`."""

from __future__ import annotations

import math

import numpy as np

from nnexp.core._checks import fraction, positive
from nnexp.core.optimizer_base import Optimizer, _descend


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias-corrected moments:

    ``m <- b1 m + (1 - b1) g``;  ``v <- b2 v + (1 - b2) g^2``;
    ``m_hat = m / (1 - b1^t)``;  ``v_hat = v / (1 - b2^t)``;
    ``w <- w - eta m_hat / (sqrt(v_hat) + eps)``.

    Computed with the same result and fewer passes over memory: the state holds the undamped
    sums ``M = m / (1 - b1)`` and ``V = v / (1 - b2)`` (``M <- b1 M + g``, two calls), so that
    with ``c1 = (1 - b1)/(1 - b1^t)`` and ``c2 = (1 - b2)/(1 - b2^t)``:
    ``w <- w - (eta c1 / sqrt(c2)) M / (sqrt(V) + eps / sqrt(c2))``, ten ufunc calls a step.
    """

    state_names = ("m_sum", "v_sum")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, schedule=None, clip_norm=None):
        self.beta1 = fraction(beta1, "beta1")
        self.beta2 = fraction(beta2, "beta2")
        self.eps = positive(eps, "eps")
        super().__init__(lr, weight_decay, schedule, clip_norm)

    def _coefficients(self):
        c1 = (1.0 - self.beta1) / (1.0 - self.beta1 ** self.t)
        root_c2 = math.sqrt((1.0 - self.beta2) / (1.0 - self.beta2 ** self.t))
        return (self.lr * c1 / root_c2, self.eps / root_c2)

    # -- fit's scaled-gradient mode: 9 passes instead of 10 -----------------------------------
    # With s_t = beta1^-(t - t0), fit scales the gradient of step t by s_t (through the output
    # delta: gradients are linear in it) and the state holds U = s_t M and Q = s_t^2 V:
    #   U <- U + s_t g;  Q <- (beta2 / beta1^2) Q + (s_t g)^2;
    #   w <- w - (eta c1 / sqrt(c2)) U / (sqrt(Q) + s_t eps / sqrt(c2)),
    # the same update, without the pass that multiplies M by beta1. The state is put back in
    # the usual form (t0 = t) before s_t passes 2^10 and whenever fit hands control to user
    # code. Used only for the flat buffer, without weight decay, with beta1 >= 1/2.
    # The gradient buffer is fit's own and is overwritten by the next backward pass, so once
    # U has taken g it serves as the scratch: (s_t g)^2 and the step are computed in it. The
    # update then streams 4 arrays instead of 5 (w, g, U, Q: 840 KB for workload (a), inside
    # a 1 MB L2): 68.3-69.8k -> 72.2-73.0k samples/s for (a) Adam float32, best of 5 epochs,
    # alternating runs. (Adam.step leaves the caller's gradients alone, but for clip_norm.)
    def reset(self) -> None:
        super().reset()
        self._t0 = 0

    def _scaled_ok(self) -> bool:   # (clipping needs the unscaled gradients' norm)
        return self.beta1 >= 0.5 and not self.weight_decay and self.clip_norm is None

    def stepper(self, net, observe: bool = False):
        # the scaled mode uses the gradient buffer as scratch: not while fit is observed
        if not observe and self._scaled_ok() and self._fusable(Adam, net):
            from nnexp.core.steppers import ScaledAdamStepper
            return ScaledAdamStepper(self, net)
        return super().stepper(net, observe)

    def _scaled_begin(self) -> None:
        self._t0 = self.t

    def _scaled_next(self) -> float:
        """The factor for the next gradient, ``s_{t+1}``."""
        return self.beta1 ** (self._t0 - self.t - 1)

    def _scaled_apply(self) -> None:
        self._advance()
        s = self.beta1 ** (self._t0 - self.t)
        step_size, eps = self._coefficients()
        eps *= s
        ratio = self.beta2 / (self.beta1 * self.beta1)
        add, multiply = np.add, np.multiply
        for w, g, _, (U, Q), _, _ in self._groups:
            add(U, g, U)
            multiply(Q, ratio, Q)
            multiply(g, g, g)               # g is fit's scratch from here on (see above)
            add(Q, g, Q)
            _descend(w, U, Q, g, eps, step_size)
        if s > 1024.0:
            self._scaled_end()

    def _scaled_end(self) -> None:
        """Back to the usual state (M, V); the mode can go on from here."""
        if self.t != self._t0:
            s = self.beta1 ** (self._t0 - self.t)
            np.multiply(self._state_flat["m_sum"], 1.0 / s, self._state_flat["m_sum"])
            np.multiply(self._state_flat["v_sum"], 1.0 / (s * s), self._state_flat["v_sum"])
            self._t0 = self.t

    def _update(self, w, g, state, tmp, coef):
        M, V = state
        np.multiply(M, self.beta1, M)
        np.add(M, g, M)
        np.multiply(g, g, tmp)
        np.multiply(V, self.beta2, V)
        np.add(V, tmp, V)
        _descend(w, M, V, tmp, coef[1], coef[0])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), the update of
    ``torch.optim.AdamW``: each step first shrinks the weights,

    ``w <- w - eta lambda w``  (``lambda = weight_decay``, ``eta`` the step's scheduled rate),

    then takes the Adam step of :class:`Adam` on the undecayed gradient. The decay applies to
    weight matrices only (``ndim >= 2``), never to biases, like the project's L2. torch's
    AdamW decays every tensor it is given: to match it, give torch the biases in a parameter
    group with ``weight_decay=0``.
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, schedule=None, clip_norm=None):
        super().__init__(lr, beta1, beta2, eps, weight_decay, schedule, clip_norm)

    def _scaled_ok(self) -> bool:   # the scaled mode knows only Adam's coupled form
        return False

    def _decay(self, w, g, decay, scratch):
        """``w <- w - eta lambda w`` in place (``decay`` is zero on biases); ``g`` unchanged."""
        np.multiply(w, decay, scratch)
        np.multiply(scratch, self.lr, scratch)
        np.subtract(w, scratch, w)
        return g
