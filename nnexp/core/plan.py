"""From the MLP's constructor options to its plan: one :class:`~nnexp.core.layers.Dense` per
weight layer, each told which speed tricks apply to it, and the per-batch-size
:class:`Workspace` the passes run in.

Per-layer options (``activation``, ``dropout``, ``batch_norm``) are a single value for every
hidden layer or a list with one entry per hidden layer.

The halved sigmoid (see :mod:`nnexp.core.network`) is chosen layer by layer: a sigmoid layer
without batch norm computes from ``Z/2`` when its input can be stored halved, that is when it is
the first layer (the inputs are gathered halved) or follows another halved layer (which writes
its output pre-scaled). Such a layer writes its output halved when the next layer is halved too,
exact otherwise; every other layer reads and writes exact values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnexp.core._checks import call_with_options, choose, fraction
from nnexp.core.activations import ACTIVATIONS
from nnexp.core.layers import Dense


def is_list(value) -> bool:
    """A per-layer list (any sequence but a string: lists, tuples, OmegaConf lists)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def per_layer(value, n_hidden: int, name: str) -> list:
    """``value`` for each of ``n_hidden`` hidden layers: a list of that length, or one value."""
    if is_list(value):
        if len(value) != n_hidden:
            raise ValueError(f"{name} has {len(value)} entries but the network has {n_hidden} "
                             f"hidden layers; give one value per hidden layer, or a single value")
        return list(value)
    return [value] * n_hidden


def make_activations(activation, kwargs: dict, n_hidden: int) -> list:
    """Activation objects, one per hidden layer. For one name, ``kwargs`` must all be its
    options (as before lists existed); for a list, each option goes to the activations that
    declare it and must be declared by at least one."""
    if isinstance(activation, str):
        cls = choose(ACTIVATIONS, activation, "activation")
        what = f"activation {activation!r}"
        first = call_with_options(cls, kwargs, what)     # checked even without hidden layers
        return ([first] + [call_with_options(cls, kwargs, what)
                           for _ in range(n_hidden - 1)])[:n_hidden]
    names = per_layer(activation, n_hidden, "activation")
    classes = [choose(ACTIVATIONS, name, "activation") for name in names]
    unused = sorted(k for k in kwargs if not any(_declares(cls, k) for cls in classes))
    if unused:
        raise TypeError(f"unknown option {unused[0]!r} for activations {names!r}")
    return [call_with_options(cls, {k: v for k, v in kwargs.items() if _declares(cls, k)},
                              f"activation {name!r}") for cls, name in zip(classes, names)]


def _declares(cls, option: str) -> bool:
    import inspect
    parameter = inspect.signature(cls).parameters.get(option)
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


def build_layers(sizes, activations: list, names: list, dropout, batch_norm, dtype) -> list[Dense]:
    """The plan: ``len(sizes) - 1`` dense layers (the last one the output layer)."""
    n_hidden = len(sizes) - 2
    if not is_list(dropout):                 # checked even without hidden layers
        fraction(dropout, "dropout")
    rates = [fraction(r, f"dropout[{i}]") for i, r in enumerate(per_layer(dropout, n_hidden, "dropout"))]
    norms = per_layer(batch_norm, n_hidden, "batch_norm")
    for i, flag in enumerate([batch_norm] if not is_list(batch_norm) else norms):
        if not isinstance(flag, (bool, np.bool_)):
            where = "batch_norm" if not is_list(batch_norm) else f"batch_norm[{i}]"
            raise TypeError(f"{where} must be true or false, got {flag!r}")
    for act in activations:
        act.bind(dtype)
    halved = []
    for i, act in enumerate(activations):
        halved.append(bool(act.halved) and not norms[i] and (i == 0 or halved[i - 1]))
    scales = [0.5 if h else 1.0 for h in halved] + [1.0]   # input scale of layer i + 1
    layers = [Dense(i + 1, sizes[i], sizes[i + 1], dtype, activation=activations[i],
                    activation_name=names[i], batch_norm=bool(norms[i]), dropout=rates[i],
                    in_scale=scales[i], out_scale=scales[i + 1], halved=halved[i])
              for i in range(n_hidden)]
    layers.append(Dense(len(sizes) - 1, sizes[-2], sizes[-1], dtype,
                        in_scale=scales[n_hidden]))
    return layers


class Workspace:
    """Preallocated arrays for batches of exactly ``n`` samples (internal layout: transposed).

    Public attributes: ``n``; ``X`` ``(n, d_0 + 1)``, the gathered inputs ``[X, 1]`` (times
    the network's ``input_scale``), ``Xin`` its first ``d_0`` columns; ``Y`` ``(d_L, n)`` the
    targets (label-smoothed if the network smooths); ``Z`` the logits and ``P`` the outputs,
    ``(d_L, n)``. :meth:`activations` gives the hidden outputs of the last pass.
    """

    def __init__(self, layers: list[Dense], dtype: np.dtype, n: int):
        c, d0 = layers[-1].d_out, layers[0].d_in
        self.n = n
        self.X = np.full((n, d0 + 1), layers[0].in_scale, dtype)   # [X, 1]: gathered inputs
        self.Xin = self.X[:, :-1]                                   # ... the part to fill
        self.A0 = self.X.T                                          # [X, 1]^T, a view
        self.layers = [layer.buffers(n) for layer in layers]
        self.Z = self.layers[-1].Z
        self.P = np.empty((c, n), dtype)
        self.Y = np.empty((c, n), dtype)
        self.row = np.empty((1, n), dtype)                          # the head's scratch
        self.tmp = np.empty((c, n), dtype)
        self.labels = np.empty(n, np.intp)
        self.inv_n = np.array(1.0 / n, dtype)                       # 0-d: never upcasts
        self.ops: dict[tuple[str, bool], list] = {}
        self.training = None      # (backward, forward) ops of a training step, once compiled
        self._plan = layers

    def compile(self, kind: str, train: bool) -> list:
        """The bound operations of a ``"forward"`` or ``"backward"`` pass (cached in ``ops``)."""
        inputs, A = [], self.A0
        for layer, bf in zip(self._plan, self.layers):
            inputs.append(A)
            A = layer.output(bf, train)
        ops = []
        if kind == "forward":
            for layer, bf, A in zip(self._plan, self.layers, inputs):
                ops += layer.forward_ops(bf, A, train)
        else:                        # the chain rule, once per layer, in reverse order
            for layer, bf in zip(self._plan, self.layers):
                if bf.D is None:
                    bf.D = np.empty((layer.d_out, self.n), layer.dtype)
            for k in range(len(self._plan) - 1, -1, -1):
                D_in = self.layers[k - 1].D if k else None
                ops += self._plan[k].backward_ops(self.layers[k], inputs[k], D_in, train)
        self.ops[kind, train] = ops
        return ops

    def activations(self) -> list[np.ndarray]:
        """``A_k`` ``(n, d_k)`` of each hidden layer from the last pass, before dropout, as
        stored: times the layer's ``out_scale`` (live views, overwritten by the next pass)."""
        return [bf.Hin.T for bf in self.layers[:-1]]

    def masks(self) -> dict[int, np.ndarray]:
        """Layer k -> its dropout factors ``m / keep`` ``(n, d_k)`` of the last training pass."""
        return {layer.k: bf.M.T for layer, bf in zip(self._plan, self.layers) if layer.dropout}
