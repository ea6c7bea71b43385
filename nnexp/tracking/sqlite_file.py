"""The SQLite file of a store, under faults: a crashed writer, an interrupted creation, a file
that is not an MLflow store, a damaged page.

- A writer that crashed mid-transaction leaves a *hot journal*; SQLite rolls it back the next
  time the file is opened read-write (nothing committed is lost). So the file is checked through
  a read-write connection: a read-only one cannot roll back and reports "attempt to write a
  readonly database", which is not damage.
- A new store is made by MLflow's schema migrations, which take seconds; interrupted, they leave
  a half-made schema that every later open trips over. :func:`create_atomically` migrates a
  temporary file beside the target and renames it into place (a rename is atomic on POSIX), so
  the store is either absent or complete.
- A SQLite file of another application is never migrated (MLflow would add its 60-odd tables
  to it): :func:`check` refuses it, naming a few of its tables.
- A damaged file (a corrupt page) is named, with SQLite's own recovery command.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from nnexp.errors import TrackingError

# Tables every MLflow store has, whatever its version.
MLFLOW_TABLES = {"alembic_version", "experiments", "runs"}
DAMAGE_WORDS = ("malformed", "corrupt")   # a damaged SQLite file, as opposed to no SQLite file at all


def damaged(db: Path, error: Exception) -> TrackingError:
    """The one-line error for a store SQLite cannot read."""
    # Debian's sqlite3 (3.40.1) lacks the sqlite_dbpage table .recover needs ("SQL logic error")
    return TrackingError(f"the MLflow store {db} is damaged ({error}); recover what it holds with "
                         f"SQLite's shell (sqlite.org's build; Debian's lacks .recover): `sqlite3 {db} .recover "
                         f"| sqlite3 {db.with_name('recovered.db')}`, then move {db.name} aside and the "
                         f"recovered file into its place")


def is_damage(error: Exception) -> bool:
    return any(word in str(error).lower() for word in DAMAGE_WORDS)


def tables(db: Path, timeout: float = 60) -> set[str]:
    """The table names of ``db``, opened read-write when it can be (recovers a hot journal).

    Raises ``sqlite3.DatabaseError`` ("malformed") when SQLite's ``quick_check`` finds a damaged
    page in it: found now, before a run starts, rather than when a run's first metrics are
    written into the damaged table (0.13 s for a 117 MB store of 600,000 metric points).
    """
    mode = "rw" if os.access(db, os.W_OK) else "ro"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode={mode}", uri=True, timeout=timeout)) as connection:
        found = {row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")}
        problems = [row[0] for row in connection.execute("pragma quick_check(5)")]
    if problems != ["ok"]:
        detail = " ".join(problems[0].replace("*** in database main ***", "").split())[:80]
        raise sqlite3.DatabaseError(f"database disk image is malformed: {detail}")
    return found


def check(db: Path) -> None:
    """Raise :class:`TrackingError` unless ``db`` is absent, empty, or an MLflow store SQLite can
    read. Opening it read-write rolls back a crashed writer's hot journal."""
    if not db.exists() or (db.is_file() and not db.stat().st_size):
        return
    try:
        found = tables(db)
    except sqlite3.DatabaseError as error:
        if is_damage(error):
            raise damaged(db, error) from None
        raise TrackingError(f"the MLflow store {db} is not a usable SQLite database ({error}); move it "
                            f"aside or choose another with MLFLOW_TRACKING_URI") from None
    if found and not MLFLOW_TABLES <= found:
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise TrackingError(f"{db} is a SQLite database of another application (tables: {shown}), not an "
                            f"MLflow store; nnexp leaves it alone: choose another store with "
                            f"MLFLOW_TRACKING_URI or tracking.uri")
    if not found:
        raise TrackingError(f"{db} is a SQLite database with no tables, not an MLflow store; delete it "
                            f"or choose another store with MLFLOW_TRACKING_URI")


def needs_creation(db: Path) -> bool:
    return not db.exists() or (db.is_file() and not db.stat().st_size)


def create_atomically(db: Path, migrate: Callable[[str], None]) -> None:
    """Make a new store at ``db``: ``migrate(uri)`` a temporary file beside it, then rename it
    into place. The caller holds the creation lock; a leftover temporary file (a creator killed
    with SIGKILL) is removed first."""
    temporary = db.with_name(f".{db.name}.creating")
    temporary.unlink(missing_ok=True)
    try:
        migrate(f"sqlite:///{temporary}")
        if db.exists() and db.stat().st_size:   # made meanwhile by a process without our lock
            return
        os.replace(temporary, db)
    finally:
        temporary.unlink(missing_ok=True)
