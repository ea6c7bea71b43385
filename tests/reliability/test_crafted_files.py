"""Files crafted to hurt: refused in one line, in bounded memory, before anything large is made.

Each file is built in ``tmp_path``; each case runs in a child process that records its own peak
resident memory at exit, ``VmHWM`` of ``/proc/self/status``: the high-water mark of the memory
the child's program mapped after exec. (Not ``getrusage``'s ``ru_maxrss``: Linux carries it over
fork and exec, so a child of a test runner that once held 900 MB would report 900 MB.)
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnexp.core import MLP
from tests.data.conftest import STEMS, fake_images, idx_bytes, write_file
from tests.reliability.helpers import QUICK, assert_untouched, isolated_env, one_error_line

MAX_RSS_MB = 500   # generous: Python, NumPy, Hydra and MLflow take ~300 MB; the attacks took GBs
MNIST_OFFLINE = ("data=mnist", "data.download=false", "model.hidden=[8]", "batch_size=50")

# Runs `code` (or the nnexp command line) and writes the peak RSS in kB to RSS_FILE at exit.
_WRAPPER = """
import atexit, os, re, runpy, sys
atexit.register(lambda: open(os.environ["RSS_FILE"], "w").write(
    re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)))
"""


def child(tmp_path: Path, body: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``body`` after the wrapper in a child; returns (result, its peak RSS in MB)."""
    rss = tmp_path / "rss.txt"
    env = isolated_env(cwd or tmp_path, RSS_FILE=str(rss))
    result = subprocess.run([sys.executable, "-c", _WRAPPER + body], cwd=cwd or tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    return result, int(rss.read_text()) / 1024


def load_in_child(tmp_path: Path, path: Path, *, logged_model: bool = False):
    """``MLP.load_npz(path)`` or the logged model's ``load_context``, in a child: (result, MB)."""
    if logged_model:
        call = ("from types import SimpleNamespace; from nnexp.tracking.pyfunc_model import NnexpModel\n"
                f"NnexpModel().load_context(SimpleNamespace(artifacts={{'weights': {str(path)!r}, "
                f"'preprocessing': {str(path)!r}}}))")
    else:
        call = f"from nnexp.core import MLP\nMLP.load_npz({str(path)!r})"
    return child(tmp_path, f"""
try:
    {call.replace(chr(10), chr(10) + '    ')}
except ValueError as error:
    print(error, file=sys.stderr)
    sys.exit(2)
""")


def save_small(path: Path) -> Path:
    MLP([30, 4, 4, 2], seed=0).save_npz(path)
    return path


def rewrite(path: Path, members: dict[str, bytes | None], out: Path) -> Path:
    """``path``'s archive with some members replaced (None: left as it is)."""
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            name = info.filename[:-4]
            target.writestr(info.filename, members.get(name) or source.read(info))
    return out


def npy(array) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header(shape) -> bytes:
    """A version 1.0 .npy header declaring float64 ``shape``, without the data."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def architecture_declaring(sizes) -> bytes:
    header = {"format": "nnexp.mlp", "version": 1, "sizes": sizes, "activation": "relu",
              "output": "softmax", "loss": "cross_entropy", "init": "he", "dtype": "float64",
              "seed": 0, "init_kwargs": {}, "activation_kwargs": {}}
    return npy(np.array(json.dumps(header)))


def huge_architecture(tmp_path):
    """7 KB: an architecture of 400 million weights next to a [30, 4, 4, 2] network's arrays
    (was: 9.2 GB and a minute before anything refused it)."""
    good = save_small(tmp_path / "good.npz")
    return rewrite(good, {"architecture": architecture_declaring([30, 20000, 20000, 2])}, tmp_path / "w.npz")


def lying_header(tmp_path):
    """An .npy header declaring float64[20000, 20000] in front of 4 bytes."""
    good = save_small(tmp_path / "good.npz")
    fake = npy_header((20000, 20000)) + bytes(8)
    return rewrite(good, {"W1": fake}, tmp_path / "w.npz")


def bomb_member(tmp_path):
    """W1 of 1 GB of zeros deflated to ~1 MB (was: decompressed whole before its shape was
    compared with the architecture's)."""
    good = save_small(tmp_path / "good.npz")
    out = tmp_path / "w.npz"
    shape = (16000, 8000)
    header = npy_header(shape)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != "W1.npy":
                target.writestr(info.filename, source.read(info))
                continue
            with target.open("W1.npy", "w", force_zip64=True) as member:
                member.write(header)
                left, zeros = shape[0] * shape[1] * 8, bytes(1 << 24)
                while left:
                    member.write(zeros[:left])
                    left -= min(left, len(zeros))
    return out


def deep_json(tmp_path):
    """A JSON header nested 100,000 levels deep (was: an unwrapped RecursionError)."""
    good = save_small(tmp_path / "good.npz")
    deep = npy(np.array("[" * 100_000 + "]" * 100_000))
    return rewrite(good, {"architecture": deep}, tmp_path / "w.npz")


CRAFTED = [
    (huge_architecture, "its architecture declares layer sizes [30, 20000, 20000, 2] (400,640,000 weights) "
                        "but the file holds 154 numbers"),
    (lying_header, "W1 declares float64[20000, 20000] (3,200,000,000 bytes) but holds 8 bytes"),
    (bomb_member, "W1 is float64[16000, 8000], the architecture needs float64[30, 4]"),
    (deep_json, "its architecture header is nested too deeply to be a network's"),
]


@pytest.mark.slow
@pytest.mark.parametrize("logged_model", [False, True], ids=["MLP.load_npz", "logged_model"])
@pytest.mark.parametrize(("craft", "expected"), CRAFTED, ids=[c[0].__name__ for c in CRAFTED])
def test_a_crafted_weights_file_is_refused_in_one_line_in_bounded_memory(tmp_path, craft, expected, logged_model):
    path = craft(tmp_path)
    result, peak = load_in_child(tmp_path, path, logged_model=logged_model)
    assert result.returncode == 2, result.stderr
    # one line, also through the logged model (MLflow once added two lines of advice about
    # type hints on predict: nnexp/tracking/pyfunc_model.py)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"cannot load network from {str(path)!r}: {expected}"], result.stderr
    assert peak < MAX_RSS_MB, f"{peak:.0f} MB"


def test_the_guard_leaves_a_good_file_alone(tmp_path):
    net = MLP([30, 4, 4, 2], seed=3)
    path = tmp_path / "w.npz"
    net.save_npz(path)
    again = MLP.load_npz(path)
    for a, b in zip(net.params, again.params):
        np.testing.assert_array_equal(a, b)


# -- data files --------------------------------------------------------------------------------

def write_mnist(root: Path) -> dict[str, Path]:
    train, test = fake_images(60, 0), fake_images(20, 1)
    return {stem: write_file(root / "mnist" / f"{stem}.gz", idx_bytes(array))
            for stem, array in zip(STEMS, (*train, *test))}


def nnexp_measured(tmp_path, workdir, *args):
    body = f"sys.argv = ['nnexp', *{list(args)!r}]\nrunpy.run_module('nnexp', run_name='__main__')"
    return child(tmp_path, body, cwd=workdir)


@pytest.mark.slow
def test_a_gzip_expanding_to_16_gb_stops_at_the_expected_size(with_earlier_run, tmp_path):
    """A 16 MB gzip of a valid 60-image header followed by 16 GB of zeros (256 gzip members)
    and then garbage: had it been read to the end (36 s) the garbage would say "not a valid
    gzip file"; stopping one byte past the expected size, it is "too long"."""
    workdir, before = with_earlier_run
    root = tmp_path / "root"
    files = write_mnist(root)
    zeros = gzip.compress(bytes(1 << 26), mtime=0)             # 64 MB of zeros in ~65 KB
    images = files["train-images-idx3-ubyte"]
    with open(images, "wb") as f:
        f.write(gzip.compress(idx_bytes(fake_images(60, 0)[0]), mtime=0))
        for _ in range(256):
            f.write(zeros)
        f.write(b"not gzip at all" * 100)
    assert images.stat().st_size < 20 * 2 ** 20
    result, peak = nnexp_measured(tmp_path, workdir, *MNIST_OFFLINE, f"data.root={root}", *QUICK)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert f"data file {images} is too long: its header (60, 28, 28) needs 47056 bytes, it holds more" in line
    assert peak < MAX_RSS_MB, f"{peak:.0f} MB"
    assert_untouched(workdir, before)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["loop", "dangling"])
def test_a_symlink_that_leads_nowhere_is_named_as_such(with_earlier_run, tmp_path, kind):
    workdir, before = with_earlier_run
    root = tmp_path / "root"
    files = write_mnist(root)
    link = files["train-labels-idx1-ubyte"]
    link.unlink()
    if kind == "loop":
        os.symlink(link.name, link)                 # the link points at itself
    else:
        os.symlink("gone.gz", link)
    result = subprocess.run([sys.executable, "-m", "nnexp", *MNIST_OFFLINE, f"data.root={root}", *QUICK],
                            cwd=workdir, env=isolated_env(workdir), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    expected = "is a symlink loop" if kind == "loop" else "is a symlink to gone.gz, which cannot be opened (No such file or directory)"
    assert f"data file {link} {expected}" in line and "missing" not in line
    assert_untouched(workdir, before)
