"""Hidden activations and output functions, written for in-place use on preallocated buffers.

Hidden activations act element-wise on a pre-activation ``Z`` of any shape (the network passes
``(n_units, n_samples)`` blocks):

=============  ===============================  =====================================
name           a = f(z)                          f'(z), from the cached output a
=============  ===============================  =====================================
identity       z                                 1
sigmoid        1 / (1 + e^{-z})                  a (1 - a)
tanh           tanh z                            1 - a^2
relu           max(z, 0)                         [a > 0]
leaky_relu     max(z, s z), 0 <= s < 1           1 if a > 0 else s
=============  ===============================  =====================================

Every derivative is written in terms of ``a`` (as scikit-learn does), so the forward pass can
overwrite ``Z`` with ``A`` and backprop still has all it needs: ``forward(Z, tmp)`` turns the
buffer ``Z`` into ``A`` in place, ``backward(A, delta, tmp)`` multiplies ``delta = dL/dA`` by
``f'`` in place, turning it into ``dL/dZ``. ``tmp`` is a scratch buffer shaped like ``A``.

Output functions map the last layer's logits ``Z`` (kept intact: stable losses read them) to
outputs ``P`` and back-propagate through their Jacobian: ``vjp(P, G, out)`` computes
``out = J^T G`` sample by sample, where ``G = dL/dP``. They work in the network's internal
layout, ``(n_outputs, n_samples)``: one sample per *column*, so that the softmax normalises
over axis 0. Calling an output object, ``OUTPUTS["softmax"]()(Z)``, takes and returns the usual
``(n_samples, n_outputs)`` instead.

The sigmoid is computed as ``(1 + tanh(z/2)) / 2``: the same function, but no ``exp`` that can
overflow, so inputs of +-1e4 give exactly 0 and 1 without a warning.

Constants (0.5, 1, the slope) are held as 0-d arrays of the network's dtype, made by
``bind(dtype)``: NumPy handles a 0-d array operand about twice as fast as a Python float on the
small arrays of a mini-batch, and a matching dtype never upcasts float32.
"""

from __future__ import annotations

import numpy as np

from nnexp.core._checks import fraction


def _floating(Z) -> np.ndarray:
    """``Z`` as an array of its own float dtype, or float64 if it is not floating."""
    Z = np.asarray(Z)
    return Z if Z.dtype.kind == "f" else Z.astype(np.float64)


