"""The update rules: SGD, momentum, Nesterov, RMSprop, AdaGrad here, Adam and AdamW in
:mod:`nnexp.core.adam`, all on the interface of :class:`nnexp.core.optimizer_base.Optimizer`
(``opt.step(params, grads)``; notation, weight decay, clipping and the flat-buffer fast path are
described there), and :data:`OPTIMIZERS`, the table of their config names."""

from __future__ import annotations

import numpy as np

from nnexp.core._checks import fraction, positive
from nnexp.core.adam import Adam, AdamW
from nnexp.core.optimizer_base import Optimizer, _descend

__all__ = ["OPTIMIZERS", "SGD", "AdaGrad", "Adam", "AdamW", "Momentum", "Nesterov", "Optimizer",
           "RMSprop"]


class SGD(Optimizer):
    """``w <- w - eta g``."""

    def stepper(self, net, observe: bool = False):
        if self._fusable(SGD, net):
            from nnexp.core.steppers import LrFoldStepper
            return LrFoldStepper(self, net, observe)
        return super().stepper(net, observe)

    def _update(self, w, g, state, tmp, coef):
        np.multiply(g, coef[0], tmp)
        np.subtract(w, tmp, w)


class Momentum(Optimizer):
    """Classical momentum: ``v <- mu v + eta g``;  ``w <- w - v``."""

    state_names = ("velocity",)

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, schedule=None,
                 clip_norm=None):
        self.momentum = fraction(momentum, "momentum")
        super().__init__(lr, weight_decay, schedule, clip_norm)

    def _update(self, w, g, state, tmp, coef):
        (v,) = state
        np.multiply(v, self.momentum, v)
        np.multiply(g, coef[0], tmp)
        np.add(v, tmp, v)
        np.subtract(w, v, w)


class Nesterov(Momentum):
    """Nesterov momentum, with the gradient taken at the stored (look-ahead) weights:

    ``v <- mu v + eta g``;  ``w <- w - (mu v + eta g)`` (with the new ``v``).

    This is Sutskever et al.'s update rewritten for ``w = theta + mu v`` (Bengio et al. 2013),
    as in scikit-learn and Keras, so one gradient at ``w`` per step suffices.
    """

    def _update(self, w, g, state, tmp, coef):
        (v,) = state
        np.multiply(v, self.momentum, v)
        np.multiply(g, coef[0], tmp)
        np.add(v, tmp, v)
        np.subtract(w, tmp, w)              # w -= eta g ...
        np.multiply(v, self.momentum, tmp)
        np.subtract(w, tmp, w)              # ... and w -= mu v


class RMSprop(Optimizer):
    """``s <- rho s + (1 - rho) g^2``;  ``w <- w - eta g / (sqrt(s) + eps)``."""

    state_names = ("square_avg",)

    def __init__(self, lr: float, rho: float = 0.9, eps: float = 1e-8, weight_decay: float = 0.0,
                 schedule=None, clip_norm=None):
        self.rho = fraction(rho, "rho")
        self.eps = positive(eps, "eps")
        super().__init__(lr, weight_decay, schedule, clip_norm)

    def _update(self, w, g, state, tmp, coef):
        (s,) = state
        np.multiply(s, self.rho, s)
        np.multiply(g, g, tmp)
        np.multiply(tmp, 1.0 - self.rho, tmp)
        np.add(s, tmp, s)
        _descend(w, g, s, tmp, self.eps, coef[0])


class AdaGrad(Optimizer):
    """``G <- G + g^2``;  ``w <- w - eta g / (sqrt(G) + eps)``."""

    state_names = ("sum_squares",)

    def __init__(self, lr: float, eps: float = 1e-8, weight_decay: float = 0.0, schedule=None,
                 clip_norm=None):
        self.eps = positive(eps, "eps")
        super().__init__(lr, weight_decay, schedule, clip_norm)

    def _update(self, w, g, state, tmp, coef):
        (G,) = state
        np.multiply(g, g, tmp)
        np.add(G, tmp, G)
        _descend(w, g, G, tmp, self.eps, coef[0])


#: name -> class of the optimizers (the names of ``conf/optimizer/*.yaml``).
OPTIMIZERS = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
    "adagrad": AdaGrad,
}
