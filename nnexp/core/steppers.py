"""Steppers: how an optimizer updates a network inside ``fit``, through one small protocol.

``stepper = opt.stepper(net, observe=False)`` (see :meth:`Optimizer.stepper`) gives ``fit``:

- ``scale(n)``: the factor to put in place of the ``1/n`` of the batch mean in the output delta
  (a 0-d array of the network's dtype), or None for the true gradients;
- ``step()``: the update, from ``net.grads`` as the backward pass with that scale left them;
- ``begin()`` / ``end()``: around every run of steps between which no user code runs (``end``
  puts the optimizer's state back in its usual form, so callbacks see the usual state).

``observe=True`` (for the steps ``fit``'s ``on_step`` hook sees): ``scale`` is None, so
``net.grads`` are the true gradients when the hook runs, and ``step`` leaves them intact. A
hook that samples every k-th step gets the observable stepper on those steps only; ``fit``
calls the fused one's ``end()`` before such a step and ``begin()`` after it.

:class:`PlainStepper` calls ``opt.step(net.params, net.grads)``: every optimizer, option and
schedule works with it. The fused ones exist for what pays on small batches, and
:meth:`Optimizer.stepper` hands them out only when they give the same numbers (the optimizer is
exactly the class they were written for, without weight decay, clipping or a per-step
schedule, on a network whose parameters tile one buffer):

- :class:`LrFoldStepper` (SGD): ``lr`` folded into the output delta's ``1/n`` (gradients are
  linear in it), so the update is one subtraction over the flat buffer. Observing, it takes
  the true gradients and updates with ``w <- w - lr g`` (2 passes, no scratch in ``grads``).
- :class:`ScaledAdamStepper` (Adam): Adam's scaled-gradient mode (9 passes a step instead of
  10, see ``Adam._scaled_apply``). It uses the gradient buffer as scratch, so it is not handed
  out when observing (the plain stepper runs then).

Like the optimizers, NumPy only. This module uses the optimizers' fast-path hooks; ``fit``
uses nothing but the protocol above.
"""

from __future__ import annotations

import numpy as np


class PlainStepper:
    """``opt.step(net.params, net.grads)`` on the true gradients."""

    fused = False

    def __init__(self, opt, net):
        self.opt, self.params, self.grads = opt, net.params, net.grads

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def scale(self, n: int):
        return None

    def step(self) -> None:
        self.opt.step(self.params, self.grads)


class LrFoldStepper(PlainStepper):
    """Plain SGD on the flat buffers: ``w <- w - lr g`` with ``lr`` folded into the delta."""

    fused = True

    def __init__(self, opt, net, observe: bool = False):
        super().__init__(opt, net)
        self.flat, self.grad_flat, self.dtype = net.flat, net.grad_flat, net.dtype
        self.observe = observe
        self._tmp = np.empty_like(net.flat) if observe else None
        self._scales: dict[int, np.ndarray] = {}

    def begin(self) -> None:
        self._scales = {}          # lr may have changed (set_epoch, a callback)

    def scale(self, n: int):
        if self.observe:
            return None
        s = self._scales.get(n)
        if s is None:
            s = self._scales[n] = np.array(self.opt.lr / n, self.dtype)
        return s

    def step(self) -> None:
        self.opt.t += 1
        if self.observe:
            np.multiply(self.grad_flat, self.opt.lr, self._tmp)
            np.subtract(self.flat, self._tmp, self.flat)
        else:
            np.subtract(self.flat, self.grad_flat, self.flat)   # the gradients are lr g


class ScaledAdamStepper(PlainStepper):
    """Adam's scaled-gradient mode: the factor ``s_t / n`` in the delta, 9 passes a step."""

    fused = True

    def __init__(self, opt, net):
        super().__init__(opt, net)
        self.dtype = net.dtype
        self._scales: dict[int, np.ndarray] = {}

    def begin(self) -> None:
        # (again at every run of steps: a callback may have reset the optimizer)
        self.opt._ready(self.params, self.grads)
        self.opt._scaled_begin()

    def end(self) -> None:
        self.opt._scaled_end()

    def scale(self, n: int):
        s = self._scales.get(n)
        if s is None:
            s = self._scales[n] = np.array(0.0, self.dtype)
        s[()] = self.opt._scaled_next() / n
        return s

    def step(self) -> None:
        self.opt._scaled_apply()
