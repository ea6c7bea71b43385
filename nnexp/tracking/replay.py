"""What a run could not write to its store, kept in a local file until the store takes it.

When the store takes no write for longer than the wait allowed (:mod:`nnexp.tracking.outage`),
even a run's final status may not get in: the run would be left RUNNING, its last metric
points lost. :func:`save` writes them -- the points, the tags and the status -- to a JSON file
under ``<cache dir>/replay/`` (``$NNEXP_CACHE_DIR``, else ``~/.cache/nnexp``; beside the
database when the cache folder cannot be written), and the next nnexp command that opens that
store (a run, a sweep, ``python -m nnexp.tracking cleanup``) calls :func:`replay_pending` before
anything else: it writes them (points already stored are not stored twice) and removes the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnexp.errors import NnexpError
from nnexp.tracking.records import MetricPoint


def store_key(uri: str) -> str:
    """A short name for a store, the same for every spelling of a SQLite file's path."""
    if uri.startswith("sqlite:///"):
        uri = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def _folders(uri: str) -> list[Path]:
    """Where replay files of ``uri`` may be: the cache folder first, then beside the database."""
    from nnexp.data.cache import cache_dir

    folders = [cache_dir() / "replay"]
    if uri.startswith("sqlite:///"):
        folders.append(Path(uri.removeprefix("sqlite:///")).resolve().parent)
    return folders


def _name(uri: str, run_id: str) -> str:
    return f".nnexp-replay-{store_key(uri)}-{run_id}.json"


def save(uri: str, run_id: str, points: Sequence[MetricPoint], tags: Mapping[str, str], status: str) -> Path | None:
    """Keep what run ``run_id`` of store ``uri`` could not write; the file's path, or None if no
    folder could take it either."""
    from nnexp.data.files import atomic_output

    record = {"uri": uri, "run_id": run_id, "status": status, "tags": dict(tags),
              "metrics": [list(point) for point in points]}
    data = json.dumps(record).encode()
    for folder in _folders(uri):
        path = folder / _name(uri, run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())   # the only record of these points: make it durable
        except OSError:
            continue
        return path
    return None


def pending(uri: str) -> list[Path]:
    """The replay files kept for the store ``uri``, oldest first."""
    found = []
    for folder in _folders(uri):
        found += folder.glob(f".nnexp-replay-{store_key(uri)}-*.json") if folder.is_dir() else []
    return sorted(found, key=lambda path: path.stat().st_mtime)


def replay_pending(backend, uri: str) -> int:
    """Write every replay file of store ``uri`` through ``backend`` and remove it (one note on
    stdout each); a file the store still cannot take is kept for the next command. Returns how
    many files were written."""
    written = 0
    for path in pending(uri):
        try:
            record = json.loads(path.read_text())
            points = [MetricPoint(str(k), float(v), int(t), int(s)) for k, v, t, s in record["metrics"]]
            run_id, status = str(record["run_id"]), str(record["status"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            _say(f"nnexp: note: ignoring the unreadable replay file {path} ({error}); remove it", sys.stderr)
            continue
        try:
            if points or record.get("tags"):
                backend.log_batch(run_id, metrics=points, tags=record.get("tags") or {})
            backend.set_status(run_id, status)
        except NnexpError as error:   # the run was deleted or is gone: nothing to write it to
            _say(f"nnexp: note: dropped {path}: {error}", sys.stderr)
        except Exception as error:   # noqa: BLE001 - the store still refuses: keep it for later
            _say(f"nnexp: note: the store still cannot take what {path} keeps "
                 f"({' '.join(str(error).split())[:160]}); kept for the next command", sys.stderr)
            continue
        else:
            written += 1
            _say(f"nnexp: note: wrote the {len(points)} metric points and the {status} status of run "
                 f"{run_id} that the store could not take before (kept in {path})", sys.stdout)
        path.unlink(missing_ok=True)
    return written


def _say(text: str, stream) -> None:
    print(text, file=stream, flush=True)
