"""Every tag name nnexp reads or writes, one constant each, and MLflow's standard run tags.

MLflow's own tags start with ``mlflow.``: the UI fills "Created by" from ``mlflow.user`` and
"Source" from ``mlflow.source.name``/``mlflow.source.type``, and links the commit from
``mlflow.source.git.commit``. MLflow's fluent API sets them; ``MlflowClient.create_run`` (and
nnexp's direct SQLite writer) set none, so :func:`standard_tags` gives them to every run.
"""

from __future__ import annotations

import functools
import getpass
import os
import subprocess
import sys
from pathlib import Path

# MLflow's standard tags (mlflow/utils/mlflow_tags.py)
RUN_NAME = "mlflow.runName"
PARENT = "mlflow.parentRunId"
USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
EXPERIMENT_KIND = "mlflow.experimentKind"   # experiment tag: "custom_model_development" etc.

# nnexp's own
PID = "nnexp.pid"
HOST = "nnexp.host"
ERROR = "nnexp.error"
STOP_REASON = "nnexp.stop_reason"
VERSION = "nnexp.version"
MODE = "nnexp.mode"
DATA = "nnexp.data"
OVERRIDES = "nnexp.overrides"
CONFIG_HASH = "nnexp.config_hash"
BLAS_THREADS = "nnexp.blas_threads"
NNEXP_GIT_COMMIT = "nnexp.git_commit"
MODEL_ID = "nnexp.model_id"   # the run's LoggedModel (``models:/<id>``)

# The experiment kind MLflow 3's UI shows as "model training" (not the GenAI traces view).
EXPERIMENT_KIND_TRAINING = "custom_model_development"


@functools.cache
def git_commit() -> str | None:
    """The commit of the nnexp source tree, when it is a git checkout (not in a wheel)."""
    import nnexp

    source = Path(nnexp.__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        result = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def _user() -> str:
    try:
        return getpass.getuser()
    except (ImportError, KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER", "unknown")


def standard_tags() -> dict[str, str]:
    """``mlflow.user``, ``mlflow.source.name``/``type`` (and the git commit) as MLflow's fluent
    API sets them: the source is the program's main file, the type LOCAL."""
    tags = {USER: _user(), SOURCE_NAME: (sys.argv[0] if sys.argv and sys.argv[0] else "<console>"),
            SOURCE_TYPE: "LOCAL"}
    commit = git_commit()
    if commit:
        tags[GIT_COMMIT] = commit
    return tags
