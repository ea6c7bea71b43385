"""MLflow "model from code" for an nnexp network: ``predict(X)`` returns class probabilities.

MLflow copies this file into the logged model and runs it at load time (pickling a model
object is deprecated in MLflow 3, and loading pickles is unsafe). The weights travel as the
artifact ``weights``: an ``.npz`` file read with ``allow_pickle=False``.

Input: an array or DataFrame of shape (n_samples, n_inputs). Output: (n_samples, n_outputs)
probabilities (one column for a sigmoid output on a two-class problem).
"""

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class NnexpModel(PythonModel):
    def load_context(self, context):
        from nnexp.core import MLP

        self.net = MLP.load_npz(context.artifacts["weights"])

    def predict(self, context, model_input, params=None):
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        X = np.ascontiguousarray(values, dtype=self.net.dtype)
        return self.net.predict_proba(X)


set_model(NnexpModel())
