"""Downloading data files from a list of mirrors, each checked against its known SHA-256.

Each file is streamed into a temporary file next to its destination while being hashed, and
renamed into place only when the checksum matches; on any failure the temporary file is removed,
so a folder never holds a partial or unverified download. A mirror that is unreachable, answers
with an error or serves different bytes is skipped for the next one.

urllib and tqdm are imported inside the functions: ``import nnexp.data`` must stay cheap.
"""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnexp.data.files import atomic_output
from nnexp.errors import DataError

TIMEOUT = 30.0  # seconds without a byte before a mirror is given up (urllib's socket timeout)
_CHUNK = 1 << 16


class _Rejected(Exception):
    """One mirror could not deliver one file intact; the message says why, in a few words."""


def _fetch_one(url: str, dest: Path, sha256: str, timeout: float) -> None:
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``; raise _Rejected otherwise."""
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "nnexp"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, atomic_output(dest) as out:
            total = response.headers.get("Content-Length")
            digest = hashlib.sha256()
            # disable=None: a bar on a terminal, silence in logs and CI.
            with tqdm(
                total=int(total) if total and total.isdigit() else None,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=None,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != sha256:
                # Raised inside atomic_output: the temporary file is removed, dest is untouched.
                raise _Rejected(f"checksum mismatch (got sha256 {digest.hexdigest()[:12]}..., expected {sha256[:12]}...)")
    except urllib.error.HTTPError as e:
        raise _Rejected(f"HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise _Rejected(str(e.reason)) from e
    except (OSError, http.client.HTTPException, ValueError) as e:  # timeouts, resets, bad URLs
        raise _Rejected(f"{type(e).__name__}: {e}".rstrip(": ")) from e


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download created (deepest first) while they are empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:  # not empty (an earlier file arrived), or not ours to remove
            return


def fetch_files(
    files: Mapping[str, str],
    folder: str | Path,
    mirrors: Sequence[str],
    *,
    dataset: str,
    timeout: float = TIMEOUT,
) -> list[Path]:
    """Download every file of ``files`` (name -> SHA-256) into ``folder``; return their paths.

    Each file comes from the first mirror (a base URL; the file name is appended) that serves it
    with the right checksum. Files already downloaded stay if a later one fails: each is complete
    and verified. Raises DataError naming the files still missing, the folder and, per mirror,
    why it failed.
    """
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dataset}: cannot make the data folder {folder}: {e.strerror or e} "
                        f"(choose another root: data.root, $NNEXP_DATA_DIR or --root)") from None
    done = []
    for name, sha256 in files.items():
        reasons = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                _fetch_one(url, folder / name, sha256, timeout)
                done.append(folder / name)
                break
            except _Rejected as e:
                reasons.append(f"{url}: {e}")
        else:
            _remove_empty(made)
            missing = ", ".join(n for n in files if folder / n not in done)
            raise DataError(
                f"{dataset}: could not download {name} ({'; '.join(reasons)}); missing from "
                f"{folder}: {missing}; put them there or run `python -m nnexp.data download "
                f"{dataset}` when online"
            )
    return done
