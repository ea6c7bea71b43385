"""What a run could not write during a store outage (a replay file, nnexp/tracking/replay.py) is
written by the next nnexp command on that store: python -m nnexp and cleanup (tested with the
faults themselves, tests/reliability/test_store_faults2.py), and compare and ui, which read the
store (here)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnexp.tracking import replay
from nnexp.tracking.records import MetricPoint
from tests.reliability.helpers import isolated_env, nnexp

pytestmark = pytest.mark.slow


def _sweep_with_a_kept_record(tmp_path: Path, monkeypatch) -> tuple[Path, str, Path]:
    """A 2-job sweep in ``tmp_path`` and a replay file for one child: a point and a tag the store
    'could not take'. Returns the database, that child's id and the file."""
    done = nnexp("-m", "data=spiral", "epochs=2", "lr=0.1,0.01", "progress=false", "diagnostics=off",
                 "tracking.log_model=false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        (child,) = connection.execute("select run_uuid from runs where name like 'adam-lr0.1-%'").fetchone()
    monkeypatch.setenv("NNEXP_CACHE_DIR", str(tmp_path / "cache"))   # where the commands look
    kept = replay.save(f"sqlite:///{db}", child, [MetricPoint("late_point", 0.25, int(time.time() * 1000), 3)],
                       {"nnexp.replayed": "yes"}, "FINISHED")
    assert kept is not None and kept.exists()
    return db, child, kept


def _written(db: Path, run_id: str) -> bool:
    with sqlite3.connect(db) as connection:
        point = connection.execute("select value, step from metrics where run_uuid=? and key='late_point'",
                                   (run_id,)).fetchall()
        tag = connection.execute("select value from tags where run_uuid=? and key='nnexp.replayed'",
                                 (run_id,)).fetchall()
    return point == [(0.25, 3)] and tag == [("yes",)]


def test_compare_writes_the_pending_records_before_it_compares(tmp_path, monkeypatch):
    db, child, kept = _sweep_with_a_kept_record(tmp_path, monkeypatch)
    done = subprocess.run([sys.executable, "-m", "nnexp.compare", "--out", str(tmp_path / "cmp")], cwd=tmp_path,
                          env=isolated_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"run {child}" in done.stdout and "could not take before" in done.stdout
    assert not kept.exists() and _written(db, child)
    assert (tmp_path / "cmp" / "comparison.csv").is_file()


def test_ui_writes_the_pending_records_before_it_serves(tmp_path, monkeypatch):
    db, child, kept = _sweep_with_a_kept_record(tmp_path, monkeypatch)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "nnexp.ui", "--port", str(port)], cwd=tmp_path,
                              env=isolated_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)   # its own group: mlflow ui starts uvicorn
    try:
        lines = []
        for line in server.stdout:   # the notes of the replay come before the UI's address
            lines.append(line)
            if line.startswith("MLflow UI for"):
                break
        assert any(f"run {child}" in line for line in lines), "".join(lines) + server.stderr.read()
        assert not kept.exists() and _written(db, child)
    finally:
        os.killpg(server.pid, signal.SIGTERM)   # the server's own process group, by its id
        server.communicate(timeout=30)          # and its pipes closed
