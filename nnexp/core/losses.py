"""Losses, and the output x loss pairs ("heads") the network accepts.

Every loss is a mean over the ``n`` samples of a batch of a per-sample sum over the ``c``
outputs. Here ``P`` and ``Y`` are in the network's internal layout, ``(c, n)``: one sample per
column (``Y`` one-hot for softmax, 0/1 entries for sigmoid):

====================  =================================================  ==================
name                  L                                                  dL/dP
====================  =================================================  ==================
cross_entropy         -1/n sum_ij y_ij log p_ij                          -y / (n p)
binary_cross_entropy  -1/n sum_ij [y log p + (1-y) log(1-p)]             (p-y) / (n p (1-p))
mse                   1/(2n) sum_ij (p_ij - y_ij)^2                      (p-y) / n
====================  =================================================  ==================

(``mse`` carries the usual factor 1/2 and sums over columns, so its gradient is ``(P - Y)/n``.)

A *head* couples an output function with a loss and computes the loss from the logits ``Z``
and ``delta = dL/dZ``, the error signal that backprop starts from.

Valid pairs (:data:`VALID_OUTPUT_LOSS`) and how their delta is computed:

- ``softmax + cross_entropy``, ``sigmoid + binary_cross_entropy``, ``identity + mse``: the
  canonical-link pairs, where the Jacobian cancels and ``delta = (P - Y)/n``. The log-losses are
  computed from the logits, never from ``log P``: log-sum-exp of shifted logits for softmax,
  ``softplus(z) - y z`` for the sigmoid, so saturated outputs give finite losses.
- ``sigmoid + mse``, ``softmax + mse``: ``dL/dP`` pushed back through the output's Jacobian
  (``p(1-p)`` for the sigmoid, ``diag(p) - p p^T`` for the softmax).

Every other pair is refused: cross-entropies need probabilities (an identity output is not
one; sigmoid columns do not sum to one), and binary cross-entropy over softmax columns would
treat dependent columns as independent coin flips.
"""

from __future__ import annotations

import numpy as np

from nnexp.core._checks import choose
from nnexp.core.activations import OUTPUTS, Output

_CLIP = 1e-12  # keeps log() finite for the stand-alone losses, which only see probabilities


def _below_one(dtype) -> float:
    """``1 - 1e-12`` where ``dtype`` has it, else the largest number below 1 (``1 - 2**-24`` in
    float32, where ``1 - 1e-12`` rounds to 1 and ``log1p(-p)`` would be ``-inf``)."""
    return 1.0 - max(_CLIP, float(np.finfo(dtype).epsneg))


