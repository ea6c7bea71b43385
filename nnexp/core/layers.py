"""The layers of the MLP's plan: one dense block per weight layer, with its own activation and,
optionally, batch normalisation (before the activation) and inverted dropout (after it).

One contract for every layer, in the network's internal layout (one sample per *column*):

- ``specs()``: its parameters, :class:`ParamSpec` (name, shape, whether weight decay applies),
  in the order they lie in the layer's block of the network's flat buffer;
- ``bind(block, grad_block)``: take views of that block;
- ``buffers(n)``: the per-batch-size arrays the layer works in (a :class:`Buffers`);
- ``forward_ops(bf, A, train)`` / ``backward_ops(bf, A, D_in, train)``: the pass as a list of
  ``(function, args)`` with every array bound, which the network runs in one uniform loop.
  ``A`` is the layer's input ``[A_{k-1}; 1]^T`` ``(d_in + 1, n)`` (the row of ones last);
  forward leaves the output in ``bf.out`` (the next layer's input); backward starts from
  ``bf.D`` = ``dL/d(output)`` ``(d_out, n)`` (for the output layer ``dL/dZ``, from the head),
  fills the layer's gradients and writes ``dL/dA_{k-1}`` into ``D_in`` (None for layer 1).

Forward, for a hidden layer k: ``Z = [W; b]^T [A; 1]`` (bias folded: one ``dot``), or with batch
norm ``Z = W^T A``, ``xhat = (Z - mu) / sqrt(var + eps)``, ``Y = gamma xhat + beta`` (``mu``,
``var``: the batch's per-unit mean and biased variance in training, the running estimates at
evaluation; no bias ``b``, which the mean would cancel); ``A_k = f(Y)``; dropout in training:
``A_k <- A_k * m / keep`` with ``m ~ Bernoulli(keep)`` per entry.

Backward: ``D <- D * m / keep`` (dropout); ``D <- D * f'`` (from the cached output); batch norm
in training: ``dgamma = sum_j D xhat``, ``dbeta = sum_j D``,
``dZ = gamma / sqrt(var + eps) * (D - (dbeta + xhat dgamma) / n)`` (at evaluation
``dZ = gamma / sqrt(var + eps) * D``); ``[dW; db] = [A; 1] dZ^T``; ``D_in = W dZ``.

Running statistics follow ``torch.nn.BatchNorm1d``: ``r <- (1 - momentum) r + momentum s``
with the batch mean and the *unbiased* batch variance (``n / (n - 1)`` times the biased one).

Speed tricks, chosen per layer by the plan (see :mod:`nnexp.core.network`): the bias folded as
``[W; b]``; the halved sigmoid (``in_scale``/``out_scale``: the layer reads ``[A; 1] / 2`` and
writes its output pre-scaled for the next layer); the activation's training form (ReLU keeps its
mask from the forward pass). Dropout keeps the activation's output intact (``f'`` is computed
from it) and writes the dropped copy into a separate buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BN_MOMENTUM = 0.1   # torch.nn.BatchNorm1d's defaults
BN_EPS = 1e-5


@dataclass(frozen=True)
class ParamSpec:
    """One parameter array: its name (``W1``, ``b1``, ``gamma1``, ...), shape, and whether weight
    decay applies (weights yes; biases and batch-norm ``gamma``/``beta`` no: the optimizers'
    rule "decay arrays with ndim >= 2" gives the same answer)."""

    name: str
    shape: tuple[int, ...]
    decay: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


class Buffers:
    """The arrays of one layer for batches of ``n`` samples (attributes set by the layer)."""

    D = None
    out = None


class Dense:
    """Weight layer ``k`` (from 1): ``d_in -> d_out``, an activation (None: the output layer,
    whose logits the head reads), and per hidden layer ``batch_norm`` and ``dropout``."""

    def __init__(self, k: int, d_in: int, d_out: int, dtype: np.dtype, *, activation=None,
                 activation_name: str | None = None, batch_norm: bool = False,
                 dropout: float = 0.0, in_scale: float = 1.0, out_scale: float = 1.0,
                 halved: bool = False):
        self.k, self.d_in, self.d_out, self.dtype = k, d_in, d_out, dtype
        self.activation, self.activation_name = activation, activation_name
        self.batch_norm, self.dropout = bool(batch_norm), float(dropout)
        self.in_scale, self.out_scale, self.halved = in_scale, out_scale, halved
        self.has_bias = not self.batch_norm
        self.rng = None   # dropout's generator, set by the network for a training pass
        if self.batch_norm:
            self.running_mean = np.zeros(d_out, dtype)
            self.running_var = np.ones(d_out, dtype)
        if self.dropout:
            self._keep = 1.0 - self.dropout
            self._inv_keep = np.array(1.0 / self._keep, dtype)
        if halved:
            self._c = np.array(out_scale / 2, dtype)   # forward_halved's c (activations.py)

    # ------------------------------------------------------------------ parameters
    def specs(self) -> list[ParamSpec]:
        k, out = self.k, (self.d_out,)
        specs = [ParamSpec(f"W{k}", (self.d_in, self.d_out), True)]
        if self.has_bias:
            specs.append(ParamSpec(f"b{k}", out, False))
        if self.batch_norm:
            specs += [ParamSpec(f"gamma{k}", out, False), ParamSpec(f"beta{k}", out, False)]
        return specs

    def bind(self, block: np.ndarray, grad_block: np.ndarray) -> None:
        """Views of the layer's block of the flat buffers, laid out as :meth:`specs` says."""
        self.params, self.grads, offset = [], [], 0
        for spec in self.specs():
            self.params.append(block[offset:offset + spec.size].reshape(spec.shape))
            self.grads.append(grad_block[offset:offset + spec.size].reshape(spec.shape))
            offset += spec.size
        self.W, self.dW = self.params[0], self.grads[0]
        rows = self.d_in + self.has_bias     # [W; b]: b follows W in the buffers
        self.Wb = block[:rows * self.d_out].reshape(rows, self.d_out)
        self.dWb = grad_block[:rows * self.d_out].reshape(rows, self.d_out)
        self.WbT = self.Wb.T                 # a view: it follows in-place updates
        self.b = self.params[1] if self.has_bias else None
        self.db = self.grads[1] if self.has_bias else None
        if self.batch_norm:
            self.gamma, self.beta = self.params[-2:]
            self.dgamma, self.dbeta = self.grads[-2:]

    def buffers_dict(self) -> dict[str, np.ndarray]:
        """State that is not a parameter (batch norm's running statistics), by name."""
        if not self.batch_norm:
            return {}
        return {f"running_mean{self.k}": self.running_mean, f"running_var{self.k}": self.running_var}

    # ------------------------------------------------------------------ per-batch-size arrays
    def buffers(self, n: int) -> Buffers:
        d, dtype, bf = self.d_out, self.dtype, Buffers()
        if self.activation is None:          # output layer: the logits, kept intact
            bf.Z = bf.out = np.empty((d, n), dtype)
            return bf
        bf.H = np.full((d + 1, n), self.out_scale, dtype)   # [A_k; 1] (times out_scale)
        bf.Hin = bf.Z = bf.H[:-1]                            # Z_k, then A_k, contiguous
        bf.T = np.empty((d, n), dtype)                       # scratch for f, f' (ReLU: mask)
        bf.out = bf.H
        if self.dropout:
            bf.M = np.empty((d, n), dtype)                   # m / keep
            bf.Hd = np.full((d + 1, n), self.out_scale, dtype)
            bf.Hdin = bf.Hd[:-1]
        if self.batch_norm:
            bf.Xh = np.empty((d, n), dtype)                  # Z, then xhat
            bf.mu, bf.var, bf.inv, bf.col = (np.empty((d, 1), dtype) for _ in range(4))
            bf.inv_n = np.array(1.0 / n, dtype)
            bf.ones = np.ones(n, dtype)
            bf.unbias = n / max(n - 1, 1)
        return bf

    def output(self, bf: Buffers, train: bool) -> np.ndarray:
        """The array the next layer reads: ``[A_k; 1]``, dropped out in training."""
        return bf.Hd if self.dropout and train else bf.out

    # ------------------------------------------------------------------ passes, as bound ops
    def _act_methods(self, train: bool):
        act = self.activation
        if self.halved:
            return act.halved_methods()
        return act.train_methods() if train else (act.forward, act.backward)

    def forward_ops(self, bf: Buffers, A: np.ndarray, train: bool) -> list[tuple]:
        if self.batch_norm:
            ops = [(self.WbT.dot, (A[:-1], bf.Xh))] + self._bn_forward_ops(bf, train)
        else:
            ops = [(self.WbT.dot, (A, bf.Z))]   # Z^T = [W; b]^T [A; 1]^T (halved: Z/2)
        if self.activation is None:
            return ops
        f = self._act_methods(train)[0]
        ops.append((f, (bf.Hin, bf.T, self._c) if self.halved else (bf.Hin, bf.T)))
        if self.dropout and train:
            ops += [(self._draw_mask, (bf.M,)), (np.multiply, (bf.Hin, bf.M, bf.Hdin))]
        return ops

    def backward_ops(self, bf: Buffers, A: np.ndarray, D_in, train: bool) -> list[tuple]:
        ops = []
        if self.dropout and train:
            ops.append((np.multiply, (bf.D, bf.M, bf.D)))
        if self.activation is not None:
            b = self._act_methods(train)[1]
            ops.append((b, (bf.Hin, bf.D, bf.T, self._c) if self.halved else (bf.Hin, bf.D, bf.T)))
        if self.batch_norm:
            ops += self._bn_backward_ops(bf, train)
        # [dW; db] = [A; 1] dZ^T: the row of ones sums dZ for db
        ops.append(((A if self.has_bias else A[:-1]).dot, (bf.D.T, self.dWb)))
        if D_in is not None:
            ops.append((self.W.dot, (bf.D, D_in)))          # (dZ W^T)^T = dL/dA_{k-1}
        return ops

    def _draw_mask(self, M: np.ndarray) -> None:
        """``M <- m / keep``, ``m = [u < keep]``, ``u ~ U[0, 1)`` from ``self.rng``."""
        self.rng.random(out=M, dtype=self.dtype)
        np.less(M, self._keep, M)
        np.multiply(M, self._inv_keep, M)

    # ------------------------------------------------------------------ batch normalisation
    # Kept: the centred Zc = Z - mu (in Xh) and inv = 1/sqrt(var + eps), so xhat = Zc inv is
    # never stored; gamma inv, 1/n and dgamma/dbeta are folded into per-unit columns (d, 1):
    # 4 passes over (d, n) forward and 6 backward, besides the products.
    def _bn_forward_ops(self, bf: Buffers, train: bool) -> list[tuple]:
        return [(self._bn_forward_train if train else self._bn_forward_eval, (bf,))]

    def _bn_forward_train(self, bf: Buffers) -> None:
        Xh, mu, var, inv = bf.Xh, bf.mu, bf.var, bf.inv
        Xh.dot(bf.ones, mu[:, 0])        # row sums: a BLAS mat-vec, ~5x add.reduce(axis=1)
        np.multiply(mu, bf.inv_n, mu)
        np.subtract(Xh, mu, Xh)                                  # Zc = Z - mu
        np.einsum("ij,ij->i", Xh, Xh, out=var[:, 0])             # sum_j Zc^2, no temporary
        np.multiply(var, bf.inv_n, var)                          # biased variance
        self._update_running(bf)
        np.add(var, BN_EPS, inv)
        self._bn_affine(bf)

    def _bn_forward_eval(self, bf: Buffers) -> None:
        np.subtract(bf.Xh, self.running_mean[:, None], bf.Xh)
        np.add(self.running_var[:, None], BN_EPS, bf.inv)
        self._bn_affine(bf)

    def _bn_affine(self, bf: Buffers) -> None:
        """``inv <- 1/sqrt(inv)``; ``Y = Zc (gamma inv) + beta`` into ``Hin``."""
        inv, col = bf.inv, bf.col
        np.sqrt(inv, inv)
        np.divide(1.0, inv, inv)
        np.multiply(self.gamma[:, None], inv, col)               # gamma / sqrt(var + eps)
        np.multiply(bf.Xh, col, bf.Hin)
        np.add(bf.Hin, self.beta[:, None], bf.Hin)

    def _update_running(self, bf: Buffers) -> None:
        m = BN_MOMENTUM
        self.running_mean *= 1.0 - m
        self.running_mean += m * bf.mu[:, 0]
        self.running_var *= 1.0 - m
        self.running_var += (m * bf.unbias) * bf.var[:, 0]

    def _bn_backward_ops(self, bf: Buffers, train: bool) -> list[tuple]:
        return [(self._bn_backward, (bf, train))]

    def _bn_backward(self, bf: Buffers, train: bool) -> None:
        """``dgamma = inv sum_j D Zc``, ``dbeta = sum_j D``; then ``D <- gamma inv D`` minus,
        in training, ``gamma inv (dbeta + xhat dgamma) / n``."""
        D, T, Xh, inv, col = bf.D, bf.T, bf.Xh, bf.inv, bf.col
        dg, db = self.dgamma, self.dbeta
        np.einsum("ij,ij->i", D, Xh, out=dg)
        np.multiply(dg, inv[:, 0], dg)
        D.dot(bf.ones, db)
        np.multiply(D, col, D)
        if train:
            c = bf.mu                                # (free after the forward pass) (d, 1)
            np.multiply(col, bf.inv_n, c)            # gamma inv / n
            np.multiply(c, db[:, None], bf.var)      # ... dbeta: the mean's share
            np.multiply(c, dg[:, None], c)
            np.multiply(c, inv, c)                   # ... xhat's share per unit of Zc
            np.multiply(Xh, c, T)
            np.subtract(D, T, D)
            np.subtract(D, bf.var, D)

    def __repr__(self) -> str:
        extra = "".join([", batch_norm" if self.batch_norm else "",
                         f", dropout={self.dropout}" if self.dropout else ""])
        return f"Dense({self.d_in}->{self.d_out}, {self.activation_name or 'output'}{extra})"
