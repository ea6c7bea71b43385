"""The multilayer perceptron: parameters in one flat buffer, forward and backward passes.

Shapes, for a batch of ``n`` samples and layer sizes ``[d_0, d_1, ..., d_L]``:

- ``X``: ``(n, d_0)``; ``W_k``: ``(d_{k-1}, d_k)``; ``b_k``: ``(d_k,)``; ``Y``, ``P``: ``(n, d_L)``.
- forward, for k = 1..L:  ``Z_k = A_{k-1} W_k + b_k``;  ``A_k = f(Z_k)`` (hidden) and
  ``P = g(Z_L)`` (output), with ``A_0 = X``.
- backward: ``delta_L = dL/dZ_L`` from the head (``(P - Y)/n`` for canonical pairs); then for
  k = L..1: ``dW_k = A_{k-1}^T delta_k``, ``db_k = sum_rows delta_k`` and, for k > 1,
  ``delta_{k-1} = (delta_k W_k^T) * f'(Z_{k-1})`` (the chain rule, applied once per layer in
  reverse order). ``dL/dX`` is never computed: nothing upstream needs it.

How it is computed, for speed:

- All parameters are views into one contiguous buffer ``flat`` (W1, b1, W2, b2, ... in order)
  and all gradients views into ``grad_flat`` with the same layout, so an optimizer can update
  everything with a few whole-buffer ufunc calls.
- Because ``b_k`` follows ``W_k`` in memory, ``[W_k; b_k]`` is one ``(d_{k-1} + 1, d_k)`` matrix
  ``Wb_k``: with a row of ones appended to the activations, one ``dot`` computes ``Z_k``
  including the bias, and one ``dot`` gives ``[dW_k; db_k]``.
- Inside, activations are stored transposed, ``(d_k + 1, n)``: one sample per column and the
  row of ones last, so the ``d_k`` rows that the element-wise activation works on are one
  contiguous block (a ones *column* would make every element-wise call strided, about twice as
  slow on mini-batches). ``X`` is gathered as ``(n, d_0 + 1)`` and used transposed.
- Buffers live in a per-batch-size workspace that is reused across steps; every operation
  writes into it (``out`` passed positionally: NumPy parses it faster than ``out=``; matrix
  products through the ``ndarray.dot`` method, 0.24 us a call faster than ``np.dot``).
- With a sigmoid (an activation with ``halved = True``) and hidden layers, the inputs of
  every hidden layer are stored halved, ``[A_{k-1}; 1] / 2`` (``[X, 1]/2`` too), so one
  ``dot`` gives ``Z_k/2``, the argument of ``sigma(z) = (1 + tanh(z/2))/2``; the last hidden
  layer stores its ``[A; 1]`` as usual, so the logits come out exact. The deltas of the hidden
  layers are carried doubled (``2 delta_k``) so that ``[A; 1]/2 (2 delta_k)^T`` is the exact
  gradient. ``loss_and_grads`` returns the true gradients.
"""

from __future__ import annotations

import numpy as np

from nnexp.core._checks import call_with_options, choose, count, resolve_dtype
from nnexp.core.activations import ACTIVATIONS
from nnexp.core.initializers import INITIALIZERS
from nnexp.core.losses import make_head
from nnexp.core.metrics import labeler, to_labels

_MAX_WORKSPACES = 6        # training batch, last short batch, evaluation chunks: a few sizes
_CHUNK_ELEMENTS = 2 ** 20  # evaluation processes about this many activations per layer at once


