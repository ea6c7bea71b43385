"""The multilayer perceptron: a plan of layers over one flat parameter buffer.

Shapes, for a batch of ``n`` samples and layer sizes ``[d_0, d_1, ..., d_L]``:
``X`` ``(n, d_0)``; ``W_k`` ``(d_{k-1}, d_k)``; ``b_k`` ``(d_k,)``; ``Y``, ``P`` ``(n, d_L)``.
Forward, k = 1..L: ``Z_k = A_{k-1} W_k + b_k``, ``A_k = f_k(Z_k)`` (hidden; batch norm and
dropout as in :mod:`nnexp.core.layers`), ``P = g(Z_L)``, ``A_0 = X``. Backward: ``delta_L =
dL/dZ_L`` from the head (``(P - Y)/n`` for canonical pairs); then for k = L..1 each layer turns
the gradient of its output into ``dW_k``, ``db_k`` and the gradient of its input (the chain
rule, once per layer, in reverse order; ``dL/dX`` is never computed).

The plan is built once, in ``__init__`` (:mod:`nnexp.core.plan`): one
:class:`~nnexp.core.layers.Dense` per weight layer. Each layer describes its parameters
(:class:`~nnexp.core.layers.ParamSpec`), which lay out the buffers ``flat`` and ``grad_flat``
(layer by layer, ``W_k`` then ``b_k``, or ``W_k, gamma_k, beta_k``), name the parameters and
drive serialisation; an optimizer then updates everything with a few whole-buffer ufunc calls.
For each batch size, a :class:`~nnexp.core.plan.Workspace` holds every array of a pass and,
built on first use, each pass as a list of bound operations ``(function, args)``: forward and
backward are one uniform loop each (:func:`_run`).

How it is fast (each trick chosen per layer by the plan):

- ``[W_k; b_k]`` is one ``(d_{k-1} + 1, d_k)`` matrix (``b_k`` follows ``W_k`` in memory):
  with a row of ones appended to the activations, one ``dot`` computes ``Z_k`` with the bias,
  and one gives ``[dW_k; db_k]``.
- Activations are stored transposed, ``(d_k + 1, n)``: one sample per column and the row of
  ones last, so the element-wise work runs on contiguous blocks (a ones *column* would make
  every element-wise call strided, about twice as slow on mini-batches).
- Every operation writes into preallocated buffers (``out`` positional; products through
  ``ndarray.dot``, 0.24 us a call faster than ``np.dot``).
- Halved sigmoid: a chain of sigmoid layers from the input computes from ``Z/2`` (the argument
  of ``sigma(z) = (1 + tanh(z/2))/2``): inputs are stored halved, ``[A; 1]/2``, the last layer
  of the chain writes exact values, and the deltas are carried doubled, so the gradients come
  out exact (:mod:`nnexp.core.plan`).
- ReLU keeps its mask from the training forward pass; the softmax loss skips its max shift
  when that is safe (:mod:`nnexp.core.losses`).
"""

from __future__ import annotations

import numpy as np

from nnexp.core._checks import call_with_options, choose, count, fraction, resolve_dtype
from nnexp.core.initializers import INITIALIZERS
from nnexp.core.losses import make_head
from nnexp.core.metrics import labeler, to_labels
from nnexp.core.plan import Workspace, build_layers, is_list, make_activations

_MAX_WORKSPACES = 6        # training batch, last short batch, evaluation chunks: a few sizes
_CHUNK_ELEMENTS = 2 ** 20  # evaluation processes about this many activations per layer at once


def _run(ops) -> None:
    """One pass: the plan's bound operations in order."""
    for fn, args in ops:
        fn(*args)


