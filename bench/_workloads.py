"""The benchmark's workloads, in one place: the three networks, learning rates, data, FLOPs.

Imported by processes that train (the workers of ``train_speed.py``, ``numpy_calls.py``) after
their thread counts are fixed; NumPy is imported inside the functions that need it so that the
orchestrating parent can import this module without loading BLAS.
"""

from __future__ import annotations

from dataclasses import dataclass

N_SAMPLES, N_INPUTS, N_CLASSES = 60_000, 784, 10
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")
# Small enough that no framework diverges on random labels within a few epochs: a diverged
# nnexp run stops its epoch at the first non-finite loss, which would fake a fast epoch.
LEARNING_RATES = {"sgd": 0.01, "adam": 1e-3}


@dataclass(frozen=True)
class Workload:
    """One network and batch size, trained with softmax + cross-entropy on 10 classes."""

    key: str
    sizes: tuple[int, ...]
    activation: str      # nnexp's name: "sigmoid" or "relu"
    batch_size: int
    dropout: float = 0.0         # after every hidden activation (torch: nn.Dropout)
    batch_norm: bool = False     # before every hidden activation (torch: Linear(bias=False), BatchNorm1d)
    # nnexp only: fit with the per-layer statistics of diagnostics=on (torch and scikit-learn
    # train the same network without them, so their cells are the base workload's)
    diagnostics: bool = False

    @property
    def label(self) -> str:
        hidden = self.sizes[1:-1]
        widths = f"{len(hidden)}x{hidden[0]}" if len(set(hidden)) == 1 and len(hidden) > 2 \
            else "-".join(map(str, hidden))
        extra = (" + batch norm" if self.batch_norm else "") + \
            (f" + dropout {self.dropout:g}" if self.dropout else "") + \
            (" + diagnostics" if self.diagnostics else "")
        return (f"({self.key}) {self.sizes[0]}-{widths}-{self.sizes[-1]} {self.activation}{extra}, "
                f"batch {self.batch_size}")

    @property
    def init(self) -> str:
        return "xavier_uniform" if self.activation == "sigmoid" else "he"


WORKLOADS = {
    # the classic from-scratch tutorial network
    "a": Workload("a", (N_INPUTS, 50, 50, 50, 50, 50, 50, N_CLASSES), "sigmoid", 10),
    "b": Workload("b", (N_INPUTS, 256, 256, N_CLASSES), "relu", 128),
    "c": Workload("c", (N_INPUTS, 1024, 1024, N_CLASSES), "relu", 512),
    # (b) with the layers of issue 15
    "d": Workload("d", (N_INPUTS, 256, 256, N_CLASSES), "relu", 128, dropout=0.2),
    "e": Workload("e", (N_INPUTS, 256, 256, N_CLASSES), "relu", 128, batch_norm=True),
    # (a) and (b) with diagnostics=on (issue 16): against nnexp's own (a) and (b)
    "f": Workload("f", (N_INPUTS, 50, 50, 50, 50, 50, 50, N_CLASSES), "sigmoid", 10,
                  diagnostics=True),
    "g": Workload("g", (N_INPUTS, 256, 256, N_CLASSES), "relu", 128, diagnostics=True),
}
# the workload each diagnostics workload adds its statistics to
DIAGNOSTICS_BASE = {"f": "a", "g": "b"}


def diagnostics_section() -> dict:
    """``conf/diagnostics/on.yaml`` as ``diagnostics=on`` reads it (``every``,
    ``samples_per_epoch``), so the benchmarks sample as the app does."""
    import yaml

    from nnexp.config import CONF

    return yaml.safe_load((CONF / "diagnostics" / "on.yaml").read_text())


def matmul_flops(sizes, n: int) -> int:
    """Exact matrix-multiply FLOPs of one epoch over ``n`` samples (2 per multiply-add).

    Per layer with ``d_in`` inputs and ``d_out`` outputs: forward ``Z = A W`` and the weight
    gradient ``dW = A^T delta`` cost ``2 n d_in d_out`` each; the input gradient
    ``delta W^T`` costs the same but is skipped for the first layer, whose input is the data.
    Element-wise work (activations, softmax, biases, the optimizer) is not counted.
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    per_sample = sum(2 * 2 * i * o for i, o in layers) + sum(2 * i * o for i, o in layers[1:])
    return n * per_sample


def random_mnist(n: int = N_SAMPLES, dtype: str = "float32", seed: int = 0):
    """A fixed MNIST-shaped data set: pixels uniform in [0, 1), labels uniform over 10 classes.

    The arithmetic of a training step does not depend on the values (no sparsity shortcuts in
    any framework), so random data times the same work as MNIST without needing its files.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.random((n, N_INPUTS), dtype=np.float32).astype(dtype, copy=False)
    return X, rng.integers(0, N_CLASSES, n)


def real_mnist(root: str, dtype: str = "float32"):
    """The 60,000 MNIST training images (min-max scaled) and labels, through nnexp.data."""
    from nnexp.data import load

    data = load("mnist", root=root, dtype=dtype, val_fraction=0.0, download=False,
                scaling="minmax")
    X, Y = data.train
    return X, Y.argmax(axis=1)


def one_hot(labels, dtype: str):
    import numpy as np

    return np.eye(N_CLASSES, dtype=dtype)[labels]


def nnexp_model(workload: Workload, optimizer: str, dtype: str):
    """``(net, opt)`` for nnexp.core, built as a user would."""
    from nnexp.core import MLP, SGD, Adam

    net = MLP(workload.sizes, activation=workload.activation, output="softmax",
              loss="cross_entropy", init=workload.init, dtype=dtype, seed=0,
              dropout=workload.dropout, batch_norm=workload.batch_norm)
    opt = {"sgd": SGD, "adam": Adam}[optimizer](lr=LEARNING_RATES[optimizer])
    return net, opt