class _Workspace:
    """Preallocated buffers for batches of exactly ``n`` samples (internal layout: transposed)."""

    def __init__(self, sizes: tuple[int, ...], dtype: np.dtype, n: int, scales: list[float]):
        c = sizes[-1]
        self.n = n
        # scales[k]: the factor of the input [A_k; 1] of layer k + 1 (1, or 1/2 if halved)
        self.X = np.full((n, sizes[0] + 1), scales[0], dtype)     # [X, 1]: gathered inputs
        self.Xin = self.X[:, :-1]                                 # ... the part to fill
        self.A0 = self.X.T                                        # A_0 = [X, 1]^T, a view
        self.H = [np.full((d + 1, n), s, dtype)                  # [A_k; 1], k = 1..L-1
                  for d, s in zip(sizes[1:-1], scales[1:])]
        self.Hin = [H[:-1] for H in self.H]                       # Z_k then A_k, contiguous
        self.T = [np.empty((d, n), dtype) for d in sizes[1:-1]]   # scratch for f and f'
        self.Z = np.empty((c, n), dtype)                          # output logits, kept intact
        self.P = np.empty((c, n), dtype)
        self.Y = np.empty((c, n), dtype)                          # gathered targets
        self.row = np.empty((1, n), dtype)
        self.tmp = np.empty((c, n), dtype)
        self.labels = np.empty(n, np.intp)
        self.inv_n = np.array(1.0 / n, dtype)                     # 0-d: fast, never upcasts
        self._sizes, self._dtype = sizes, dtype
        self._D = self.DT = None

    @property
    def D(self) -> list[np.ndarray]:
        """delta_k^T = (dL/dZ_k)^T, ``(d_k, n)`` for k = 1..L; allocated at the first backward."""
        if self._D is None:
            self._D = [np.empty((d, self.n), self._dtype) for d in self._sizes[1:]]
            self.DT = [D.T for D in self._D]                      # views, (n, d_k)
        return self._D


