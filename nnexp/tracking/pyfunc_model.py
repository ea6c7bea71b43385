"""MLflow "model from code" for an nnexp network: raw features in, class probabilities out.

MLflow copies this file into the logged model and runs it at load time (pickling a model
object is deprecated in MLflow 3, and loading pickles is unsafe). Two artifacts travel with
it, both ``.npz`` files read with ``allow_pickle=False``:

- ``weights``: the network, loaded through the public core API (``MLP.load_npz``), so the model
  predicts exactly as the core does, whatever its layers;
- ``preprocessing``: the scaling fitted on the run's training split, ``shift`` and ``scale``
  of shape ``(n_inputs,)``; a raw feature ``x`` becomes ``(x - shift) / scale`` (no arrays:
  the run used no scaling).

Input: an array or DataFrame of raw features, shape ``(n_samples, n_inputs)``. Output:
``(n_samples, n_outputs)`` probabilities (one column for a sigmoid output on two classes).
"""

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class NnexpModel(PythonModel):
    def load_context(self, context):
        from nnexp.core import MLP

        self.net = MLP.load_npz(context.artifacts["weights"])
        with np.load(context.artifacts["preprocessing"], allow_pickle=False) as scaling:
            self.scaling = (scaling["shift"], scaling["scale"]) if "shift" in scaling.files else None

    # The model's signature is a tensor (n_samples, n_features), so MLflow hands predict an
    # ndarray. The annotation says so; MLflow 3 warns at every load of a model whose predict
    # has none, and for np.ndarray it infers nothing and validates nothing beyond the signature
    # logged from the input example (mlflow.types.type_hints.type_hints_no_signature_inference).
    def predict(self, context, model_input: np.ndarray, params=None):
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        X = np.asarray(values, dtype=np.float64)
        if self.scaling is not None:
            # the scaling the run fitted on its training split (nnexp.data.preprocess.transform)
            X = (X - self.scaling[0]) / self.scaling[1]
        return self.net.predict_proba(np.ascontiguousarray(X, dtype=self.net.dtype))


set_model(NnexpModel())
