"""Fixtures for the data tests: isolated cache/data folders, IDX file writers, a local HTTP server.

Every test runs with its own empty cache ($NNEXP_CACHE_DIR) and data root ($NNEXP_DATA_DIR) under
tmp_path, and without proxy variables, so that nothing outside tmp_path is read or written and the
only host ever contacted is 127.0.0.1.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Point the cache and the default data root into tmp_path; drop proxies."""
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NNEXP_DATA_DIR", str(tmp_path / "default-root"))
    for var in _PROXIES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Return the IDX encoding of a uint8 array (magic 2051 for 3-d, 2049 for 1-d by default)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, gzip-compressed when the name ends in .gz; return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture
def write_idx():
    """``write_idx(path, array, magic=None, cut=0)``: write an IDX file, minus ``cut`` bytes."""

    def write(path, array, magic=None, cut=0):
        data = idx_bytes(array, magic)
        return write_file(Path(path), data[: len(data) - cut])

    return write


def fake_images(n: int, seed: int, shape=(28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images (n, *shape) uint8, labels (n,) uint8)``, labels cycling 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


@pytest.fixture
def make_idx_set(write_idx):
    """``make_idx_set(folder, n_train=100, n_test=30, gz=True, seed=0)``: write the four files.

    Returns ``{stem: (path, array)}``.
    """

    def make(folder, n_train=100, n_test=30, gz=True, seed=0, shape=(28, 28)):
        folder = Path(folder)
        train, test = fake_images(n_train, seed, shape), fake_images(n_test, seed + 1, shape)
        out = {}
        for stem, array in zip(STEMS, (*train, *test)):
            path = folder / (stem + ".gz" if gz else stem)
            out[stem] = (write_idx(path, array), array)
        return out

    return make


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(tmp_path):
    """Serve a fresh folder over HTTP on 127.0.0.1 (port chosen by the OS); yield (url, folder)."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    # A short poll interval: shutdown() waits up to one interval (0.5 s by default) per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def silent_url():
    """A URL on 127.0.0.1 that accepts connections but never answers (for timeouts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/"


def shared_data_dir() -> Path | None:
    """The real data folder: $NNEXP_TEST_DATA_DIR, else ../shared/data beside the repo; or None."""
    explicit = os.environ.get("NNEXP_TEST_DATA_DIR")
    path = Path(explicit) if explicit else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data():
    """Path of the real data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data folder absent (set NNEXP_TEST_DATA_DIR to <shared>/data)")
    return path


@pytest.fixture
def fake_roots(tmp_path, make_idx_set):
    """Small MNIST and Fashion-MNIST folders under one root; returns the root."""
    make_idx_set(tmp_path / "root" / "mnist", seed=0)
    make_idx_set(tmp_path / "root" / "fashion-mnist", seed=10)
    return tmp_path / "root"


def options_for(name, root):
    """The options that point a file-backed data set at ``fake_roots``; none for the others."""
    return {"root": root, "download": False} if name in ("mnist", "fashion_mnist") else {}
