"""The optimizer interface, ``opt.step(params, grads)``, and what every update rule shares:
the learning rate and its schedule, weight decay, clipping, state, the flat-buffer fast path.
The rules themselves are in :mod:`nnexp.core.optimizers` (and :mod:`nnexp.core.adam`).

Notation: ``w`` a parameter array, ``g`` its gradient, ``eta`` the current learning rate
(``opt.lr``: set from an epoch schedule by ``set_epoch``, or from a per-step schedule inside
each step), ``t`` the number of steps taken (from 1).

Weight decay (L2, ``weight_decay = lambda``) replaces ``g`` by ``g + lambda w`` for weight
matrices only: arrays with ``ndim >= 2``. Biases (1-D) are not decayed, since shrinking them
towards zero does not reduce the capacity of the network. :class:`AdamW` decouples it instead
(``w <- w - eta lambda w``, then the Adam step), on the same arrays.

Every optimizer takes ``clip_norm``: before each step the gradients are scaled in place so
that their joint L2 norm is at most ``clip_norm`` (:func:`nnexp.core.clipping.clip_grad_norm`,
as ``torch.nn.utils.clip_grad_norm_``, which also scales the caller's gradients in place),
then decayed and applied.

Per-step schedules (``schedule.per_step``) need the length of the training:
``opt.begin_training(total_steps)``, which ``fit`` calls before the first epoch.

State (velocities, moment estimates) is kept per parameter array and shaped like it, in
``opt.state[name][i]``. It belongs to the arrays it was created for: stepping a different set
of arrays starts from fresh state.

Speed: when ``params`` are exactly the consecutive views that tile one contiguous 1-D buffer
(as :class:`~nnexp.core.MLP` lays them out), and ``grads`` likewise, each update rule runs
once over the whole buffer: a handful of in-place ufunc calls per step, however many layers
there are. Any other list of arrays is updated array by array with the same code. The check is
cached on the identities of the arrays, and the optimizer keeps references to them so that
those identities cannot be reused by new objects.

A buffer of more than ``_CHUNK_ABOVE`` elements is updated in blocks of ``_CHUNK`` elements
(views made once): each block's passes then run in cache instead of streaming every array
through memory once per ufunc call. Element-wise, so the results are the same bit for bit.
"""

from __future__ import annotations


import numpy as np

from nnexp.core._checks import count, positive
from nnexp.core.clipping import clip_grad_norm
from nnexp.core.schedules import Constant

_CHUNK_ABOVE = 2 ** 20     # elements; below this the per-block call overhead does not pay
_CHUNK = 2 ** 16           # elements a block: 6 float32 arrays of it fit a 512 KB L2


