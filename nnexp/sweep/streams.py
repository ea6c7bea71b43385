"""A closed standard output (``python -m nnexp -m ... | head -1``) must not change any run.

Once the reader is gone every ``print`` would raise ``BrokenPipeError`` and every log record
would print a logging traceback on stderr; the job would fail and the parent with it. The
sweep's output is a convenience (the store holds the record), so writes to a closed pipe are
dropped instead.
"""

from __future__ import annotations

import io
import logging
import os
import sys


class TolerantStream(io.TextIOBase):
    """Wraps a text stream; after the first broken pipe, writes go nowhere."""

    def __init__(self, stream):
        self._stream = stream
        self._closed_pipe = False

    def write(self, text: str) -> int:
        if not self._closed_pipe:
            try:
                return self._stream.write(text)
            except (BrokenPipeError, ValueError):
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._closed_pipe:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._drop()

    def _drop(self) -> None:
        self._closed_pipe = True
        try:   # the interpreter's own last flush of fd 1 must not fail either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")


def tolerate_closed_stdout() -> None:
    """Make this process's stdout and stderr drop writes once their reader is gone, and logging
    drop records it cannot write (instead of printing a traceback)."""
    logging.raiseExceptions = False
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, TolerantStream):
            setattr(sys, name, TolerantStream(stream))
