"""Data sets for nnexp: a name and options in, ready train/val/test arrays out.

    from nnexp.data import load
    ds = load("mnist", dtype="float32", seed=0, scaling="minmax", val_fraction=0.1)
    X, Y = ds.train

:data:`DATASETS` maps each name to its loader; ``conf/data/<name>.yaml`` holds the same options
and defaults for Hydra. ``python -m nnexp.data download mnist`` fetches the MNIST files ahead of
time. Importing this package is cheap: scikit-learn, urllib, tqdm and python-mnist are imported
only when they are used.
"""

from nnexp.data.registry import DATASETS, Dataset, Loader, load

__all__ = ["DATASETS", "Dataset", "Loader", "load"]