class _Bound:
    """Holds the constants of one dtype; call ``bind(dtype)`` before the in-place methods."""

    name = "?"

    def __init__(self):
        self.bind(np.float64)

    def bind(self, dtype):
        """Make the constants for arrays of ``dtype``; returns self."""
        self.dtype = np.dtype(dtype)
        self.half, self.one, self.zero, self.quarter, self.two = (
            np.array(v, self.dtype) for v in (0.5, 1.0, 0.0, 0.25, 2.0))
        return self

    def _bound_to(self, A: np.ndarray) -> None:
        if A.dtype != self.dtype:
            self.bind(A.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Activation(_Bound):
    """Element-wise hidden activation; subclasses implement ``forward`` and ``backward``.

    ``halved = True`` (the sigmoid) marks an activation with a faster internal form that the
    network uses instead (see :mod:`nnexp.core.network`): the layer computes from ``Z / 2``,
    ``forward_halved(Z/2, T, c)`` turns it in place into ``2 c f(Z)`` (``c`` = 1/4: ``f/2``;
    ``c`` = 1/2: ``f``), leaving in ``T`` what ``backward_halved(H, delta, T, c)`` needs to
    multiply ``delta`` by ``4 c f'(Z)``.
    """

    halved = False

    def train_methods(self):
        """``(forward, backward)`` for a training pass, where ``backward(A, delta, tmp)`` gets
        the ``tmp`` that ``forward(Z, tmp)`` of the same layer filled (the network guarantees
        it); by default the plain methods."""
        return self.forward, self.backward

    def forward(self, Z: np.ndarray, tmp: np.ndarray) -> None:  # pragma: no cover - interface
        """In place: ``Z <- f(Z)``."""
        raise NotImplementedError

    def backward(self, A: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:  # pragma: no cover
        """In place: ``delta <- delta * f'(z)``, with ``f'`` computed from ``A = f(Z)``."""
        raise NotImplementedError

    # Allocating conveniences, for tests and notebooks (the network uses the in-place forms).
    def __call__(self, Z: np.ndarray) -> np.ndarray:
        A = np.array(_floating(Z), copy=True)
        self._bound_to(A)
        self.forward(A, np.empty_like(A))
        return A

    def derivative(self, A: np.ndarray) -> np.ndarray:
        """``f'(z)`` as a new array, computed from ``A = f(z)``."""
        A = _floating(A)
        self._bound_to(A)
        D = np.ones_like(A)
        self.backward(A, D, np.empty_like(A))
        return D


class Identity(Activation):
    name = "identity"

    def forward(self, Z, tmp):
        pass

    def backward(self, A, delta, tmp):
        pass


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, Z, tmp):
        # sigma(z) = (1 + tanh(z/2)) / 2: tanh saturates instead of overflowing like exp(-z).
        half = self.half
        np.multiply(Z, half, Z)
        np.tanh(Z, Z)
        np.multiply(Z, half, Z)
        np.add(Z, half, Z)

    def backward(self, A, delta, tmp):
        np.subtract(self.one, A, tmp)  # 1 - a
        np.multiply(tmp, A, tmp)      # a (1 - a)
        np.multiply(delta, tmp, delta)

    # Internal halved form (see Activation): with t = tanh(z/2), a = (1 + t)/2, so
    # H = 2 c a = c t + c and 4 c f'(z) = 4 c a (1 - a) = 2 c a (1 - t) = H (1 - t): 3 calls
    # each way (the plain forward takes 4); +-1e4 still saturates tanh to +-1, no overflow.
    halved = True

    def halved_methods(self):
        """``(forward_halved, backward_halved)``; if ``forward`` or ``backward`` has been
        replaced (a subclass, a test's monkeypatch), slower versions that go through them."""
        cls = type(self)
        if (cls.forward, cls.backward) == _SIGMOID_PLAIN:
            return self.forward_halved, self.backward_halved
        return self._forward_halved_via_forward, self._backward_halved_via_backward

    def _forward_halved_via_forward(self, Zh, T, c):
        np.multiply(Zh, self.two, Zh)
        self.forward(Zh, T)
        np.multiply(Zh, c + c, Zh)

    def _backward_halved_via_backward(self, H, delta, T, c):
        A = np.divide(H, c + c)
        self.backward(A, delta, T)
        np.multiply(delta, 4 * c, delta)

    def forward_halved(self, Zh, T, c):
        np.tanh(Zh, T)                     # t, kept for the backward pass
        np.multiply(T, c, Zh)
        np.add(Zh, c, Zh)                  # H = c (1 + t) = 2 c a

    def backward_halved(self, H, delta, T, c):
        np.subtract(self.one, T, T)        # 1 - t
        np.multiply(delta, T, delta)
        np.multiply(delta, H, delta)       # delta H (1 - t) = delta 4 c f'(z)


_SIGMOID_PLAIN = (Sigmoid.forward, Sigmoid.backward)   # what the halved forms compute


class Tanh(Activation):
    name = "tanh"

    def forward(self, Z, tmp):
        np.tanh(Z, Z)

    def backward(self, A, delta, tmp):
        np.multiply(A, A, tmp)
        np.subtract(self.one, tmp, tmp)  # 1 - a^2
        np.multiply(delta, tmp, delta)


class ReLU(Activation):
    name = "relu"

    def forward(self, Z, tmp):
        np.maximum(Z, self.zero, out=Z)  # (maximum: positional out is deprecated)

    def backward(self, A, delta, tmp):
        np.greater(A, self.zero, tmp)  # [a > 0] as 0.0/1.0 (the subgradient at 0 is 0)
        np.multiply(delta, tmp, delta)

    # Training form: the mask [z > 0] made once in the forward pass and kept in tmp, a = z mask
    # (two calls, and faster than np.maximum, which pays for NaN handling), and the backward
    # is one multiply by the kept mask. The same numbers, but for z = -inf, which gives nan
    # instead of 0: only with non-finite weights or inputs, when training has diverged anyway.
    def train_methods(self):
        cls = type(self)
        if (cls.forward, cls.backward) == _RELU_PLAIN:
            return self._forward_masked, self._backward_masked
        return self.forward, self.backward

    def _forward_masked(self, Z, mask):
        np.greater(Z, self.zero, mask)
        np.multiply(Z, mask, Z)

    def _backward_masked(self, A, delta, mask):
        np.multiply(delta, mask, delta)


_RELU_PLAIN = (ReLU.forward, ReLU.backward)


class LeakyReLU(Activation):
    """``max(z, slope z)``; ``slope`` in [0, 1) (default 0.01), set with ``activation_kwargs``."""

    name = "leaky_relu"

    def __init__(self, *, slope: float = 0.01):
        # max(z, s z) equals the leaky ReLU only for s <= 1; s = 1 would be the identity.
        self.slope = fraction(slope, "leaky_relu slope")
        super().__init__()

    def bind(self, dtype):
        super().bind(dtype)
        self.s = np.array(self.slope, self.dtype)
        return self

    def forward(self, Z, tmp):
        np.multiply(Z, self.s, tmp)
        np.maximum(Z, tmp, out=Z)

    def backward(self, A, delta, tmp):
        # a <= 0 exactly where z <= 0 (s >= 0 keeps the sign), so the cached output suffices.
        np.multiply(delta, self.s, out=delta, where=A <= self.zero)

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope})"