class MLP:
    """A fully connected network trained by backprop.

    Args:
        sizes: ``[d_0, ..., d_L]``, inputs first, at least two entries.
        activation: hidden activation, a key of ``ACTIVATIONS``.
        output, loss: a pair in ``VALID_OUTPUT_LOSS``.
        init: a key of ``INITIALIZERS``; ``init_kwargs`` its options (``epsilon``, ``std``,
            ``value``). Biases start at zero.
        dtype: ``"float32"`` or ``"float64"``; every array of the network has this dtype, and
            inputs are cast to it.
        seed: initial weights come from ``np.random.default_rng(seed)``.
        activation_kwargs: options of the activation (``leaky_relu``: ``slope``, default 0.01).

    Attributes:
        params: ``[W1, b1, W2, b2, ...]``, live views into ``flat``.
        grads: the gradients, views into ``grad_flat`` aligned with ``params``; every call of
            :meth:`loss_and_grads` overwrites them.
    """

    def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy",
                 init="he", dtype="float64", seed=0, *, init_kwargs=None, activation_kwargs=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least an input and an output width, got {list(sizes)!r}")
        self.sizes = tuple(count(d, f"layer width sizes[{i}]") for i, d in enumerate(sizes))
        self.activation, self.output, self.loss_name, self.init = activation, output, loss, init
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        self.init_kwargs = dict(init_kwargs or {})
        self.activation_kwargs = dict(activation_kwargs or {})
        self._act = call_with_options(choose(ACTIVATIONS, activation, "activation"),
                                      self.activation_kwargs, f"activation {activation!r}")
        self._act.bind(self.dtype)
        # halved internal layout (see the module docstring): the factor of each layer's input
        halved = self._act.halved and len(self.sizes) > 2
        self._scales = [0.5] * (len(self.sizes) - 2) + [1.0] if halved else [1.0] * (len(self.sizes) - 1)
        self._scale = self._scales[0]       # of [X, 1]
        self._half = np.array(0.5, self.dtype)
        # forward_halved's c for hidden layer k: c = scale of its output / 2
        self._halved_c = [np.array(s / 2, self.dtype) for s in self._scales[1:]] if halved else None
        self._head = make_head(output, loss).bind(self.dtype)
        if output == "softmax" and self.sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units (its single column would "
                             "always be 1); use output='sigmoid' for one 0/1 column")
        initializer = choose(INITIALIZERS, init, "init")

        # One buffer for all parameters, one for all gradients, in the order W1, b1, W2, ...
        shapes = []
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:]):
            shapes += [(d_in, d_out), (d_out,)]
        self.flat = np.zeros(sum(int(np.prod(s)) for s in shapes), self.dtype)
        self.grad_flat = np.zeros_like(self.flat)
        self.params, self.grads, offset = [], [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            self.params.append(self.flat[offset:offset + size].reshape(shape))
            self.grads.append(self.grad_flat[offset:offset + size].reshape(shape))
            offset += size
        self.param_names = [f"{kind}{k}" for k in range(1, len(self.sizes))
                            for kind in ("W", "b")]
        self.weights, self.biases = self.params[0::2], self.params[1::2]
        # [W_k; b_k] and [dW_k; db_k] as single matrices: b_k follows W_k in the buffers.
        self._Wb, self._dWb, offset = [], [], 0
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:]):
            size = (d_in + 1) * d_out
            self._Wb.append(self.flat[offset:offset + size].reshape(d_in + 1, d_out))
            self._dWb.append(self.grad_flat[offset:offset + size].reshape(d_in + 1, d_out))
            offset += size
        self._WbT = [Wb.T for Wb in self._Wb]       # views: they follow in-place updates

        rng = np.random.default_rng(seed)
        for W in self.weights:
            np.copyto(W, call_with_options(initializer, self.init_kwargs, f"init {init!r}",
                                           W.shape, rng))
        self._workspaces: dict[int, _Workspace] = {}
        self._chunk = max(1, min(8192, _CHUNK_ELEMENTS // max(self.sizes)))

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
                "activation_kwargs": self.activation_kwargs}

    def __repr__(self) -> str:
        return (f"MLP({list(self.sizes)}, activation={self.activation!r}, output={self.output!r}, "
                f"loss={self.loss_name!r}, dtype={self.dtype.name!r}, n_params={self.flat.size})")

    # ------------------------------------------------------------------ buffers and inputs
    def _workspace(self, n: int) -> _Workspace:
        ws = self._workspaces.get(n)
        if ws is None:
            if len(self._workspaces) >= _MAX_WORKSPACES:   # forget the oldest batch size
                del self._workspaces[next(iter(self._workspaces))]
            ws = self._workspaces[n] = _Workspace(self.sizes, self.dtype, n, self._scales)
        return ws

    def _as_inputs(self, X, Y=None):
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

    def _load(self, ws: _Workspace, X: np.ndarray, Y: np.ndarray | None = None) -> None:
        """Copy a batch into the workspace (``fit`` gathers straight into it instead)."""
        if self._scale == 1.0:
            np.copyto(ws.Xin, X)
        else:
            np.multiply(X, self._half, ws.Xin)
        if Y is not None:
            np.copyto(ws.Y, Y.T)

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
    def _forward(self, ws: _Workspace, train: bool = False) -> None:
        """Fill the hidden activations and the logits ``ws.Z`` from the batch in ``ws.X``
        (``train``: with the activation's training form, for ``_backward(ws, True)``)."""
        act, A = self._act, ws.A0
        if self._halved_c is None:
            f = act.train_methods()[0] if train else act.forward
            for WbT, H, Hin, T in zip(self._WbT, ws.H, ws.Hin, ws.T):
                WbT.dot(A, Hin)             # Z_k^T = [W_k; b_k]^T [A_{k-1}; 1]^T
                f(Hin, T)                   # A_k^T, in place
                A = H
        else:
            f = act.halved_methods()[0]
            for WbT, H, Hin, T, c in zip(self._WbT, ws.H, ws.Hin, ws.T, self._halved_c):
                WbT.dot(A, Hin)             # Z_k^T / 2, from the halved [A_{k-1}; 1]^T / 2
                f(Hin, T, c)                # A_k^T / 2 (A_k^T for the last hidden layer)
                A = H
        self._WbT[-1].dot(A, ws.Z)

    def _backward(self, ws: _Workspace, train: bool = False) -> None:
        """Fill ``grads`` from ``ws.D[-1] = delta_L^T`` and the cached activations (halved
        layout: ``D[k]`` holds ``delta^T / scale`` of the layer's input)."""
        act, D, DT, H, Hin = self._act, ws.D, ws.DT, ws.H, ws.Hin
        dWb, weights, T, cs = self._dWb, self.weights, ws.T, self._halved_c
        if cs is not None:
            b = act.halved_methods()[1]
        else:
            b = act.train_methods()[1] if train else act.backward
        for k in range(self.n_layers - 1, -1, -1):
            delta = D[k]
            # [dW_k; db_k] = [A_{k-1}, 1]^T delta_k: the row of ones sums delta for db
            (H[k - 1] if k else ws.A0).dot(DT[k], dWb[k])
            if k:
                weights[k].dot(delta, D[k - 1])     # (delta_k W_k^T)^T ...
                if cs is None:                      # ... times f'(Z_{k-1})
                    b(Hin[k - 1], D[k - 1], T[k - 1])
                else:
                    b(Hin[k - 1], D[k - 1], T[k - 1], cs[k - 1])

    def _train_step(self, ws: _Workspace, delta_scale: np.ndarray) -> float:
        """Loss on the batch in ``ws`` and, if it is finite, the gradients (``fit``'s path)
        times ``delta_scale * n`` (``delta_scale = ws.inv_n`` for the true ones)."""
        self._forward(ws, True)
        loss = self._head.train_loss(ws.Z, ws.P, ws.Y, ws)
        if loss - loss == 0.0:                     # finite: inf - inf and nan - nan are nan
            self._head.delta(ws.Z, ws.P, ws.Y, ws.D[-1], ws, delta_scale)
            self._backward(ws, True)
        return loss

    def _chunks(self, n: int):
        for start in range(0, n, self._chunk):
            yield slice(start, min(n, start + self._chunk))

    # ------------------------------------------------------------------ public passes
    def loss_and_grads(self, X, Y) -> tuple[float, list[np.ndarray]]:
        """Mean loss over the batch and its gradients (the live :attr:`grads` views).

        The whole batch is processed at once. The returned arrays are overwritten by the next
        call: copy them to keep them.
        """
        X, Y = self._as_inputs(X, Y)
        ws = self._workspace(X.shape[0])
        self._load(ws, X, Y)
        self._forward(ws)
        loss = self._head.forward_loss(ws.Z, ws.P, ws.Y, ws)
        self._head.delta(ws.Z, ws.P, ws.Y, ws.D[-1], ws)
        self._backward(ws)
        return loss, self.grads

    def predict_proba(self, X) -> np.ndarray:
        """Network outputs ``P``, ``(n_samples, d_L)``, computed in chunks of rows."""
        X = self._as_inputs(X)
        P = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for rows in self._chunks(X.shape[0]):
            ws = self._workspace(rows.stop - rows.start)
            self._load(ws, X[rows])
            self._forward(ws)
            self._head.predict(ws.Z, ws.P, ws)
            np.copyto(P[rows], ws.P.T)
        return P

    forward = predict_proba

    def predict(self, X) -> np.ndarray:
        """Class labels: argmax of the outputs, or ``p > 0.5`` for a single output column."""
        return to_labels(self.predict_proba(X))

    def evaluate(self, X, Y) -> tuple[float, float]:
        """``(mean loss, accuracy)`` over ``X``, one vectorised pass in chunks of rows."""
        X, Y = self._as_inputs(X, Y)
        n = X.shape[0]
        if n == 0:
            return float("nan"), float("nan")
        total, correct = 0.0, 0
        label = labeler(self.sizes[-1])
        for rows in self._chunks(n):
            ws = self._workspace(rows.stop - rows.start)
            self._load(ws, X[rows], Y[rows])
            self._forward(ws)
            total += ws.n * self._head.forward_loss(ws.Z, ws.P, ws.Y, ws)
            correct += np.count_nonzero(label(ws.P, ws.labels) == to_labels(Y[rows]))
        return total / n, correct / n

    def loss(self, X, Y) -> float:
        """Mean loss over ``X`` (forward pass only)."""
        return self.evaluate(X, Y)[0]

    # ------------------------------------------------------------------ persistence
    def save_npz(self, path) -> None:
        """Weights and architecture to ``path`` (see :mod:`nnexp.core.serialize`)."""
        from nnexp.core.serialize import save_npz
        save_npz(self, path)

    @classmethod
    def load_npz(cls, path) -> "MLP":
        from nnexp.core.serialize import load_npz
        return load_npz(path, cls)
