"""nnexp.core: multilayer perceptrons in pure NumPy.

This package imports NumPy and the standard library only (never Hydra, MLflow, scikit-learn
or the rest of nnexp), so it can be used, tested and benchmarked on its own::

    from nnexp.core import MLP, Adam, EarlyStopping, fit
    net = MLP([30, 16, 8, 2], activation="relu", output="softmax", loss="cross_entropy",
              init="he", dtype="float64", seed=0)
    history = fit(net, Adam(lr=1e-3), train=(X, Y), val=(Xv, Yv), epochs=50, batch_size=32,
                  early_stopping=EarlyStopping(monitor="val_loss", patience=5))

Name tables (name -> implementation) for configuration front ends: ``ACTIVATIONS``,
``OUTPUTS``, ``LOSSES``, ``INITIALIZERS``, ``OPTIMIZERS``, ``SCHEDULES``; the valid output x
loss pairs are ``VALID_OUTPUT_LOSS`` (checked by ``check_output_loss``).
"""

from nnexp.core.activations import ACTIVATIONS, OUTPUTS
from nnexp.core.early_stopping import EarlyStopping
from nnexp.core.fit import evaluate, fit
from nnexp.core.gradcheck import gradcheck
from nnexp.core.history import History
from nnexp.core.initializers import INITIALIZERS
from nnexp.core.losses import LOSSES, VALID_OUTPUT_LOSS, check_output_loss
from nnexp.core.metrics import accuracy, to_labels
from nnexp.core.network import MLP
from nnexp.core.clipping import clip_grad_norm
from nnexp.core.optimizers import (
    OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, Optimizer, RMSprop,
)
from nnexp.core.schedules import (
    SCHEDULES, Constant, CosineDecay, ExponentialDecay, InverseTimeDecay, OneCycle, StepDecay,
)
from nnexp.core.serialize import load_npz, save_npz

__all__ = [
    "MLP", "fit", "evaluate", "gradcheck", "History", "EarlyStopping",
    "Optimizer", "SGD", "Momentum", "Nesterov", "RMSprop", "Adam", "AdamW", "AdaGrad",
    "clip_grad_norm",
    "Constant", "StepDecay", "ExponentialDecay", "InverseTimeDecay", "CosineDecay", "OneCycle",
    "ACTIVATIONS", "OUTPUTS", "LOSSES", "INITIALIZERS", "OPTIMIZERS", "SCHEDULES",
    "VALID_OUTPUT_LOSS", "check_output_loss", "accuracy", "to_labels", "save_npz", "load_npz",
]