def _tiled_buffer(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The 1-D buffer that ``arrays`` tile exactly, in order and without gaps, or None."""
    base = arrays[0].base
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    address = base.__array_interface__["data"][0]
    end = address + base.nbytes
    for a in arrays:
        if a.base is not base or not a.flags.c_contiguous \
                or a.__array_interface__["data"][0] != address:
            return None
        address += a.nbytes
    return base if address == end else None


def _descend(w, numerator, accumulator, tmp, eps, step_size) -> None:
    """``w <- w - step_size numerator / (sqrt(accumulator) + eps)`` in place, through ``tmp``:
    the step that RMSprop, AdaGrad and Adam share (4 ufunc passes and the subtraction)."""
    np.sqrt(accumulator, tmp)
    np.add(tmp, eps, tmp)
    np.divide(numerator, tmp, tmp)
    np.multiply(tmp, step_size, tmp)
    np.subtract(w, tmp, w)


class Optimizer:
    """Base class. Subclasses name their state arrays and implement ``_update``.

    Args common to all: ``lr`` (the base rate ``eta_0``), ``weight_decay`` (``lambda``, on
    weights only), ``schedule`` (:mod:`nnexp.core.schedules`; default constant) and
    ``clip_norm`` (``None``, or the largest joint L2 norm of the gradients, > 0).
    """

    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0, schedule=None, clip_norm=None):
        self.base_lr = positive(lr, "lr")
        self.lr = self.base_lr
        self.weight_decay = positive(weight_decay, "weight_decay", allow_zero=True)
        self.clip_norm = None if clip_norm is None else positive(clip_norm, "clip_norm")
        self.schedule = Constant() if schedule is None else schedule
        self.total_steps: int | None = None
        self.reset()

    @property
    def schedule(self):
        """The learning-rate schedule (:mod:`nnexp.core.schedules`)."""
        return self._schedule

    @schedule.setter
    def schedule(self, schedule) -> None:
        if not callable(schedule):
            raise TypeError(f"schedule must be callable as schedule(base_lr, epoch), got {schedule!r}")
        self._schedule = schedule
        self._per_step = bool(getattr(schedule, "per_step", False))   # read at every step

    @property
    def per_step(self) -> bool:
        """Whether the schedule sets ``lr`` at every step (else once per epoch)."""
        return self._per_step

    def begin_training(self, total_steps: int) -> None:
        """Announce a training of ``total_steps`` steps (``fit`` calls it once, before the
        first epoch): a per-step schedule counts its steps from here, and ``lr`` becomes the
        rate of the first one. Without a per-step schedule nothing else changes."""
        self.total_steps = count(total_steps, "total_steps", minimum=0)
        self._t_begin = self.t
        if self.per_step and self.total_steps:
            self.lr = float(self.schedule(self.base_lr, 0, self.total_steps))

    def reset(self) -> None:
        """Forget the state and the step count (a per-step schedule starts again too)."""
        self.t = 0
        self._t_begin = 0
        self.state: dict[str, list[np.ndarray]] = {}
        self._owner = None      # ids of the parameter arrays the state belongs to
        self._key = None        # ids of the (params, grads) the cached groups were built for
        self._refs = None
        self._groups: list[tuple] = []

    def set_epoch(self, epoch: int) -> None:
        """Set ``lr`` from an epoch schedule; ``epoch`` counts completed epochs from 0. (A
        per-step schedule's rate is set by the steps and is left as it is.)"""
        if not self.per_step:
            self.lr = float(self.schedule(self.base_lr, epoch))

    def _advance(self) -> None:
        """Count the step about to be taken, and set its ``lr`` from a per-step schedule."""
        if self._per_step:
            if self.total_steps is None:
                raise RuntimeError(f"{self.schedule!r} is a per-step schedule: call "
                                   f"opt.begin_training(total_steps) before the first step "
                                   f"(fit does)")
            self.lr = float(self.schedule(self.base_lr, self.t - self._t_begin, self.total_steps))
        self.t += 1

    def step(self, params, grads) -> None:
        """Update every ``params[i]`` in place from ``grads[i]``."""
        self._ready(params, grads)
        self._apply()

    def _ready(self, params, grads) -> None:
        """Build (or keep) the state and the update groups for these arrays."""
        key = (tuple(map(id, params)), tuple(map(id, grads)))
        if key != self._key:
            self._prepare(list(params), list(grads), key)

    def _apply(self) -> None:
        """The update on the arrays of the last ``step`` (``fit`` calls it directly while
        ``_key`` is unchanged, skipping the identity check)."""
        self._advance()
        if self.clip_norm is not None:          # on the raw gradients, before any decay
            clip_grad_norm([group[1] for group in self._groups], self.clip_norm)
        coef = self._coefficients()
        update = self._update
        for w, g, decay, state, tmp, g_decayed in self._groups:
            if decay is not None:
                g = self._decay(w, g, decay, g_decayed)
            update(w, g, state, tmp, coef)

    def _decay(self, w, g, decay, scratch):
        """L2: the gradient ``g + lambda w`` (in ``scratch``; ``decay`` is zero on biases)."""
        np.multiply(w, decay, scratch)
        np.add(scratch, g, scratch)
        return scratch

    # ------------------------------------------------------------------ set-up, once per arrays
    def _prepare(self, params: list, grads: list, key) -> None:
        if not params or len(params) != len(grads):
            raise ValueError(f"step needs equally long, non-empty lists of parameters and "
                             f"gradients, got {len(params)} and {len(grads)}")
        dtype = params[0].dtype
        for i, (w, g) in enumerate(zip(params, grads)):
            if not isinstance(w, np.ndarray) or w.dtype != dtype or w.dtype.kind != "f":
                raise TypeError(f"params[{i}] must be a float ndarray of dtype {dtype}")
            if np.shape(g) != w.shape:
                raise ValueError(f"grads[{i}] has shape {np.shape(g)}, params[{i}] has {w.shape}")
        sizes = [w.size for w in params]
        total = sum(sizes)
        offsets = np.cumsum([0] + sizes)

        def views(buffer):
            return [buffer[o:o + s].reshape(w.shape) for o, s, w in zip(offsets, sizes, params)]

        if key[0] != self._owner:               # new parameter arrays: fresh state
            self.state = {name: views(np.zeros(total, dtype)) for name in self.state_names}
            self._state_flat = {name: arrays[0].base for name, arrays in self.state.items()}
            self._owner = key[0]
        lam = self.weight_decay
        tmp, g_decayed = np.empty(total, dtype), np.empty(total, dtype)
        w_flat, g_flat = _tiled_buffer(params), _tiled_buffer(grads)
        if w_flat is not None and g_flat is not None and g_flat.dtype == dtype:
            decay = None
            if lam and any(w.ndim >= 2 for w in params):
                decay = np.zeros(total, dtype)  # lambda on weight entries, 0 on bias entries
                for o, s, w in zip(offsets, sizes, params):
                    decay[o:o + s] = lam if w.ndim >= 2 else 0.0
            state = [self._state_flat[name] for name in self.state_names]
            if total > _CHUNK_ABOVE:
                self._groups = [
                    (w_flat[i:i + _CHUNK], g_flat[i:i + _CHUNK],
                     None if decay is None else decay[i:i + _CHUNK],
                     [a[i:i + _CHUNK] for a in state], tmp[i:i + _CHUNK],
                     g_decayed[i:i + _CHUNK])
                    for i in range(0, total, _CHUNK)]
            else:
                self._groups = [(w_flat, g_flat, decay, state, tmp, g_decayed)]
        else:
            tmps, g_decays = views(tmp), views(g_decayed)
            self._groups = [
                (w, np.asarray(g), lam if lam and w.ndim >= 2 else None,
                 [self.state[name][i] for name in self.state_names], tmps[i], g_decays[i])
                for i, (w, g) in enumerate(zip(params, grads))]
        self._key, self._refs = key, (params, grads)

    def _coefficients(self) -> tuple:
        """Per-step scalars shared by all arrays (Python floats: they never upcast float32)."""
        return (self.lr,)

    # ------------------------------------------------------------------ fit's stepper
    def stepper(self, net, observe: bool = False):
        """How ``fit`` updates ``net`` with this optimizer (:mod:`nnexp.core.steppers`): the
        plain ``step`` on the true gradients; subclasses hand out fused steppers where
        :meth:`_fusable` holds."""
        from nnexp.core.steppers import PlainStepper
        return PlainStepper(self, net)

    def _fusable(self, cls, net) -> bool:
        """A fused stepper written for exactly ``cls`` gives the same numbers: no weight decay,
        no gradient clipping, no per-step schedule (which sets ``lr`` inside ``step``), and
        parameters and gradients that tile the network's flat buffers."""
        return (type(self) is cls and not self.weight_decay
                and getattr(self, "clip_norm", None) is None
                and not getattr(self.schedule, "per_step", False)
                and _tiled_buffer(list(net.params)) is net.flat
                and _tiled_buffer(list(net.grads)) is net.grad_flat)

    def _update(self, w, g, state, tmp, coef) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        clip = "" if self.clip_norm is None else f", clip_norm={self.clip_norm}"
        return f"{type(self).__name__}(lr={self.base_lr}, weight_decay={self.weight_decay}{clip})"


