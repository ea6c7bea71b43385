"""nnexp.memory_pages: NumPy's huge-page advice is turned off only where the kernel would stall
on it, and never against the user's own setting."""

import subprocess
import sys

import pytest

from nnexp.memory_pages import avoid_compaction_stalls, thp_defrag


def defrag_file(tmp_path, text):
    path = tmp_path / "defrag"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "mode", "switched"), [
    ("always defer defer+madvise [madvise] never\n", "madvise", True),
    ("[always] defer defer+madvise madvise never\n", "always", True),
    ("always defer [defer+madvise] madvise never\n", "defer+madvise", True),
    ("always [defer] defer+madvise madvise never\n", "defer", False),
    ("always defer defer+madvise madvise [never]\n", "never", False),
])
def test_numpy_advice_is_off_only_where_faults_compact_synchronously(tmp_path, text, mode, switched):
    path = defrag_file(tmp_path, text)
    environ = {}
    assert thp_defrag(path) == mode
    assert avoid_compaction_stalls(environ, path) is switched
    assert environ == ({"NUMPY_MADVISE_HUGEPAGE": "0"} if switched else {})


def test_the_users_own_setting_and_an_unknown_kernel_are_left_alone(tmp_path):
    path = defrag_file(tmp_path, "always defer defer+madvise [madvise] never\n")
    environ = {"NUMPY_MADVISE_HUGEPAGE": "1"}
    assert not avoid_compaction_stalls(environ, path) and environ == {"NUMPY_MADVISE_HUGEPAGE": "1"}
    environ = {}
    assert not avoid_compaction_stalls(environ, tmp_path / "missing") and environ == {}


def test_the_command_line_sets_it_before_numpy_is_imported():
    """``python -m nnexp`` runs main() with NumPy not yet loaded, so NumPy reads the switch."""
    if thp_defrag() is None:
        pytest.skip("no /sys/kernel/mm/transparent_hugepage/defrag on this machine")
    code = ("import sys, nnexp.__main__; assert 'numpy' not in sys.modules; "
            "from nnexp.memory_pages import avoid_compaction_stalls, thp_defrag, STALLING; "
            "env = {}; avoid_compaction_stalls(env); "
            "import os; os.environ.update(env); import numpy; "
            "print(numpy._core.multiarray._get_madvise_hugepage() is (thp_defrag() not in STALLING))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
