"""Log a trained network as an MLflow 3 LoggedModel that takes raw features.

:func:`log_model` hands the network to MLflow's own model API (``mlflow.models.Model.log`` with
the pyfunc flavour, as ``mlflow.pyfunc.log_model`` does, plus the ``run_id`` that function does
not take) as a "model from code" (:mod:`nnexp.tracking.pyfunc_model`). MLflow then makes the
LoggedModel: ``search_logged_models`` finds it, the run page and the experiment's Models tab
show it, ``models:/<model_id>`` and ``runs:/<run_id>/model`` load it, and it can be registered.

The model's artifacts are the network's ``weights.npz`` and ``preprocessing.npz``, the scaling
fitted on the run's training split, so ``predict`` takes the data set's raw columns and returns
class probabilities. Its input example is a few raw test rows; its signature is MLflow's
``infer_signature`` of that example and the network's output on it, computed here so that MLflow
need not load the model to infer it.

Cost: this imports MLflow (about 1.5 s here) and opens MLflow's own store (about 1 s, SQLAlchemy)
in a process that had no need of either, then MLflow maps installed packages to check the pip
requirements (about 0.6 s, once per process): ``bench/README.md`` has the figures;
``tracking.log_model=false`` skips the model. A sweep's children therefore log only what the
model is made of (:func:`save_model_inputs`: ``weights.npz``, ``preprocessing.npz``,
``input_example.npz`` among the run's artifacts) and the sweep logs the LoggedModel of its best
child once, at its end (:func:`log_model_of_run`).
"""

from __future__ import annotations

import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
MODEL_NAME = "model"   # runs:/<run_id>/model
# what a run keeps among its artifacts so that its model can be logged later (log_model_of_run)
WEIGHTS, PREPROCESSING, INPUT_EXAMPLE = "weights.npz", "preprocessing.npz", "input_example.npz"


@dataclass(frozen=True)
class LoggedModel:
    """What :func:`log_model` made: its id (``models:/<model_id>``) and its local folder."""

    model_id: str
    run_id: str
    local_folder: Path | None   # None when the store keeps artifacts elsewhere (a server, S3)

    @property
    def uri(self) -> str:
        return f"models:/{self.model_id}"

    def predict_command(self, tracking_uri: str, default_uri: str) -> str:
        """A ``mlflow models predict`` command on the model's input example, ready to paste."""
        env = "" if tracking_uri == default_uri else f"MLFLOW_TRACKING_URI={shlex.quote(tracking_uri)} "
        example = (self.local_folder / "serving_input_example.json") if self.local_folder else None
        source = shlex.quote(str(example)) if example and example.is_file() else "input.json"
        return (f"{env}mlflow models predict -m runs:/{self.run_id}/{MODEL_NAME} -i {source} -t json "
                f"--env-manager local")


def _save_preprocessing(path: Path, scaler) -> None:
    """``shift`` and ``scale`` as ``(n_inputs,)`` float64 arrays, or an empty file for no scaling."""
    if scaler is None:
        np.savez(path)
    else:
        shift, scale = (np.asarray(a, dtype=np.float64).reshape(-1) for a in scaler)
        np.savez(path, shift=shift, scale=scale)


def save_model_inputs(folder: Path, scaler, input_example: np.ndarray) -> None:
    """``preprocessing.npz`` and ``input_example.npz`` (array ``rows``, raw ``(k, n_inputs)``) in
    ``folder``, next to the run's ``weights.npz``: with them :func:`log_model_of_run` logs the
    run's model afterwards without the data set."""
    _save_preprocessing(folder / PREPROCESSING, scaler)
    np.savez(folder / INPUT_EXAMPLE, rows=np.asarray(input_example, dtype=np.float64))


def log_model_of_run(tracking_uri: str, run_id: str) -> LoggedModel:
    """Log the LoggedModel of a run that kept :func:`save_model_inputs`' files (a sweep's best
    child), from its artifacts: wherever the store keeps them (a folder, a tracking server)."""
    from nnexp.tracking.store import _collector_paused, import_mlflow_client

    with _collector_paused():
        import_mlflow_client()
        import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="nnexp-best-") as tmp:
        for name in (WEIGHTS, PREPROCESSING, INPUT_EXAMPLE):
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=tmp,
                                                tracking_uri=tracking_uri)
        return log_model_from_folder(tracking_uri, run_id, Path(tmp))


