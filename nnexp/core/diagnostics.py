"""Training dynamics, per layer and per epoch: gradient, weight, update and activation statistics.

A :class:`Recorder` watches the weight layers of a network while ``fit`` trains it. ``fit``
calls its :class:`RecorderHook` (``on_step``: after the gradients, before the update) on the
sampled steps only, which take :meth:`Recorder.sample`; the
epoch's numbers come out of :meth:`Recorder.epoch_metrics`, named ``layer<k>/<statistic>``
with k = 1 for the first weight layer. A statistic that does not apply to a layer is absent.

Per weight layer k, with ``W_k`` ``(fan_in, width)``, ``b_k`` ``(width,)`` and, for a hidden
layer, its output activations ``A_k`` ``(n, width)`` on the step's batch:

==========================  ====================================================================
``grad_norm``               mean over the sampled steps of ``||dL/dW_k||_F`` (true gradients)
``bias_grad_norm``          the same for ``b_k``
``weight_norm``             ``||W_k||_F`` at the end of the epoch
``update_ratio``            mean over the sampled steps of ``||W_k' - W_k||_F / ||W_k||_F``, the
                            step actually taken (optimizer, schedule, decay, clipping) over the
                            weights before it; ~1e-3 is the classic healthy value
``act_mean``, ``act_std``   mean and standard deviation of every entry of ``A_k`` over the sampled
                            batches, pooled (hidden layers)
``saturated_fraction``      sigmoid: entries with ``A < 0.02`` or ``A > 0.98``; tanh:
                            ``|A| > 0.98`` (within 0.02 of the bounds), over the sampled entries
``dead_fraction``           ReLU: units never positive for any sample of the sampled batches
``distinct_units``          hidden layers: how many of the ``width`` units are pairwise distinct,
                            comparing each unit's incoming weights and bias ``[W_k[:, j]; b_k[j]]``
                            (batch norm's ``gamma_j, beta_j`` appended) at the end of the epoch
``dropout_kept_fraction``   dropout layers: kept fraction of the sampled masks' entries
``bn_mean``, ``bn_std``     batch-norm layers: mean over units of the running mean and of the
                            square root of the running variance, at the end of the epoch
``bn_mean_norm``,           batch-norm layers: ``||running_mean||`` and ``||running_var||``
``bn_var_norm``             at the end of the epoch
==========================  ====================================================================

Sampling: the statistics of a step are taken on every ``every``-th step of an epoch, starting
with its first (``every = 1``: every step, exact epoch averages). ``fit`` runs only those steps
with the optimizer's observable stepper and the others fused, as without diagnostics, so the
cost is that of the sampled steps. Gradient and activation statistics read the buffers the
training step already filled; the update of a sampled step is measured right after it
(:meth:`Recorder.finish_update`) against a copy of the weights made before it. Weight norms,
distinct units and batch-norm statistics are computed once per epoch.

Distinct units: unit j duplicates an earlier unit i < j if
``||v_i - v_j|| <= rtol * rms_j ||v_j||``; the count is the number of units that duplicate no
earlier unit (constant initialisation: 1; random: the width). Distances come from the Gram matrix
in float64, which resolves differences down to ~1e-8 of the vectors' norm, far below ``rtol``.

NumPy and the standard library only (``nnexp.core`` rule).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: how close to its bounds a sigmoid or tanh output counts as saturated
SATURATION_MARGIN = 0.02
#: relative tolerance under which two units count as the same (see the module docstring)
DISTINCT_RTOL = 1e-4

# activation name -> (low bound, high bound) of its output, for the saturated fraction
_BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}


@dataclass
class LayerView:
    """What the recorder reads of weight layer ``k`` (live arrays, never copied by the caller).

    Attributes:
        k: 1 for the first weight layer.
        W, dW: the weights ``(fan_in, width)`` and their gradient, live buffers.
        b, db: the bias ``(width,)`` and its gradient, or None.
        activation: name of the hidden activation whose output ``A_k`` is passed to
            :meth:`Recorder.step` (``"sigmoid"``, ``"relu"``, ...), None for the output layer.
        act_scale: ``A_k`` = ``act_scale`` times the array passed (a halved internal layout).
        unit_extra: per-unit parameters compared with the incoming weights for distinctness
            (batch norm's ``gamma``, ``beta``), each ``(width,)``.
        running_mean, running_var: batch norm's running statistics ``(width,)``, or None.
        dropout: the layer's dropout rate (0: none).
    """

    k: int
    W: np.ndarray
    dW: np.ndarray
    b: np.ndarray | None = None
    db: np.ndarray | None = None
    activation: str | None = None
    act_scale: float = 1.0
    unit_extra: Sequence[np.ndarray] = ()
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    dropout: float = 0.0


def norm(a: np.ndarray) -> float:
    """Frobenius norm of ``a``: one BLAS ``dot`` of the flattened array with itself, in the
    array's dtype (a float32 copy to float64 first would cost 100x the dot; float32's relative
    error here, ~1e-6, is far below what the statistic is read for)."""
    v = a.reshape(-1)
    return math.sqrt(float(v.dot(v)))


def distinct_units(V: np.ndarray, rtol: float = DISTINCT_RTOL) -> int:
    """Units (rows of ``V``, ``(width, features)``) that duplicate no earlier row within
    ``rtol`` times the rows' RMS norm (see the module docstring)."""
    V = np.asarray(V, np.float64)
    width = V.shape[0]
    if width <= 1:
        return width
    squares = np.einsum("ij,ij->i", V, V)
    D2 = squares[:, None] + squares[None, :] - 2.0 * (V @ V.T)   # ||v_i - v_j||^2
    threshold = (rtol * math.sqrt(float(squares.mean()))) ** 2
    close = np.tril(D2 <= threshold, -1)                           # pairs i < j only
    return int(width - np.count_nonzero(close.any(axis=1)))


