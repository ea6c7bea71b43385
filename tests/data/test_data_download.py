"""Downloads from a local HTTP server on 127.0.0.1 (port 0): checksums, fall-through, clean failure.

No test contacts any host but 127.0.0.1, and every network wait is bounded by a short timeout.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from nnexp.data import load
from nnexp.data.__main__ import main
from nnexp.data.download import fetch_files
from nnexp.data.mnist import MNIST, download
from nnexp.errors import DataError

PAYLOAD = b"IDX-like payload " * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_file_is_accepted(http_root, tmp_path):
    url, served = http_root
    (served / "a.gz").write_bytes(PAYLOAD)
    dest = tmp_path / "dest"
    got = fetch_files({"a.gz": SHA}, dest, [url], dataset="mnist", timeout=5)
    assert got == [dest / "a.gz"]
    assert (dest / "a.gz").read_bytes() == PAYLOAD
    assert leftovers(dest) == ["a.gz"]  # no temporary files


def test_checksum_mismatch_is_rejected_and_leaves_nothing(http_root, tmp_path):
    url, served = http_root
    (served / "a.gz").write_bytes(PAYLOAD[:-1] + b"!")
    dest = tmp_path / "new" / "dest"
    with pytest.raises(DataError) as e:
        fetch_files({"a.gz": SHA}, dest, [url], dataset="mnist", timeout=5)
    message = str(e.value)
    assert "\n" not in message and "checksum mismatch" in message and "a.gz" in message
    assert not (tmp_path / "new").exists()  # not even the folders it made


def test_mismatch_keeps_an_existing_file(http_root, tmp_path):
    url, served = http_root
    (served / "a.gz").write_bytes(b"wrong")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.gz").write_bytes(b"the user's file")
    with pytest.raises(DataError):
        fetch_files({"a.gz": SHA}, dest, [url], dataset="mnist", timeout=5)
    assert leftovers(dest) == ["a.gz"] and (dest / "a.gz").read_bytes() == b"the user's file"


def test_unreachable_mirror_falls_through_to_the_next(http_root, dead_url, tmp_path):
    url, served = http_root
    (served / "a.gz").write_bytes(PAYLOAD)
    fetch_files({"a.gz": SHA}, tmp_path, [dead_url, url], dataset="mnist", timeout=5)
    assert (tmp_path / "a.gz").read_bytes() == PAYLOAD


def test_bad_mirror_falls_through_to_the_next(http_root, tmp_path):
    url, served = http_root
    (served / "bad").mkdir()
    (served / "bad" / "a.gz").write_bytes(b"not it")
    (served / "a.gz").write_bytes(PAYLOAD)
    # first a mirror serving other bytes, then one answering 404, then the good one
    fetch_files({"a.gz": SHA}, tmp_path / "d", [url + "bad/", url + "missing/", url], dataset="mnist", timeout=5)
    assert leftovers(tmp_path / "d") == ["a.gz"]


def test_silent_mirror_times_out_then_falls_through(http_root, silent_url, tmp_path):
    url, served = http_root
    (served / "a.gz").write_bytes(PAYLOAD)
    fetch_files({"a.gz": SHA}, tmp_path, [silent_url, url], dataset="mnist", timeout=0.3)
    assert (tmp_path / "a.gz").read_bytes() == PAYLOAD


def test_all_mirrors_unreachable_fails_clearly(dead_url, silent_url, tmp_path):
    dest = tmp_path / "mnist"
    files = {"one.gz": SHA, "two.gz": SHA}
    with pytest.raises(DataError) as e:
        fetch_files(files, dest, [dead_url, silent_url], dataset="mnist", timeout=0.3)
    message = str(e.value)
    assert "\n" not in message
    for fragment in ("one.gz, two.gz", str(dest), dead_url, silent_url, "python -m nnexp.data download mnist"):
        assert fragment in message
    assert not dest.exists()


# The MNIST data set end to end: missing files come from the mirrors, then load.


@pytest.fixture
def served_mnist(http_root, make_idx_set, monkeypatch):
    """Serve a small fake MNIST and make its checksums the known ones; yield (url, files)."""
    url, served = http_root
    files = make_idx_set(served)
    for stem, (path, _) in files.items():
        monkeypatch.setitem(MNIST.sha256, path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    return url, files


def test_load_downloads_missing_files(served_mnist, tmp_path):
    url, files = served_mnist
    ds = load("mnist", root=tmp_path / "root", mirrors=[url], val_fraction=0)
    assert leftovers(tmp_path / "root" / "mnist") == sorted(p.name for p, _ in files.values())
    np.testing.assert_array_equal(ds.y_test, files["t10k-labels-idx1-ubyte"][1])
    assert ds.train[0].shape == (100, 784)


def test_load_without_download_lists_missing_files(tmp_path):
    with pytest.raises(DataError) as e:
        load("mnist", root=tmp_path / "root", download=False)
    message = str(e.value)
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "root" / "mnist") in message and "python -m nnexp.data download mnist" in message
    assert not (tmp_path / "root").exists()


def test_load_offline_fails_clearly_and_leaves_nothing(tmp_path, dead_url, make_idx_set):
    folder = tmp_path / "root" / "mnist"
    make_idx_set(folder)
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"could not download t10k-images-idx3-ubyte.gz .*Connection refused"):
        load("mnist", root=tmp_path / "root", mirrors=[dead_url])
    assert len(leftovers(folder)) == 3


def test_download_keeps_verified_files_and_replaces_bad_ones(served_mnist, tmp_path):
    url, files = served_mnist
    folder = download(MNIST, tmp_path, [url], timeout=5)
    good = folder / "train-labels-idx1-ubyte.gz"
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(b"corrupt")
    before = good.stat().st_mtime_ns
    download(MNIST, tmp_path, [url], timeout=5)
    assert good.stat().st_mtime_ns == before
    assert bad.read_bytes() == files["t10k-labels-idx1-ubyte"][0].read_bytes()


def test_cli_download(served_mnist, tmp_path, capsys):
    url, _ = served_mnist
    assert main(["download", "mnist", "--root", str(tmp_path), "--mirror", url, "--timeout", "5"]) == 0
    assert "4 files verified" in capsys.readouterr().out
    assert len(leftovers(tmp_path / "mnist")) == 4


def test_cli_failure_is_one_line_and_nonzero(tmp_path, dead_url):
    result = subprocess.run(
        [sys.executable, "-m", "nnexp.data", "download", "fashion_mnist", "--root", str(tmp_path),
         "--mirror", dead_url, "--timeout", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2   # as a run reports the same failure
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnexp.data: error: fashion_mnist: could not download")
