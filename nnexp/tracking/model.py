"""Save a trained network as an MLflow pyfunc model (see :mod:`nnexp.tracking.pyfunc_model`).

The model folder is written here, file by file, in the format ``mlflow.pyfunc.save_model``
writes for a "model from code" (MLflow 3): ``MLmodel``, ``conda.yaml``, ``python_env.yaml``,
``requirements.txt``, the model's code file and ``artifacts/weights.npz``. Calling MLflow to do
it would import MLflow (2-3 s) in every run that logs a model; the folder it makes is a few
small text files. ``tests/test_tracking_backends.py`` checks that this folder and the one
``mlflow.pyfunc.save_model`` writes for the same network agree key by key, and that MLflow
loads, validates and serves it.
"""

from __future__ import annotations

import datetime
import json
import platform
import shutil
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml

import nnexp

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
LOADER_MODULE = "mlflow.pyfunc.loaders.code_model"   # MLflow's loader of models from code
BUILD_PACKAGES = ("pip", "setuptools", "wheel")      # what MLflow lists in python_env.yaml


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _pinned(package: str) -> str:
    version = _version(package)
    return f"{package}=={version}" if version else package


def _tensor_spec(dtype: str, width: int) -> str:
    """A tensor signature as MLflow serialises it: any number of rows of ``width`` values."""
    return json.dumps([{"type": "tensor", "tensor-spec": {"dtype": np.dtype(dtype).name, "shape": [-1, width]}}])


def save_pyfunc(weights_npz: Path, out_dir: Path, n_inputs: int, n_outputs: int, dtype: str) -> Path:
    """Write an MLflow pyfunc model folder to ``out_dir`` / "model" and return its path.

    The signature is tensor-based, (-1, n_inputs) in and (-1, n_outputs) out in the run's dtype,
    so ``mlflow models predict`` validates its input's width. The pip requirements are nnexp,
    NumPy and MLflow, pinned to the versions installed here.
    """
    path = Path(out_dir) / "model"
    (path / "artifacts").mkdir(parents=True)
    weights_npz = Path(weights_npz)
    shutil.copyfile(weights_npz, path / "artifacts" / weights_npz.name)
    shutil.copyfile(MODEL_CODE, path / MODEL_CODE.name)
    # MLflow counts the model's files before it writes the environment files
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    python = platform.python_version()
    requirements = [_pinned("mlflow"), f"nnexp=={nnexp.__version__}", f"numpy=={np.__version__}"]
    (path / "requirements.txt").write_text("\n".join(requirements))
    pip = _version("pip")
    conda = {"channels": ["conda-forge"],
             "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip", {"pip": requirements}],
             "name": "mlflow-env"}
    (path / "conda.yaml").write_text(yaml.safe_dump(conda, default_flow_style=False))
    python_env = {"python": python, "build_dependencies": [_pinned(p) for p in BUILD_PACKAGES],
                  "dependencies": ["-r requirements.txt"]}
    (path / "python_env.yaml").write_text(yaml.safe_dump(python_env, default_flow_style=False, sort_keys=False))
    flavor = {"artifacts": {"weights": {"path": f"artifacts/{weights_npz.name}", "uri": str(weights_npz)}},
              "cloudpickle_version": _version("cloudpickle"), "code": None,
              "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
              "loader_module": LOADER_MODULE, "model_code_path": str(MODEL_CODE),
              "python_version": python, "streamable": False}
    mlmodel = {"flavors": {"python_function": flavor}, "is_signature_from_type_hint": False,
               "mlflow_version": _version("mlflow"), "model_id": None, "model_size_bytes": size,
               "model_uuid": uuid.uuid4().hex, "prompts": None,
               "signature": {"inputs": _tensor_spec(dtype, n_inputs), "outputs": _tensor_spec(dtype, n_outputs),
                             "params": None},
               "type_hint_from_example": False,
               "utc_time_created": str(datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))}
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel, default_flow_style=False))
    return path