def log_model_from_folder(tracking_uri: str, run_id: str, folder: Path) -> LoggedModel:
    """Log the LoggedModel of run ``run_id`` from ``folder``, which holds its ``weights.npz`` and
    :func:`save_model_inputs`' files (a single run hands them to the model helper this way)."""
    with np.load(folder / PREPROCESSING, allow_pickle=False) as scaling:
        scaler = (scaling["shift"], scaling["scale"]) if "shift" in scaling.files else None
    with np.load(folder / INPUT_EXAMPLE, allow_pickle=False) as example:
        rows = example["rows"]
    return log_model(tracking_uri, run_id, folder / WEIGHTS, scaler, rows)


def _signature(weights_path: str | Path, scaler, rows: np.ndarray):
    """MLflow's ``infer_signature`` of the raw example and the network's probabilities on it
    (what the model returns: :mod:`nnexp.tracking.pyfunc_model`), without loading the model."""
    from mlflow.models import infer_signature

    from nnexp.core import MLP

    net = MLP.load_npz(weights_path)
    X = rows if scaler is None else (rows - np.reshape(scaler[0], -1)) / np.reshape(scaler[1], -1)
    return infer_signature(rows, net.predict_proba(np.ascontiguousarray(X, dtype=net.dtype)))


def log_model(tracking_uri: str, run_id: str, weights_path: str | Path, scaler,
              input_example: np.ndarray, *, registered_model_name: str | None = None) -> LoggedModel:
    """Log the network in ``weights_path`` as the LoggedModel ``model`` of run ``run_id``.

    Works on a run that already ended (a sweep logs its best child's model afterwards): the
    run's status is not touched. ``scaler`` is the ``(shift, scale)`` fitted on the raw training
    features (``nnexp.data.Dataset.scaler``) or None; ``input_example`` a few raw rows
    ``(k, n_inputs)``. Raises :class:`~nnexp.errors.TrackingError` in one line on MLflow errors.
    """
    from nnexp.errors import TrackingError
    from nnexp.tracking.store import _collector_paused, import_mlflow_client

    with _collector_paused():
        import_mlflow_client()
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.models import Model

    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="nnexp-model-") as tmp:
        try:
            # the LoggedModel is made in the fluent API's current experiment: the run's own
            mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)
            info = Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, run_id=run_id,
                             registered_model_name=registered_model_name,
                             **_pyfunc_arguments(Path(tmp), weights_path, scaler, input_example))
        except MlflowException as error:
            raise TrackingError(f"cannot log the model of run {run_id}: {' '.join(str(error).split())[:300]}") from None
    from nnexp.tracking.sqlite_backend import local_path

    location = client.get_logged_model(info.model_id).artifact_location
    return LoggedModel(info.model_id, run_id, local_path(location))


def _pyfunc_arguments(folder: Path, weights_path: str | Path, scaler, input_example: np.ndarray) -> dict:
    """What MLflow's pyfunc API is given for this network (model from code, its artifacts, the
    example and signature, the requirements); ``preprocessing.npz`` is written into ``folder``."""
    preprocessing = folder / "preprocessing.npz"
    _save_preprocessing(preprocessing, scaler)
    rows = np.asarray(input_example, dtype=np.float64)
    return {"python_model": str(MODEL_CODE),
            "artifacts": {"weights": str(weights_path), "preprocessing": str(preprocessing)},
            "input_example": rows, "signature": _signature(weights_path, scaler, rows),
            "pip_requirements": _requirements()}


def rehearse() -> None:
    """Save a two-unit network's model into a temporary folder, through the same MLflow calls
    as :func:`log_model`, and throw it away: MLflow's lazy imports and its once-per-process
    requirements check are then paid (0.27 s), and a model logged later in this process takes
    0.22 s instead of 0.49 s (the sweep's model helper rehearses while the jobs train)."""
    from nnexp.core import MLP
    from nnexp.tracking.store import _collector_paused, import_mlflow_client

    with _collector_paused():
        import_mlflow_client()
        import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="nnexp-rehearsal-") as tmp:
        weights = Path(tmp) / WEIGHTS
        MLP([3, 2], seed=0).save_npz(weights)
        mlflow.pyfunc.save_model(path=str(Path(tmp) / MODEL_NAME),
                                 **_pyfunc_arguments(Path(tmp), weights, None, np.zeros((2, 3))))


def _requirements() -> list[str]:
    """nnexp, NumPy and MLflow pinned to the versions installed here (what the model imports)."""
    from importlib import metadata

    import nnexp

    return [f"mlflow=={metadata.version('mlflow')}", f"nnexp=={nnexp.__version__}", f"numpy=={np.__version__}"]
