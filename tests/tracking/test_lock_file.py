"""The store's creation lock (``<database>.lock``) is removed by its holder, yet still excludes:
processes taking it at once never overlap, and none is left in the working folder (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HOLDER = """
import sys, time
from pathlib import Path
from nnexp.tracking.store import _creation_lock
db, log = Path(sys.argv[1]), Path(sys.argv[2])
for _ in range(15):
    lock = _creation_lock(db)
    with open(log, "a") as out:
        out.write("enter\\n")
    time.sleep(0.002)
    with open(log, "a") as out:
        out.write("leave\\n")
    lock.close()
"""


def test_the_lock_file_is_removed_and_still_excludes(tmp_path):
    db, log = tmp_path / "mlflow.db", tmp_path / "log.txt"
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(db), str(log)]) for _ in range(4)]
    assert [holder.wait(timeout=120) for holder in holders] == [0] * 4
    lines = log.read_text().split()
    assert lines == ["enter", "leave"] * 60          # never two holders inside at once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]   # no mlflow.db.lock left


def test_closing_twice_is_harmless(tmp_path):
    from nnexp.tracking.store import _creation_lock

    lock = _creation_lock(tmp_path / "mlflow.db")
    assert (tmp_path / "mlflow.db.lock").is_file()
    lock.close()
    lock.close()
    assert not Path(tmp_path / "mlflow.db.lock").exists()


def test_a_lock_file_removed_while_it_is_checked_means_start_again(tmp_path, monkeypatch):
    """The race the CI dry run met with eight processes: between locking an old lock file and
    checking the path, a newer holder removed the newer file; that is "start again", not a
    FileNotFoundError."""
    import os

    from nnexp.tracking import store

    real_stat, calls = os.stat, []

    def stat_once_gone(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(store.os, "stat", stat_once_gone)
    lock = store._creation_lock(tmp_path / "mlflow.db")
    assert len(calls) == 2          # checked, found gone, locked again, checked again
    lock.close()
    assert not (tmp_path / "mlflow.db.lock").exists()
