"""Saving and loading networks as ``.npz`` files, without pickle.

A file holds one array per parameter (``W1``, ``b1``, ...), batch norm's running statistics
(``running_mean<k>``, ``running_var<k>``) and ``architecture``: the
network's :meth:`MLP.config` as a JSON string in a 0-d unicode array. It is written to a
temporary file next to the target and moved into place with ``os.replace``, so a reader never
sees half a file. Loading uses ``np.load(allow_pickle=False)``: a file with object arrays (which
could run code when unpickled) is refused with a ValueError naming the file.

A file may be crafted to exhaust memory: an architecture declaring huge layers next to a few
bytes of weights, an array whose few compressed megabytes expand to gigabytes, a JSON header
nested deeply enough to overflow the parser's stack. Before anything is built or decompressed,
:func:`_scan` reads each member's ``.npy`` header (a few hundred bytes) and checks that its
declared shape times its item size is exactly the uncompressed size the zip directory records
for it; the architecture's layer widths must then need no more weights (``sum_k d_{k-1} d_k``)
than the file holds, and the whole no more memory than is available; every array is checked
against the shape the network needs before it is read. Each refusal is one ValueError line.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "nnexp.mlp"
VERSION = 1
MAX_ARCHITECTURE_BYTES = 1 << 20   # the JSON header of a real network is a few hundred bytes


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
        except RecursionError:
            raise ValueError(f"cannot load network from {path!r}: its architecture header is nested "
                             f"too deeply to be a network's") from None
        except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            # np.load's own message for object arrays mentions allow_pickle, not the file
            raise ValueError(f"cannot load network from {path!r}: {error}") from None
    return net


def _scan(handle) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{array name: (declared shape, dtype)}`` from the ``.npy`` headers alone, each checked
    against its uncompressed size in the zip directory (a lie there fails the CRC on reading)."""
    members = {}
    with zipfile.ZipFile(handle) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected member {info.filename!r}")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                offset = member.tell()
            name = info.filename[:-4]
            if dtype.hasobject:
                raise ValueError(f"{name}: Object arrays cannot be loaded when allow_pickle=False "
                             f"(unpickling them could run code)")
            declared = math.prod(shape) * dtype.itemsize
            if offset + declared != info.file_size:
                raise ValueError(f"{name} declares {dtype}{list(shape)} ({declared:,} bytes) but holds "
                                 f"{info.file_size - offset:,} bytes")
            members[name] = (tuple(shape), dtype)
    handle.seek(0)
    return members


def _check_sizes(sizes, members) -> None:
    """The architecture's dense layers need ``sum_k d_{k-1} d_k`` weights: no more than the file
    holds, and no more memory than this process can still use."""
    if not isinstance(sizes, list) or not all(type(d) is int and d > 0 for d in sizes):
        return   # the network's constructor refuses these in its own words
    needed = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    held = sum(math.prod(shape) for name, (shape, _) in members.items() if name != "architecture")
    if needed > held:
        raise ValueError(f"its architecture declares layer sizes {sizes} ({needed:,} weights) but the "
                         f"file holds {held:,} numbers")
    from nnexp.core.memory import available, gigabytes

    nbytes = sum(math.prod(shape) * dtype.itemsize for name, (shape, dtype) in members.items()
                 if name != "architecture")
    free, where = available()
    if free is not None and 2 * nbytes > free:   # the weights and their gradients
        raise ValueError(f"the network needs about {gigabytes(2 * nbytes)}, more than the "
                         f"{gigabytes(free)} available ({where})")


def _read(handle, cls):
    members = _scan(handle)
    if "architecture" not in members:
        raise ValueError("no 'architecture' entry")
    shape, dtype = members["architecture"]
    if shape != () or dtype.kind != "U" or dtype.itemsize > MAX_ARCHITECTURE_BYTES:
        raise ValueError(f"its architecture entry is {dtype}{list(shape)}, not a JSON string of at most "
                         f"{MAX_ARCHITECTURE_BYTES:,} bytes")
    with np.load(handle, allow_pickle=False) as archive:
        header = json.loads(str(archive["architecture"][()]))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} file")
        if header.get("version") != VERSION:
            raise ValueError(f"unsupported version {header.get('version')!r}")
        config = {k: header[k] for k in ("sizes", "activation", "output", "loss", "dtype",
                                         "activation_kwargs")}
        _check_sizes(config["sizes"], members)
        config.update({k: header[k] for k in ("dropout", "batch_norm", "label_smoothing")
                       if k in header})        # (absent from files written before them)
        net = cls(**config, init="constant")     # weights are overwritten below
        arrays = list(zip(net.param_names, net.params)) + list(net.buffers().items())
        for name, live in arrays:
            if name not in archive.files:
                raise ValueError(f"missing array {name!r}")
            if members[name] != (live.shape, live.dtype):   # before reading (decompressing) it
                shape, dtype = members[name]
                raise ValueError(f"{name} is {dtype}{list(shape)}, the "
                                 f"architecture needs {live.dtype}{list(live.shape)}")
            saved = archive[name]
            if saved.shape != live.shape or saved.dtype != live.dtype:
                raise ValueError(f"{name} is {saved.dtype}{list(saved.shape)}, the "
                                 f"architecture needs {live.dtype}{list(live.shape)}")
            np.copyto(live, saved)
        # as built originally (informational: the weights above are what counts)
        net.init, net.seed = header.get("init", net.init), header.get("seed")
        net.init_kwargs = dict(header.get("init_kwargs") or {})
    return net
