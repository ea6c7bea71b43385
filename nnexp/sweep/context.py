"""The job context: everything a sweep's job needs to join its sweep, shipped with the job.

The driver (the process that runs ``python -m nnexp -m ...``) makes one :class:`JobContext`
before any job is composed and appends it to the multirun config's Hydra overrides as
``++hydra.job.env_set.NNEXP_SWEEP=<base64url of JSON>`` (plus ``NNEXP_DATA_DIR``). Every launcher
composes each job from those overrides (Hydra's ``load_sweep_config``: in the driver for basic,
joblib and Ray, on the node for submitit) and pickles the composed config to wherever the job
runs; Hydra's ``run_job`` then sets ``hydra.job.env_set`` as environment variables around the
task function, in whichever process, container or machine runs it. So a job learns its parent
run, experiment, absolute store URI and data root from its own config, never from a file in the
sweep folder, and the driver's working folder need not be visible to it.

Fields (JSON keys): ``parent_run_id``, ``experiment``, ``tracking_uri`` (absolute: a relative
``sqlite:///`` path is resolved against the driver's working folder), ``data_root`` (absolute),
``driver_pid``, ``driver_host``, ``cwd`` (the driver's working folder: a job's relative
``data.root`` is taken from there), ``invocation`` (one id per ``python -m nnexp -m`` call, so a
resumed sweep can tell its own job records from earlier ones).

The value is base64url so that any URI or experiment name survives Hydra's override grammar and
OmegaConf's interpolation unchanged. To see what a job received::

    python -c "from nnexp.sweep.context import JobContext; print(JobContext.from_environ())"
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

VARIABLE = "NNEXP_SWEEP"
DATA_VARIABLE = "NNEXP_DATA_DIR"


@dataclass(frozen=True)
class JobContext:
    """What the driver tells every job of its sweep (see the module docstring)."""

    parent_run_id: str
    experiment: str
    tracking_uri: str
    data_root: str
    driver_pid: int
    driver_host: str
    cwd: str
    invocation: str

    @classmethod
    def for_driver(cls, parent_run_id: str, experiment: str, tracking_uri: str, invocation: str,
                   data_root: str | os.PathLike | None = None) -> "JobContext":
        cwd = Path.cwd()
        root = data_root or os.environ.get(DATA_VARIABLE) or cwd / "data"
        return cls(parent_run_id, experiment, absolute_uri(tracking_uri, cwd), str((cwd / root).resolve()),
                   os.getpid(), socket.gethostname(), str(cwd), invocation)

    def encode(self) -> str:
        return base64.urlsafe_b64encode(json.dumps(asdict(self), sort_keys=True).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> "JobContext":
        padded = text + "=" * (-len(text) % 4)
        return cls(**json.loads(base64.urlsafe_b64decode(padded.encode())))

    def overrides(self) -> list[str]:
        """Hydra overrides that ship this context inside every job's config."""
        return [f"++hydra.job.env_set.{VARIABLE}={self.encode()}",
                f"++hydra.job.env_set.{DATA_VARIABLE}='{_quoted(self.data_root)}'"]

    @classmethod
    def from_environ(cls, environ=None) -> "JobContext | None":
        """The context of the job running in this process, or None outside a sweep's job."""
        text = (os.environ if environ is None else environ).get(VARIABLE)
        return cls.decode(text) if text else None

    @classmethod
    def from_overrides(cls, overrides) -> "JobContext | None":
        """The context the driver appended to a multirun's Hydra overrides (:meth:`overrides`),
        or None when there is none (the sweep callback was taken out of the config)."""
        prefix = f"++hydra.job.env_set.{VARIABLE}="
        for override in overrides or ():
            if str(override).startswith(prefix):
                return cls.decode(str(override).removeprefix(prefix))
        return None

    def in_driver(self) -> bool:
        """Whether this process is the sweep's driver (the basic launcher runs jobs in it)."""
        return os.getpid() == self.driver_pid and socket.gethostname() == self.driver_host

    def data_root_for(self, root: str | None) -> str | None:
        """A job's ``data.root`` made absolute against the driver's folder (None stays None:
        ``NNEXP_DATA_DIR`` from the context then applies)."""
        if root is None or Path(root).is_absolute():
            return root
        return str(Path(self.cwd) / root)


def _quoted(value: str) -> str:
    """``value`` inside single quotes of Hydra's override grammar (a path: no quotes in it)."""
    if "'" in value or "\\" in value or "${" in value:
        raise ValueError(f"the data root {value!r} cannot be passed to the jobs (rename the folder)")
    return value


def absolute_uri(uri: str, cwd: str | os.PathLike) -> str:
    """``uri`` with a relative ``sqlite:///`` path resolved against ``cwd``; other URIs unchanged.

    ``sqlite:///mlruns/mlflow.db`` names ``mlruns/mlflow.db`` relative to whichever folder the
    process is in: a job in its own folder (``hydra.job.chdir=true``) or on a Ray worker would
    open another database. ``sqlite:////abs/path.db`` (four slashes) is already absolute.
    """
    if urlparse(uri).scheme != "sqlite" or not uri.startswith("sqlite:///"):
        return uri
    path = uri.removeprefix("sqlite:///")
    path, query = path.split("?", 1) if "?" in path else (path, None)
    absolute = (Path(cwd) / path).resolve() if not Path(path).is_absolute() else Path(path)
    return f"sqlite:///{absolute}" + (f"?{query}" if query else "")
