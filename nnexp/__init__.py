"""nnexp: declarative experiment sweeps for NumPy multilayer perceptrons, tracked in MLflow.

Importing ``nnexp`` is cheap on purpose: the core lives in :mod:`nnexp.core` (NumPy only),
data sets in :mod:`nnexp.data`, and MLflow and Hydra are imported only by the modules that
need them.
"""

__version__ = "0.1.0"