class MLP:
    """A fully connected network trained by backprop, built once as a plan of layers.

    Args:
        sizes: ``[d_0, ..., d_L]``, inputs first, at least two entries.
        activation: hidden activation, a key of ``ACTIVATIONS``, or a list of keys, one per
            hidden layer.
        output, loss: a pair in ``VALID_OUTPUT_LOSS``.
        init: a key of ``INITIALIZERS``; ``init_kwargs`` its options (``epsilon``, ``std``,
            ``value``). Biases and batch norm's ``beta`` start at zero, ``gamma`` at one.
        dtype: ``"float32"`` or ``"float64"``; every array of the network has this dtype, and
            inputs are cast to it.
        seed: initial weights come from ``np.random.default_rng(seed)``.
        activation_kwargs: options of the activation (``leaky_relu``: ``slope``, default 0.01).
        dropout: inverted dropout rate in [0, 1) after each hidden activation (one number, or a
            list with one per hidden layer); training passes only, masks from the generator
            ``fit`` derives from its seed.
        batch_norm: batch normalisation before each hidden activation (a bool or a list); such
            a layer has no bias. Running statistics as ``torch.nn.BatchNorm1d`` (momentum 0.1,
            eps 1e-5), used outside training, saved with the weights.
        label_smoothing: ``eps`` in [0, 1) for softmax + cross-entropy: the targets become
            ``(1 - eps) y + eps / d_L`` (``torch.nn.functional.cross_entropy``'s definition),
            in training and evaluation losses alike.

    Attributes:
        layers: the plan, one :class:`~nnexp.core.layers.Dense` per weight layer.
        param_specs: :class:`~nnexp.core.layers.ParamSpec` of every parameter, in buffer order.
        params: live views into ``flat`` (``W1, b1, W2, b2, ...``; a batch-norm layer has
            ``W, gamma, beta``); ``param_names`` their names.
        grads: the gradients, views into ``grad_flat`` aligned with ``params``.
    """

    def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy",
                 init="he", dtype="float64", seed=0, *, init_kwargs=None, activation_kwargs=None,
                 dropout=0.0, batch_norm=False, label_smoothing=0.0):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output width, got {list(sizes)!r}")
        self.sizes = tuple(count(d, f"layer width sizes[{i}]") for i, d in enumerate(sizes))
        self.output, self.loss_name, self.init = output, loss, init
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        self.init_kwargs = dict(init_kwargs or {})
        self.activation_kwargs = dict(activation_kwargs or {})
        self.label_smoothing = fraction(label_smoothing, "label_smoothing")
        n_hidden = len(self.sizes) - 2
        acts = make_activations(activation, self.activation_kwargs, n_hidden)
        names = list(activation) if is_list(activation) else [activation] * n_hidden
        self.activation = list(activation) if is_list(activation) else activation
        self.activations = names
        self._head = make_head(output, loss).bind(self.dtype)
        if output == "softmax" and self.sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units (its single column would "
                             "always be 1); use output='sigmoid' for one 0/1 column")
        if self.label_smoothing and (output, loss) != ("softmax", "cross_entropy"):
            raise ValueError("label_smoothing applies to output='softmax' with "
                             "loss='cross_entropy' only")
        initializer = choose(INITIALIZERS, init, "init")
        self.layers = build_layers(self.sizes, acts, names, dropout, batch_norm, self.dtype)
        hidden = self.layers[:-1]               # the options as given, checked, JSON-clean
        self.dropout = [l.dropout for l in hidden] if is_list(dropout) else float(dropout)
        self.batch_norm = [l.batch_norm for l in hidden] if is_list(batch_norm) else bool(batch_norm)
        self._lay_out_parameters()
        rng = np.random.default_rng(seed)
        for W in self.weights:
            np.copyto(W, call_with_options(initializer, self.init_kwargs, f"init {init!r}",
                                           W.shape, rng))
        for layer in self.layers:
            if layer.batch_norm:
                layer.gamma[:] = 1.0
        self.input_scale = self.layers[0].in_scale   # of the gathered [X, 1]
        self._dropout_layers = [layer for layer in self.layers if layer.dropout]
        self._workspaces: dict[int, Workspace] = {}
        self._chunk = max(1, min(8192, _CHUNK_ELEMENTS // max(self.sizes)))

    def _lay_out_parameters(self) -> None:
        """One buffer for all parameters, one for all gradients, each layer's block in turn."""
        self.param_specs = [spec for layer in self.layers for spec in layer.specs()]
        self.flat = np.zeros(sum(spec.size for spec in self.param_specs), self.dtype)
        self.grad_flat = np.zeros_like(self.flat)
        offset = 0
        for layer in self.layers:
            size = sum(spec.size for spec in layer.specs())
            layer.bind(self.flat[offset:offset + size], self.grad_flat[offset:offset + size])
            offset += size
        self.params = [p for layer in self.layers for p in layer.params]
        self.grads = [g for layer in self.layers for g in layer.grads]
        self.param_names = [spec.name for spec in self.param_specs]
        self.weights = [layer.W for layer in self.layers]
        self.biases = [layer.b for layer in self.layers]   # None for a batch-norm layer

    # ------------------------------------------------------------------ description
    @property
    def n_layers(self) -> int:
        """Number of weight layers L (hidden layers + 1)."""
        return len(self.sizes) - 1

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable (weights not included)."""
        return {"sizes": list(self.sizes), "activation": self.activation, "output": self.output,
                "loss": self.loss_name, "init": self.init, "dtype": self.dtype.name,
                "seed": self.seed, "init_kwargs": self.init_kwargs,
                "activation_kwargs": self.activation_kwargs, "dropout": self.dropout,
                "batch_norm": self.batch_norm, "label_smoothing": self.label_smoothing}

    def buffers(self) -> dict[str, np.ndarray]:
        """State that is not trained by gradients (batch norm's ``running_mean<k>``,
        ``running_var<k>``), live arrays by name."""
        return {name: a for layer in self.layers for name, a in layer.buffers_dict().items()}

    def __repr__(self) -> str:
        return (f"MLP({list(self.sizes)}, activation={self.activation!r}, output={self.output!r}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}, n_params={self.flat.size})")

    # ------------------------------------------------------------------ buffers and inputs
    def workspace(self, n: int) -> Workspace:
        """The (cached) :class:`~nnexp.core.plan.Workspace` for batches of ``n`` samples."""
        ws = self._workspaces.get(n)
        if ws is None:
            if len(self._workspaces) >= _MAX_WORKSPACES:   # forget the oldest batch size
                del self._workspaces[next(iter(self._workspaces))]
            ws = self._workspaces[n] = Workspace(self.layers, self.dtype, n)
        return ws

    def as_inputs(self, X, Y=None):
        """``X`` (and ``Y``) as arrays of the network's dtype, shapes checked."""
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have shape (n_samples, {self.sizes[0]}), got {X.shape}")
        if Y is None:
            return X
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.ndim == 1 and self.sizes[-1] == 1:
            Y = Y.reshape(-1, 1)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise ValueError(f"Y must have shape ({X.shape[0]}, {self.sizes[-1]}) to match X and "
                             f"the output layer, got {Y.shape}")
        return X, Y

    _as_inputs = as_inputs

    def internal_targets(self, Y: np.ndarray) -> np.ndarray:
        """``Y`` ``(n, d_L)`` as the head reads it: transposed, contiguous, label-smoothed."""
        Yt = np.ascontiguousarray(Y.T, dtype=self.dtype)
        if self.label_smoothing:
            eps = self.label_smoothing
            Yt = Yt * (1.0 - eps) + eps / self.sizes[-1]
        return Yt

    def _load(self, ws: Workspace, X: np.ndarray, Y: np.ndarray | None = None) -> None:
        """Copy a batch into the workspace (``fit`` gathers straight into it instead)."""
        np.multiply(X, self.input_scale, ws.Xin)
        if Y is not None:
            np.copyto(ws.Y, self.internal_targets(Y))

    def set_params(self, params) -> None:
        """Copy values into the live parameters (a list shaped like :attr:`params`)."""
        params = list(params)
        if len(params) != len(self.params):
            raise ValueError(f"expected {len(self.params)} arrays, got {len(params)}")
        for name, live, new in zip(self.param_names, self.params, params):
            if np.shape(new) != live.shape:
                raise ValueError(f"{name} must have shape {live.shape}, got {np.shape(new)}")
            np.copyto(live, new)

    # ------------------------------------------------------------------ passes on a workspace
    def _ops(self, ws: Workspace, kind: str, train: bool) -> list:
        return ws.ops.get((kind, train)) or ws.compile(kind, train)

    def train_step(self, ws: Workspace, scale=None, rng=None) -> float:
        """Training pass on the batch in ``ws``: forward in training mode (dropout masks from
        ``rng``, batch statistics), the loss and, if it is finite, the gradients, with
        ``scale`` (a 0-d array of the dtype) in place of the mean's ``1/n`` (None: the true
        gradients; ``fit`` passes what its optimizer's stepper asks for)."""
        if self._dropout_layers:
            self._set_rng(rng)
        passes = ws.training
        if passes is None:       # backward first: it allocates the deltas the head writes
            passes = ws.training = (self._ops(ws, "backward", True), self._ops(ws, "forward", True))
        backward, forward = passes
        for fn, args in forward:
            fn(*args)
        loss = self._head.train_loss(ws.Z, ws.P, ws.Y, ws)
        if loss - loss == 0.0:                     # finite: inf - inf and nan - nan are nan
            self._head.delta(ws.Z, ws.P, ws.Y, ws.layers[-1].D, ws, scale)
            for fn, args in backward:
                fn(*args)
        return loss

    def _set_rng(self, rng) -> None:
        for layer in self._dropout_layers:
            layer.rng = rng

    def _chunks(self, n: int):
        for start in range(0, n, self._chunk):
            yield slice(start, min(n, start + self._chunk))

    # ------------------------------------------------------------------ public passes
    def loss_and_grads(self, X, Y, *, train: bool = False, seed=None) -> tuple[float, list[np.ndarray]]:
        """Mean loss over the batch and its gradients (the live :attr:`grads` views).

        ``train``: in training mode (dropout masks from ``np.random.default_rng(seed)``, the
        same masks for the same seed and batch size; batch statistics, running statistics
        updated). The whole batch is processed at once; the returned arrays are overwritten by
        the next call: copy them to keep them.
        """
        X, Y = self.as_inputs(X, Y)
        ws = self.workspace(X.shape[0])
        self._load(ws, X, Y)
        if train:
            loss = self.train_step(ws, None, np.random.default_rng(seed))
            return loss, self.grads
        backward = self._ops(ws, "backward", False)
        _run(self._ops(ws, "forward", False))
        loss = self._head.forward_loss(ws.Z, ws.P, ws.Y, ws)
        self._head.delta(ws.Z, ws.P, ws.Y, ws.layers[-1].D, ws)
        _run(backward)
        return loss, self.grads

    def predict_proba(self, X) -> np.ndarray:
        """Network outputs ``P``, ``(n_samples, d_L)``, in evaluation mode, in chunks of rows."""
        X = self.as_inputs(X)
        P = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for rows in self._chunks(X.shape[0]):
            ws = self.workspace(rows.stop - rows.start)
            self._load(ws, X[rows])
            _run(self._ops(ws, "forward", False))
            self._head.predict(ws.Z, ws.P, ws)
            np.copyto(P[rows], ws.P.T)
        return P

    forward = predict_proba

    def predict(self, X) -> np.ndarray:
        """Class labels: argmax of the outputs, or ``p > 0.5`` for a single output column."""
        return to_labels(self.predict_proba(X))

    def evaluate(self, X, Y, *, predicted: np.ndarray | None = None) -> tuple[float, float]:
        """``(mean loss, accuracy)`` over ``X`` in evaluation mode, chunks of rows.

        ``predicted``: an ``(n,)`` integer array that receives each row's predicted label (what
        :meth:`predict` returns), so that a caller needing both pays for one forward pass.
        """
        X, Y = self.as_inputs(X, Y)
        n = X.shape[0]
        if n == 0:
            return float("nan"), float("nan")
        total, correct = 0.0, 0
        label = labeler(self.sizes[-1])
        for rows in self._chunks(n):
            ws = self.workspace(rows.stop - rows.start)
            self._load(ws, X[rows], Y[rows])
            _run(self._ops(ws, "forward", False))
            total += ws.n * self._head.forward_loss(ws.Z, ws.P, ws.Y, ws)
            labels = label(ws.P, ws.labels)
            correct += np.count_nonzero(labels == to_labels(Y[rows]))
            if predicted is not None:
                predicted[rows] = labels
        return total / n, correct / n

    def loss(self, X, Y, *, train: bool = False, seed=None) -> float:
        """Mean loss over ``X`` (forward pass only; ``train`` as in :meth:`loss_and_grads`)."""
        if not train:
            return self.evaluate(X, Y)[0]
        X, Y = self.as_inputs(X, Y)
        ws = self.workspace(X.shape[0])
        self._load(ws, X, Y)
        self._set_rng(np.random.default_rng(seed))   # the masks of loss_and_grads(seed=seed)
        _run(self._ops(ws, "forward", True))
        return self._head.forward_loss(ws.Z, ws.P, ws.Y, ws)

    # ------------------------------------------------------------------ persistence
    def save_npz(self, path) -> None:
        """Weights, running statistics and architecture to ``path`` (see
        :mod:`nnexp.core.serialize`)."""
        from nnexp.core.serialize import save_npz
        save_npz(self, path)

    @classmethod
    def load_npz(cls, path) -> "MLP":
        from nnexp.core.serialize import load_npz
        return load_npz(path, cls)
