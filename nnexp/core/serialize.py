"""Saving and loading networks as ``.npz`` files, without pickle.

A file holds one array per parameter (``W1``, ``b1``, ...), batch norm's running statistics
(``running_mean<k>``, ``running_var<k>``) and ``architecture``: the
network's :meth:`MLP.config` as a JSON string in a 0-d unicode array. It is written to a
temporary file next to the target and moved into place with ``os.replace``, so a reader never
sees half a file. Loading uses ``np.load(allow_pickle=False)``: a file with object arrays (which
could run code when unpickled) is refused with a ValueError naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "nnexp.mlp"
VERSION = 1


def save_npz(net, path) -> None:
    """Write ``net``'s weights and architecture to ``path`` atomically."""
    path = os.fspath(path)
    header = {"format": FORMAT, "version": VERSION, **net.config()}
    arrays = {"architecture": np.array(json.dumps(header))}
    arrays.update(zip(net.param_names, net.params))
    arrays.update(net.buffers())               # batch norm's running statistics
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:    # a file object: savez adds no ".npz" suffix
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)                   # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path, cls=None):
    """The network saved at ``path`` (``cls`` defaults to :class:`~nnexp.core.MLP`)."""
    if cls is None:
        from nnexp.core.network import MLP as cls
    path = os.fspath(path)
    # Open the file here rather than in np.load: np.load leaks its handle when the zip is bad.
    with open(path, "rb") as handle:
        try:
            net = _read(handle, cls)
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            # np.load's own message for object arrays mentions allow_pickle, not the file
            raise ValueError(f"cannot load network from {path!r}: {error}") from None
    return net


def _read(handle, cls):
    with np.load(handle, allow_pickle=False) as archive:
        if "architecture" not in archive.files:
            raise ValueError("no 'architecture' entry")
        header = json.loads(str(archive["architecture"][()]))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} file")
        if header.get("version") != VERSION:
            raise ValueError(f"unsupported version {header.get('version')!r}")
        config = {k: header[k] for k in ("sizes", "activation", "output", "loss", "dtype",
                                         "activation_kwargs")}
        config.update({k: header[k] for k in ("dropout", "batch_norm", "label_smoothing")
                       if k in header})        # (absent from files written before them)
        net = cls(**config, init="constant")     # weights are overwritten below
        arrays = list(zip(net.param_names, net.params)) + list(net.buffers().items())
        for name, live in arrays:
            if name not in archive.files:
                raise ValueError(f"missing array {name!r}")
            saved = archive[name]
            if saved.shape != live.shape or saved.dtype != live.dtype:
                raise ValueError(f"{name} is {saved.dtype}{list(saved.shape)}, the "
                                 f"architecture needs {live.dtype}{list(live.shape)}")
            np.copyto(live, saved)
        # as built originally (informational: the weights above are what counts)
        net.init, net.seed = header.get("init", net.init), header.get("seed")
        net.init_kwargs = dict(header.get("init_kwargs") or {})
    return net
