"""Learning-rate schedules, per epoch or per step.

**Per epoch** (``per_step = False``): ``schedule(base_lr, epoch) -> lr``. ``epoch`` counts
completed epochs from 0, so the first epoch trains at ``schedule(lr0, 0)``, which is ``lr0``
for every schedule here. Optimizers call the schedule from ``set_epoch``; ``fit`` calls that at
the start of every epoch.

=================  ==========================================
Constant()         lr0
StepDecay          lr0 * gamma ** floor(epoch / step_size)
ExponentialDecay   lr0 * gamma ** epoch
InverseTimeDecay   lr0 / (1 + decay_rate * epoch)
=================  ==========================================

**Per step** (``per_step = True``): ``schedule(base_lr, k, T) -> lr``, the rate of step ``k``
(counted from 0) of a training of ``T`` steps. The optimizer learns ``T`` from
``opt.begin_training(T)`` (``fit`` calls it once, with epochs x batches per epoch) and sets
``opt.lr`` from the schedule inside every step; ``set_epoch`` leaves it alone. A step past the
end (``k >= T``) gets the rate of the end. ``T`` is the planned length: a training that stops
early (early stopping, divergence) ends before the schedule does. ``fit`` records as an epoch's
``lr`` the rate of its last step.

=================  ==========================================================================
CosineDecay        k < W: lr0 (k + 1) / (W + 1);  then min_lr + (lr0 - min_lr)(1 + cos(pi p))/2,
                   p = (k - W) / (T - W)  (W = warmup_steps)
OneCycle           torch's OneCycleLR (two phases, cosine annealing): lr0/div_factor up to lr0
                   over the first pct_start T - 1 steps, then down to lr0/div/final_div at T - 1
=================  ==========================================================================
"""

from __future__ import annotations

import math

from nnexp.core._checks import count, decay_factor, fraction, positive


class Constant:
    per_step = False

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr)

    def __repr__(self) -> str:
        return "Constant()"


class StepDecay:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    per_step = False

    def __init__(self, step_size: int = 10, gamma: float = 0.5):
        self.step_size = count(step_size, "step_size")
        self.gamma = decay_factor(gamma, "gamma")

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) * self.gamma ** (epoch // self.step_size)

    def __repr__(self) -> str:
        return f"StepDecay(step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay:
    """Multiply the rate by ``gamma`` every epoch."""

    per_step = False

    def __init__(self, gamma: float = 0.95):
        self.gamma = decay_factor(gamma, "gamma")

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) * self.gamma ** epoch

    def __repr__(self) -> str:
        return f"ExponentialDecay(gamma={self.gamma})"


class InverseTimeDecay:
    """Divide the rate by ``1 + decay_rate * epoch``."""

    per_step = False

    def __init__(self, decay_rate: float = 0.1):
        self.decay_rate = positive(decay_rate, "decay_rate", allow_zero=True)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) / (1.0 + self.decay_rate * epoch)

    def __repr__(self) -> str:
        return f"InverseTimeDecay(decay_rate={self.decay_rate})"


def _cosine(start: float, end: float, pct: float) -> float:
    """From ``start`` at ``pct = 0`` to ``end`` at ``pct = 1`` along half a cosine."""
    return end + (start - end) * (1.0 + math.cos(math.pi * pct)) / 2.0


class CosineDecay:
    """Per step: linear warm-up over ``warmup_steps`` steps, then cosine decay to ``min_lr``.

    With ``W = warmup_steps`` and ``T`` the training's total steps, step ``k`` (from 0) trains at

    - ``lr0 (k + 1) / (W + 1)`` for ``k < W`` (``lr0/(W + 1)`` first, never a wasted step at 0);
    - ``min_lr + (lr0 - min_lr) (1 + cos(pi (k - W) / (T - W))) / 2`` from ``k = W`` (``lr0``)
      on; ``min_lr`` would be reached at ``k = T``, one step after the last (torch's
      ``CosineAnnealingLR`` convention with ``T_max = T - W``).

    This is torch's ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W),
    CosineAnnealingLR(T_max=T-W, eta_min=min_lr)], milestones=[W])`` stepped once per batch
    (``W = 0``: the cosine alone). A warm-up as long as the training (``W >= T``) never
    reaches ``lr0``; a ``min_lr`` above ``lr0`` makes the "decay" rise, as torch allows.
    """

    per_step = True

    def __init__(self, min_lr: float = 0.0, warmup_steps: int = 0):
        self.min_lr = positive(min_lr, "min_lr", allow_zero=True)
        self.warmup_steps = count(warmup_steps, "warmup_steps", minimum=0)

    def __call__(self, base_lr: float, step: int, total_steps: int) -> float:
        warm = self.warmup_steps
        if step < warm:
            return float(base_lr) * (step + 1) / (warm + 1)
        length = total_steps - warm
        pct = min(step - warm, length) / length if length > 0 else 1.0
        return _cosine(float(base_lr), self.min_lr, pct)

    def __repr__(self) -> str:
        return f"CosineDecay(min_lr={self.min_lr}, warmup_steps={self.warmup_steps})"


class OneCycle:
    """Per step: the one-cycle policy of ``torch.optim.lr_scheduler.OneCycleLR`` (Smith 2018),
    with ``max_lr`` = the optimizer's ``lr0``, ``anneal_strategy="cos"``, two phases.

    Step ``k`` of ``T`` trains at ``cos_anneal(lr0/div_factor, lr0, k/e)`` for ``k <= e``, with
    ``e = pct_start T - 1``, then at ``cos_anneal(lr0, lr0/(div_factor final_div_factor),
    (k - e)/(T - 1 - e))``, where ``cos_anneal(a, b, p) = b + (a - b)(1 + cos(pi p))/2``.
    Only the learning rate cycles: torch's ``cycle_momentum`` (momentum or beta1 moving
    against the rate) is not done; compare with ``cycle_momentum=False``.
    """

    per_step = True

    def __init__(self, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4):
        self.pct_start = fraction(pct_start, "pct_start", low_open=True)
        self.div_factor = positive(div_factor, "div_factor")
        self.final_div_factor = positive(final_div_factor, "final_div_factor")

    def __call__(self, base_lr: float, step: int, total_steps: int) -> float:
        top = float(base_lr)
        start, end = top / self.div_factor, top / self.div_factor / self.final_div_factor
        step = min(step, total_steps - 1)
        peak = self.pct_start * total_steps - 1.0      # torch's end of phase 1 (a float)
        if step <= peak:                                 # (peak = 0: at the top from step 0)
            return _cosine(start, top, step / peak if peak > 0 else 1.0)
        return _cosine(top, end, (step - peak) / (total_steps - 1 - peak))

    def __repr__(self) -> str:
        return (f"OneCycle(pct_start={self.pct_start}, div_factor={self.div_factor}, "
                f"final_div_factor={self.final_div_factor})")


#: name -> class of the schedules (the names of ``conf/schedule/*.yaml``).
SCHEDULES = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay,
    "cosine": CosineDecay,
    "one_cycle": OneCycle,
}
