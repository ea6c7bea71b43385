"""Learning-rate schedules: ``schedule(base_lr, epoch) -> lr``.

``epoch`` counts completed epochs from 0, so the first epoch trains at ``schedule(lr0, 0)``,
which is ``lr0`` for every schedule here. Optimizers call the schedule from ``set_epoch``;
``fit`` calls that at the start of every epoch.

=================  ==========================================
Constant()         lr0
StepDecay          lr0 * gamma ** floor(epoch / step_size)
ExponentialDecay   lr0 * gamma ** epoch
InverseTimeDecay   lr0 / (1 + decay_rate * epoch)
=================  ==========================================
"""

from __future__ import annotations

from nnexp.core._checks import count, decay_factor, positive


class Constant:
    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr)

    def __repr__(self) -> str:
        return "Constant()"


class StepDecay:
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, step_size: int = 10, gamma: float = 0.5):
        self.step_size = count(step_size, "step_size")
        self.gamma = decay_factor(gamma, "gamma")

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) * self.gamma ** (epoch // self.step_size)

    def __repr__(self) -> str:
        return f"StepDecay(step_size={self.step_size}, gamma={self.gamma})"


class ExponentialDecay:
    """Multiply the rate by ``gamma`` every epoch."""

    def __init__(self, gamma: float = 0.95):
        self.gamma = decay_factor(gamma, "gamma")

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) * self.gamma ** epoch

    def __repr__(self) -> str:
        return f"ExponentialDecay(gamma={self.gamma})"


class InverseTimeDecay:
    """Divide the rate by ``1 + decay_rate * epoch``."""

    def __init__(self, decay_rate: float = 0.1):
        self.decay_rate = positive(decay_rate, "decay_rate", allow_zero=True)

    def __call__(self, base_lr: float, epoch: int) -> float:
        return float(base_lr) / (1.0 + self.decay_rate * epoch)

    def __repr__(self) -> str:
        return f"InverseTimeDecay(decay_rate={self.decay_rate})"


#: name -> class of the schedules (the names of ``conf/schedule/*.yaml``).
SCHEDULES = {
    "constant": Constant,
    "step": StepDecay,
    "exponential": ExponentialDecay,
    "inverse_time": InverseTimeDecay,
}
