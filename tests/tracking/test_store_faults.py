"""The store under faults: a crashed writer's hot journal, an interrupted creation, another
application's SQLite file, a damaged page, unreachable servers -- through the real commands."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

QUICK = ("epochs=1", "tracking.log_model=false", "progress=false")


def one_line_exit_2(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def cleanup(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nnexp.tracking", "cleanup", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def runs_in(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from runs").fetchone()[0]


def test_a_hot_journal_is_recovered_not_called_damage(tmp_path, migrated_db):
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    run_cli(*QUICK, cwd=tmp_path, check=True)
    # a writer dies inside a transaction: its journal is left hot beside the database
    crash = ("import os, sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('pragma cache_size=1'); c.execute('begin immediate')\n"
             "c.execute(\"update runs set name = 'half-written'\")\n"
             "c.executemany('insert into tags (key, value, run_uuid) select ?, ?, run_uuid from runs',"
             " [(f'k{i}', 'x' * 3000) for i in range(300)])\n"
             "os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", crash, str(db)], timeout=60)
    assert (tmp_path / "mlflow.db-journal").stat().st_size > 0
    result = run_cli(*QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "damaged" not in result.stderr and "readonly" not in result.stderr
    with sqlite3.connect(db) as connection:
        names = [row[0] for row in connection.execute("select name from runs")]
    assert len(names) == 2 and "half-written" not in names


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_store_interrupted_while_it_is_created_is_absent_or_usable(tmp_path, signum):
    """Creating a store takes seconds of migrations; interrupted at several moments, it is
    either not there or complete, and the next run works."""
    for delay in (0.8, 1.6, 2.4, 3.2, 4.5):
        folder = tmp_path / f"{signum.name}-{delay}"
        folder.mkdir()
        process = subprocess.Popen([sys.executable, "-m", "nnexp", *QUICK], cwd=folder,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        time.sleep(delay)
        process.send_signal(signum)
        process.wait(timeout=120)
        db = folder / "mlflow.db"
        if db.exists():
            with sqlite3.connect(db) as connection:   # complete: MLflow's tables, one revision
                assert connection.execute("select count(*) from alembic_version").fetchone() == (1,)
        result = run_cli(*QUICK, cwd=folder)
        assert result.returncode == 0, (delay, result.stderr[-2000:])


@pytest.fixture(params=["notes", "runs"])
def foreign_db(request, tmp_path) -> Path:
    """Another application's SQLite file (one with a table called ``runs`` too)."""
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute(f"create table {request.param} (id integer primary key, body text)")
        connection.execute(f"insert into {request.param} (body) values ('keep me')")
    return db


def test_another_applications_file_is_never_touched(foreign_db):
    before = foreign_db.read_bytes()
    folder = foreign_db.parent
    one_line_exit_2(run_cli(*QUICK, cwd=folder), "another application", "not an MLflow store")
    one_line_exit_2(cleanup("--dry-run", cwd=folder), "another application")
    one_line_exit_2(cleanup("--uri", f"sqlite:///{foreign_db}", cwd=folder), "another application")
    ui = subprocess.run([sys.executable, "-m", "nnexp.ui", "--port", "1"], cwd=folder,
                        capture_output=True, text=True, timeout=60)
    one_line_exit_2(ui, "another application")
    assert foreign_db.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir() if p.name != "outputs") == ["mlflow.db"]


def test_a_damaged_page_is_named_with_the_way_to_recover(tmp_path, migrated_db):
    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db, db)
    run_cli(*QUICK, cwd=tmp_path, check=True)
    with sqlite3.connect(db) as connection:
        page_size = connection.execute("pragma page_size").fetchone()[0]
        root = connection.execute("select rootpage from sqlite_master where name = 'runs'").fetchone()[0]
    with open(db, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    line = one_line_exit_2(run_cli(*QUICK, cwd=tmp_path), "damaged", ".recover", str(db))
    assert line.startswith("nnexp: error:")
    one_line_exit_2(cleanup(cwd=tmp_path), "damaged")


@pytest.mark.parametrize(("uri", "words"), [
    ("postgresql+psycopg2://u@127.0.0.1:1/db", ["pip install", "psycopg2-binary"]),
    ("http://127.0.0.1:9", ["no tracking server answers", "127.0.0.1:9"]),
    ("nosuch://x", ["not a tracking URI"]),
])
def test_unusable_tracking_uris_are_one_line_quickly(tmp_path, uri, words):
    started = time.monotonic()
    one_line_exit_2(run_cli(*QUICK, f"tracking.uri={uri}", cwd=tmp_path), *words)
    one_line_exit_2(cleanup("--uri", uri, cwd=tmp_path), *words)
    assert time.monotonic() - started < 30


def test_databricks_is_not_called_a_folder():
    from nnexp.tracking.store import resolve_uri

    assert resolve_uri("databricks") == "databricks"