def unit_vectors(layer: LayerView) -> np.ndarray:
    """``(width, fan_in + extras)``: each unit's incoming weights, bias and per-unit extras."""
    columns = [layer.W.T]
    if layer.b is not None:
        columns.append(layer.b[:, None])
    columns += [extra[:, None] for extra in layer.unit_extra]
    return np.hstack([np.asarray(c, np.float64) for c in columns])


@dataclass
class _Sums:
    """One layer's running sums over the sampled steps of an epoch."""

    grad: float = 0.0
    bias_grad: float = 0.0
    ratio: float = 0.0
    ratios: int = 0
    act_sum: float = 0.0
    act_squares: float = 0.0
    act_entries: int = 0
    saturated: int = 0
    kept: int = 0
    mask_entries: int = 0
    unit_max: np.ndarray | None = field(default=None, repr=False)


class Recorder:
    """Per-layer statistics of an epoch, accumulated from ``fit``'s ``on_step`` calls.

    ``layers``: one :class:`LayerView` per weight layer, in order. ``every``: sample every
    ``every``-th step of each epoch (the first always). Use: call :meth:`step` after each
    step's gradients and before its update, and :meth:`epoch_metrics` once the epoch's last
    update is done (it resets the sums for the next epoch).
    """

    def __init__(self, layers: Sequence[LayerView], every: int = 1, rtol: float = DISTINCT_RTOL):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a whole number >= 1, got {every!r}")
        self.layers = list(layers)
        self.every = every
        self.rtol = rtol
        self._saved = [np.empty_like(layer.W) for layer in self.layers]
        self._pending = False
        self._reset()

    def _reset(self) -> None:
        self._sums = [_Sums() for _ in self.layers]
        self._calls = 0
        self.samples = 0

    # ------------------------------------------------------------------ per step
    def step(self, activations: Sequence[np.ndarray | None] = (),
             masks: Mapping[int, np.ndarray] | None = None) -> None:
        """One training step, before its update (call it for every step: it samples every
        ``every``-th). ``activations[i]``: ``A`` of layer ``layers[i]`` ``(n, width)`` (or
        None), for the hidden layers; ``masks``: layer k -> the step's dropout keep-mask
        (nonzero = kept)."""
        self.finish_update()
        sample = self._calls % self.every == 0
        self._calls += 1
        if sample:
            self.sample(activations, masks)

    def sample(self, activations: Sequence[np.ndarray | None] = (),
               masks: Mapping[int, np.ndarray] | None = None) -> None:
        """Take this step's statistics (whoever chose to sample it, :meth:`step` or ``fit``
        through :class:`RecorderHook`); its update is measured by :meth:`finish_update`, which
        the next call or the epoch's end makes if nobody did."""
        self.finish_update()
        self.samples += 1
        for i, (layer, sums) in enumerate(zip(self.layers, self._sums)):
            sums.grad += norm(layer.dW)
            if layer.db is not None:
                sums.bias_grad += norm(layer.db)
            np.copyto(self._saved[i], layer.W)
            if i < len(activations) and activations[i] is not None and layer.activation:
                self._activation(layer, sums, activations[i])
            if masks and layer.k in masks:
                mask = masks[layer.k]
                sums.kept += int(np.count_nonzero(mask))
                sums.mask_entries += mask.size
        self._pending = True

    def _activation(self, layer: LayerView, sums: _Sums, A: np.ndarray) -> None:
        """Pooled sums, saturated entries and per-unit maxima of ``A`` (``act_scale`` applied)."""
        scale = layer.act_scale
        sums.act_sum += scale * float(A.sum(dtype=np.float64))
        flat = A.reshape(-1)
        sums.act_squares += scale * scale * float(np.dot(flat, flat))
        sums.act_entries += A.size
        bounds = _BOUNDS.get(layer.activation)
        if bounds is not None:   # |A - centre| > half-range - margin, in the array's own scale
            low, high = bounds
            centre, reach = (low + high) / 2, (high - low) / 2 - SATURATION_MARGIN
            sums.saturated += int(np.count_nonzero(np.abs(A - centre / scale) > reach / scale))
        if layer.activation == "relu":
            batch_max = A.max(axis=0)
            if sums.unit_max is None:
                sums.unit_max = batch_max.astype(np.float64)
            else:
                np.maximum(sums.unit_max, batch_max, out=sums.unit_max)

    def finish_update(self) -> None:
        """The update ratio of the last sampled step, once its weights are updated."""
        if not self._pending:
            return
        self._pending = False
        for layer, sums, saved in zip(self.layers, self._sums, self._saved):
            before = norm(saved)
            if before > 0.0:
                np.subtract(layer.W, saved, saved)
                sums.ratio += norm(saved) / before
                sums.ratios += 1

    # ------------------------------------------------------------------ per epoch
    def epoch_metrics(self) -> dict[str, float]:
        """``{"layer<k>/<statistic>": value}`` for the epoch just ended; resets the sums.
        (A diverged network's inf/nan weights give inf/nan statistics, without warnings.)"""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._epoch_metrics()

    def _epoch_metrics(self) -> dict[str, float]:
        self.finish_update()
        out: dict[str, float] = {}
        count = max(self.samples, 1)
        for layer, sums in zip(self.layers, self._sums):
            name = f"layer{layer.k}/"
            if self.samples:
                out[name + "grad_norm"] = sums.grad / count
                if layer.db is not None:
                    out[name + "bias_grad_norm"] = sums.bias_grad / count
            out[name + "weight_norm"] = norm(layer.W)
            if sums.ratios:
                out[name + "update_ratio"] = sums.ratio / sums.ratios
            out.update(self._activation_metrics(name, layer, sums))
            if layer.activation is not None:
                out[name + "distinct_units"] = float(distinct_units(unit_vectors(layer), self.rtol))
            if sums.mask_entries:
                out[name + "dropout_kept_fraction"] = sums.kept / sums.mask_entries
            if layer.running_mean is not None:
                out[name + "bn_mean"] = float(np.mean(layer.running_mean, dtype=np.float64))
                out[name + "bn_mean_norm"] = norm(layer.running_mean)
            if layer.running_var is not None:
                out[name + "bn_std"] = float(np.mean(np.sqrt(np.asarray(layer.running_var, np.float64))))
                out[name + "bn_var_norm"] = norm(layer.running_var)
        self._reset()
        return out

    @staticmethod
    def _activation_metrics(name: str, layer: LayerView, sums: _Sums) -> dict[str, float]:
        if not sums.act_entries:
            return {}
        mean = sums.act_sum / sums.act_entries
        variance = max(sums.act_squares / sums.act_entries - mean * mean, 0.0)
        out = {name + "act_mean": mean, name + "act_std": math.sqrt(variance)}
        if layer.activation in _BOUNDS:
            out[name + "saturated_fraction"] = sums.saturated / sums.act_entries
        if sums.unit_max is not None:
            out[name + "dead_fraction"] = float(np.count_nonzero(sums.unit_max <= 0.0)) / sums.unit_max.size
        return out


