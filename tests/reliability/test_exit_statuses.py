"""Bad input exits 2 with one line and no traceback in every command, not only ``python -m nnexp``:
``python -m nnexp.data download``, ``python -m nnexp.compare``, ``python -m nnexp.ui``.
Exit 1 is left for failures that are not the input's (a bug, with its traceback)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.helpers import QUICK, all_runs, client_for, isolated_env, nnexp

pytestmark = pytest.mark.slow


def command(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = isolated_env(cwd, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def one_line(result: subprocess.CompletedProcess, prefix: str) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"{prefix}: error: "), lines[0]
    return lines[0]


# -- python -m nnexp.data download ------------------------------------------------------------

DOWNLOAD_CASES = [
    ("root_is_a_file", ["--root", "afile"], "cannot make the data folder afile/mnist: Not a directory"),
    ("root_cannot_be_made", ["--root", "/proc/x"], "cannot make the data folder /proc/x/mnist"),
    ("mirror_not_a_url", ["--mirror", "ftp://example.org/"], "must be a non-empty list of http://, https:// "
                                                             "or file:// URLs, got ['ftp://example.org/']"),
    ("timeout_negative", ["--timeout", "-1"], "--timeout must be a number of seconds > 0, got -1"),
]


@pytest.mark.parametrize(("args", "expected"), [c[1:] for c in DOWNLOAD_CASES], ids=[c[0] for c in DOWNLOAD_CASES])
def test_download_refuses_bad_arguments_with_exit_2(tmp_path, args, expected):
    """Was: a NotADirectoryError traceback (exit 1) for a root that is a file, and exit 1 for a
    download a run reports with exit 2."""
    (tmp_path / "afile").write_text("")
    result = command("nnexp.data", "download", "mnist", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in one_line(result, "nnexp.data")
    assert not (tmp_path / "data").exists()   # nothing fetched, no folder made


# -- python -m nnexp.compare ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory) -> tuple[Path, str]:
    """A folder whose store holds a two-job sweep; returns it and a child run's id."""
    folder = tmp_path_factory.mktemp("sweep-store")
    result = nnexp("-m", "lr=0.1,0.01", *QUICK, cwd=folder)
    assert result.returncode == 0, result.stderr
    child = next(r for r in all_runs(client_for(folder)) if r.data.tags.get("nnexp.sweep") != "parent")
    return folder, child.info.run_id


def compare_cases(child_id: str) -> list:
    return [
        (["--sweep", "0123456789abcdef0123456789abcdef"], "no run '0123456789abcdef0123456789abcdef' in this store"),
        (["--sweep", child_id], f"run {child_id} is not a sweep's parent run"),
        (["--out", "/proc/x"], "cannot write to /proc/x"),
        (["--experiment", "nope"], "no experiment 'nope' in"),
        (["--uri", "http://127.0.0.1:9"], "cannot read the runs in http://127.0.0.1:9"),
    ]


def test_compare_refuses_bad_input_with_exit_2(sweep_store):
    """Each case: one line, exit 2, nothing written under outputs/."""
    folder, child_id = sweep_store
    for args, expected in compare_cases(child_id):
        result = command("nnexp.compare", *args, cwd=folder)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in one_line(result, "nnexp.compare"), args
    assert not (folder / "outputs" / "compare").exists()
    result = command("nnexp.compare", cwd=folder)   # and the good command still works
    assert result.returncode == 0, result.stderr
    assert "2 runs, ranked by best_val_loss" in result.stdout


# -- python -m nnexp.ui -----------------------------------------------------------------------

def test_ui_refuses_a_taken_port_a_bad_store_and_a_server_with_exit_2(tmp_path):
    (tmp_path / "bad.db").write_text("not a database")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cases = [
            (["--port", port, "--uri", f"sqlite:///{tmp_path / 'bad.db'}"], "is not a usable SQLite database"),
            (["--uri", "http://127.0.0.1:9"], "http://127.0.0.1:9 is a tracking server, which has its own UI"),
            (["--uri", f"sqlite:///{tmp_path / 'none.db'}"], "no runs yet"),
        ]
        migrated = tmp_path / "mlflow.db"
        for args, expected in cases:
            result = command("nnexp.ui", *args, cwd=tmp_path)
            assert result.returncode == 2, (args, result.stderr)
            assert expected in one_line(result, "nnexp.ui"), args
        assert not migrated.exists()   # no store made on the way
        # with a store that exists: a taken port, a port that is none
        good = nnexp(*QUICK, cwd=tmp_path)
        assert good.returncode == 0, good.stderr
        for args, expected in ((["--port", port], f"cannot listen on 127.0.0.1:{port}"),
                               (["--port", "70000"], "--port 70000 is not a port number")):
            result = command("nnexp.ui", *args, cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert expected in one_line(result, "nnexp.ui")
