"""Save a trained network as an MLflow pyfunc model (see :mod:`nnexp.tracking.pyfunc_model`)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

import nnexp

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
_MLFLOW_HINTS = re.compile(r"type hint|input example", re.IGNORECASE)


def _without_mlflow_hints(show):
    def showwarning(message, category, *args, **kwargs):
        if not _MLFLOW_HINTS.search(str(message)):
            show(message, category, *args, **kwargs)

    return showwarning


def save_pyfunc(weights_npz: Path, out_dir: Path, n_inputs: int, n_outputs: int, dtype: str) -> Path:
    """Write an MLflow pyfunc model folder to ``out_dir`` / "model" and return its path.

    The signature is tensor-based, (-1, n_inputs) in and (-1, n_outputs) out in the run's dtype,
    so ``mlflow models predict`` validates its input's width. The pip requirements are given
    explicitly: inferring them imports and inspects the whole environment and takes seconds.
    """
    with warnings.catch_warnings():
        # MLflow warns about type hints and input examples while it imports and saves; the
        # explicit tensor signature below is what validates a model's input. Its own
        # simplefilter("once") overrides filters, so the hints are dropped where they are shown.
        warnings.showwarning = _without_mlflow_hints(warnings.showwarning)
        import mlflow.pyfunc
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(dtype), (-1, n_inputs))]),
                                   outputs=Schema([TensorSpec(np.dtype(dtype), (-1, n_outputs))]))
        path = Path(out_dir) / "model"
        mlflow.pyfunc.save_model(
            path=str(path), python_model=str(MODEL_CODE), artifacts={"weights": str(weights_npz)},
            signature=signature,
            pip_requirements=[f"nnexp=={nnexp.__version__}", f"numpy=={np.__version__}"],
        )
    return path