class Loss:
    """A loss on probabilities/outputs ``P``; the fused heads below avoid it where they can."""

    name = "?"

    def value(self, P: np.ndarray, Y: np.ndarray, tmp: np.ndarray | None = None) -> float:  # pragma: no cover
        raise NotImplementedError

    def grad(self, P: np.ndarray, Y: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
        """``out <- dL/dP`` (the 1/n included)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    name = "cross_entropy"

    def value(self, P, Y, tmp=None):
        tmp = np.empty_like(P) if tmp is None else tmp
        np.clip(P, _CLIP, 1.0, out=tmp)
        np.log(tmp, out=tmp)
        return -float(np.vdot(Y, tmp)) / P.shape[1]

    def grad(self, P, Y, out):
        np.clip(P, _CLIP, 1.0, out=out)
        np.divide(Y, out, out=out)
        np.multiply(out, -1.0 / P.shape[1], out=out)


class BinaryCrossEntropy(Loss):
    name = "binary_cross_entropy"

    def value(self, P, Y, tmp=None):
        Pc = np.clip(P, _CLIP, _below_one(P.dtype))
        return -float(np.vdot(Y, np.log(Pc)) + np.vdot(1.0 - Y, np.log1p(-Pc))) / P.shape[1]

    def grad(self, P, Y, out):
        Pc = np.clip(P, _CLIP, _below_one(P.dtype))
        np.subtract(P, Y, out=out)
        np.divide(out, Pc * (1.0 - Pc) * P.shape[1], out=out)


class MeanSquaredError(Loss):
    name = "mse"

    def value(self, P, Y, tmp=None):
        tmp = np.empty_like(P) if tmp is None else tmp
        np.subtract(P, Y, out=tmp)
        return float(np.vdot(tmp, tmp)) / (2 * P.shape[1])

    def grad(self, P, Y, out):
        np.subtract(P, Y, out=out)
        np.multiply(out, 1.0 / P.shape[1], out=out)


#: name -> class of the losses.
LOSSES: dict[str, type[Loss]] = {
    cls.name: cls for cls in (CrossEntropy, BinaryCrossEntropy, MeanSquaredError)
}


# ------------------------------------------------------------------------------------- heads
class Head:
    """Output function + loss, back-propagated through the output's Jacobian.

    ``Z`` logits, ``P`` outputs and ``Y`` targets are ``(c, n)`` arrays; ``ws`` supplies
    preallocated scratch: ``ws.row`` ``(1, n)``, ``ws.tmp`` ``(c, n)`` and ``ws.inv_n``, ``1/n``
    as a 0-d array of the network's dtype.
    """

    def __init__(self, output: Output, loss: Loss):
        self.output, self.loss = output, loss

    def bind(self, dtype) -> "Head":
        self.output.bind(dtype)
        return self

    def predict(self, Z, P, ws) -> None:
        self.output.forward(Z, P, ws.row)

    def forward_loss(self, Z, P, Y, ws) -> float:
        """``P <- f(Z)``; returns the mean loss over the batch."""
        self.output.forward(Z, P, ws.row)
        return self.loss.value(P, Y, ws.tmp)

    def train_loss(self, Z, P, Y, ws) -> float:
        """``forward_loss`` for ``fit``'s training passes, which run with floating-point
        warnings silenced; a head may take a faster route there."""
        return self.forward_loss(Z, P, Y, ws)

    def delta(self, Z, P, Y, out, ws, scale=None) -> None:
        """``out <- dL/dZ = (dL/dP) J`` row by row, after ``forward_loss`` filled ``P``.

        ``scale`` (a 0-d array of the dtype, default ``ws.inv_n``) replaces the ``1/n`` of the
        mean: ``fit`` passes ``lr/n`` for plain SGD, to get ``lr`` times the gradients."""
        self.loss.grad(P, Y, ws.tmp)
        self.output.vjp(P, ws.tmp, out, ws.row)
        if scale is not None and scale is not ws.inv_n:
            np.multiply(out, float(scale) * out.shape[1], out)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.output.name}, {self.loss.name})"


class _CanonicalHead(Head):
    """Pairs whose Jacobian cancels against the loss: ``dL/dZ = (P - Y)/n``."""

    def delta(self, Z, P, Y, out, ws, scale=None):
        np.subtract(P, Y, out)
        np.multiply(out, ws.inv_n if scale is None else scale, out)


class SoftmaxCrossEntropy(_CanonicalHead):
    def forward_loss(self, Z, P, Y, ws):
        # With s = z - max(z): -sum_j y_j log p_j = log sum_k e^{s_k} - sum_j y_j s_j when the
        # target of a sample sums to 1 (one-hot); every exponent is <= 0: nothing overflows.
        row = ws.row
        np.maximum.reduce(Z, axis=0, keepdims=True, out=row)
        np.subtract(Z, row, out=P)
        ys = float(np.vdot(Y, P))
        np.exp(P, out=P)
        np.add.reduce(P, axis=0, keepdims=True, out=row)
        np.divide(P, row, out=P)
        np.log(row, out=row)
        return (float(np.add.reduce(row, axis=None)) - ys) / P.shape[1]

    def bind(self, dtype):
        super().bind(dtype)
        self._tiny = float(np.finfo(dtype).tiny)
        self._shifted_for = 0
        return self

    def train_loss(self, Z, P, Y, ws):
        # Without the max shift (2 calls fewer, one check more), under fit's silenced warnings:
        # accepted only if every column sum of e^z is a normal number (no overflow to inf, no
        # underflow to 0 or subnormals: checked on the smallest sum and on the finite total)
        # and log-sum-exp and the target logits do not cancel by more than 2^4 (so the
        # rounding of large logits stays within a few ulps of the loss); otherwise the
        # shifted computation above is redone, and used directly for the next 64 batches.
        if self._shifted_for:
            self._shifted_for -= 1
            return self.forward_loss(Z, P, Y, ws)
        row = ws.row
        ys = float(np.vdot(Y, Z))
        np.exp(Z, P)
        np.add.reduce(P, 0, None, row, True)
        if float(np.minimum.reduce(row, None)) >= self._tiny:   # nan fails too
            np.divide(P, row, P)
            np.log(row, row)
            lse = float(np.add.reduce(row, None))
            loss = lse - ys
            if loss - loss == 0.0 and abs(lse) + abs(ys) <= 16.0 * loss:
                return loss / P.shape[1]
        self._shifted_for = 64
        return self.forward_loss(Z, P, Y, ws)


class SigmoidBinaryCrossEntropy(_CanonicalHead):
    def forward_loss(self, Z, P, Y, ws):
        # -[y log s(z) + (1-y) log(1-s(z))] = softplus(z) - y z, and logaddexp(0, z) computes
        # softplus without overflow: finite even for logits of +-1e4.
        self.output.forward(Z, P, ws.row)
        np.logaddexp(self.output.zero, Z, out=ws.tmp)
        return (float(np.add.reduce(ws.tmp, axis=None)) - float(np.vdot(Y, Z))) / P.shape[1]


class IdentityMSE(_CanonicalHead):
    pass  # the generic forward_loss is already exact; only delta simplifies


#: (output, loss) -> head class; the keys are exactly the valid pairs.
HEADS: dict[tuple[str, str], type[Head]] = {
    ("softmax", "cross_entropy"): SoftmaxCrossEntropy,
    ("sigmoid", "binary_cross_entropy"): SigmoidBinaryCrossEntropy,
    ("identity", "mse"): IdentityMSE,
    ("sigmoid", "mse"): Head,
    ("softmax", "mse"): Head,
}

#: The output x loss pairs the network accepts.
VALID_OUTPUT_LOSS: frozenset[tuple[str, str]] = frozenset(HEADS)


def check_output_loss(output: str, loss: str) -> None:
    """Raise ValueError/TypeError unless ``(output, loss)`` is a known, valid pair."""
    choose(OUTPUTS, output, "output")
    choose(LOSSES, loss, "loss")
    if (output, loss) not in HEADS:
        valid = ", ".join(f"{o}+{l}" for o, l in sorted(HEADS))
        raise ValueError(f"output {output!r} cannot be trained with loss {loss!r}; "
                         f"valid output+loss pairs: {valid}")


def make_head(output: str, loss: str) -> Head:
    """The head for a valid pair (checked with :func:`check_output_loss`)."""
    check_output_loss(output, loss)
    return HEADS[output, loss](OUTPUTS[output](), LOSSES[loss]())


class Scratch:
    """Stand-alone scratch buffers for calling a head outside a network (tests, notebooks)."""

    def __init__(self, c: int, n: int, dtype=np.float64):
        self.row = np.empty((1, n), dtype)
        self.tmp = np.empty((c, n), dtype)
        self.inv_n = np.array(1.0 / n, dtype)