#: name -> class of the hidden activations; options (only ``slope``) go to the constructor.
ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU)
}


# --------------------------------------------------------------------------- output functions
class Output(_Bound):
    """Maps logits ``Z`` to outputs ``P`` (``Z`` is left intact) and back through the Jacobian.

    In-place methods take ``(n_outputs, n_samples)`` arrays and a ``(1, n_samples)`` scratch
    row.
    """

    def forward(self, Z: np.ndarray, P: np.ndarray, row: np.ndarray) -> None:  # pragma: no cover
        """``P <- f(Z)``."""
        raise NotImplementedError

    def vjp(self, P: np.ndarray, G: np.ndarray, out: np.ndarray, row: np.ndarray) -> None:  # pragma: no cover
        """``out <- dL/dZ`` given ``G = dL/dP`` and ``P = f(Z)``, one sample per column."""
        raise NotImplementedError

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        """``f`` on ``(n_samples, n_outputs)`` logits, as a new array of the same shape."""
        Zt = np.ascontiguousarray(_floating(Z).T)
        self._bound_to(Zt)
        P = np.empty_like(Zt)
        self.forward(Zt, P, np.empty((1, Zt.shape[1]), Zt.dtype))
        return np.ascontiguousarray(P.T)


class IdentityOutput(Output):
    name = "identity"

    def forward(self, Z, P, row):
        np.copyto(P, Z)

    def vjp(self, P, G, out, row):
        np.copyto(out, G)                  # J = I


class SigmoidOutput(Output):
    """Independent sigmoids, one per output unit (binary or multi-label outputs)."""

    name = "sigmoid"

    def forward(self, Z, P, row):
        half = self.half
        np.multiply(Z, half, P)        # same tanh form as the hidden Sigmoid
        np.tanh(P, P)
        np.multiply(P, half, P)
        np.add(P, half, P)

    def vjp(self, P, G, out, row):
        np.subtract(self.one, P, out)  # J is diagonal: p (1 - p)
        np.multiply(out, P, out)
        np.multiply(out, G, out)


class SoftmaxOutput(Output):
    """``p_j = exp(z_j - m) / sum_k exp(z_k - m)`` with ``m = max_k z_k`` (no overflow)."""

    name = "softmax"

    def forward(self, Z, P, row):
        np.maximum.reduce(Z, axis=0, keepdims=True, out=row)
        np.subtract(Z, row, P)
        np.exp(P, P)
        np.add.reduce(P, axis=0, keepdims=True, out=row)
        np.divide(P, row, P)

    def vjp(self, P, G, out, row):
        # J = diag(p) - p p^T (symmetric), so (J^T g)_j = p_j (g_j - sum_k g_k p_k).
        np.multiply(G, P, out)
        np.add.reduce(out, axis=0, keepdims=True, out=row)
        np.subtract(G, row, out)
        np.multiply(out, P, out)


#: name -> class of the output functions.
OUTPUTS: dict[str, type[Output]] = {
    cls.name: cls for cls in (IdentityOutput, SigmoidOutput, SoftmaxOutput)
}