def layer_views(net) -> list[LayerView]:
    """One :class:`LayerView` per weight layer of an :class:`~nnexp.core.MLP`, from its public
    plan (``net.layers``): live weights, gradients, batch-norm parameters and statistics."""
    views = []
    for layer in net.layers:
        bn = layer.batch_norm
        views.append(LayerView(
            layer.k, layer.W, layer.dW, layer.b, layer.db, activation=layer.activation_name,
            act_scale=1.0 / layer.out_scale, unit_extra=(layer.gamma, layer.beta) if bn else (),
            running_mean=layer.running_mean if bn else None,
            running_var=layer.running_var if bn else None, dropout=layer.dropout))
    return views


class RecorderHook:
    """``fit(on_step=...)`` for a :class:`Recorder`: ``fit`` calls it on every
    ``recorder.every``-th step of each epoch only (its ``every`` attribute), and
    :meth:`after_update` right after those steps' updates, so the steps in between run the
    optimizer's fused stepper. Reads the batch's hidden activations and dropout masks through
    the workspace's public accessors (``ws.activations()``, ``ws.masks()``; activations as
    stored, times each layer's ``out_scale``, which the views undo)."""

    def __init__(self, recorder: Recorder):
        self.recorder, self.every = recorder, recorder.every

    def __call__(self, ws) -> None:
        self.recorder.sample(ws.activations(), ws.masks() or None)

    def after_update(self) -> None:
        self.recorder.finish_update()


def recorder_for(net, every: int = 1, rtol: float = DISTINCT_RTOL) -> Recorder:
    """A :class:`Recorder` of an :class:`~nnexp.core.MLP`, with ``hook``, its
    :class:`RecorderHook` for ``fit(on_step=)``."""
    recorder = Recorder(layer_views(net), every=every, rtol=rtol)
    recorder.hook = RecorderHook(recorder)
    return recorder
