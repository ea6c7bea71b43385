"""Gathering training batches into a network's workspaces, for ``fit``.

Gathering the batch: ``take()`` into the ``[X, 1]`` view's left part is slow (NumPy gathers into
a temporary, allocated each call, and copies back). With ``copy=True`` (``fit`` asks for it for
fits of 3 or more epochs without augmentation) the inputs are copied once with their column of
ones as the workspaces hold them (``[X, 1]`` times the network's ``input_scale``: a copy of the
inputs, ~30 ms for MNIST, repaid in about two epochs), and a batch is one ``take()`` of
contiguous rows into the contiguous buffer. Otherwise ``take()`` goes into a preallocated
contiguous buffer that is then copied into the view. Targets are transposed once
(``net.internal_targets``), so a batch's are gathered as contiguous columns.
"""

from __future__ import annotations

import numpy as np


class BatchFeeder:
    """``gather(rows)`` -> the workspace of ``len(rows)`` samples holding that batch."""

    def __init__(self, net, X: np.ndarray, Y: np.ndarray, batch_sizes, copy: bool):
        self.workspaces = {n: net.workspace(n) for n in batch_sizes}
        self.scale, self.dtype, self.copy = net.input_scale, net.dtype, copy
        self._take_yt = net.internal_targets(Y).take
        self._buffers = None if copy else {n: np.empty((n, X.shape[1]), net.dtype)
                                           for n in self.workspaces}
        self.set_inputs(X)

    def set_inputs(self, X: np.ndarray) -> None:
        """Gather from ``X`` from now on (``fit`` calls it for each epoch's augmented inputs)."""
        if self.copy:
            Xa = np.empty((X.shape[0], X.shape[1] + 1), self.dtype)
            np.multiply(X, self.scale, Xa[:, :-1])
            Xa[:, -1] = self.scale
            self._take_x = Xa.take
        else:
            self._take_x = X.take

    def gather(self, rows: np.ndarray):
        n = rows.shape[0]
        ws = self.workspaces[n]
        if self.copy:                          # clip: no bounds-check buffering; the rows
            self._take_x(rows, 0, ws.X, "clip")  # come from a permutation anyway
        else:
            G = self._buffers[n]
            self._take_x(rows, 0, G, "clip")
            if self.scale == 1.0:
                np.copyto(ws.Xin, G)
            else:
                np.multiply(G, self.scale, ws.Xin)
        self._take_yt(rows, 1, ws.Y, "clip")
        return ws
