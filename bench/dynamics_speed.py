"""Cost of the per-layer diagnostics: fit epochs with and without the on_step recorder.

    python bench/dynamics_speed.py [--samples 20000] [--repeats 3]

Random MNIST-shaped data (784 inputs, 10 classes), float32, one BLAS thread per the caller's
environment. Rows: the seed's 6x50 sigmoid network with SGD at batch 10 and 128, and a
784-256-256-10 ReLU network with Adam at batch 128. The recorder samples every k-th step,
k = ceil(batches per epoch / 50) as diagnostics=on does. Median epoch seconds of --repeats.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from nnexp.core import SGD, MLP, Adam, fit
from nnexp.core.diagnostics import recorder_for

WORKLOADS = [("6x50 sigmoid SGD", [50] * 6, "sigmoid", SGD, 0.002, 10),
             ("6x50 sigmoid SGD", [50] * 6, "sigmoid", SGD, 0.002, 128),
             ("256x256 relu Adam", [256, 256], "relu", Adam, 0.001, 128)]


def epoch_seconds(hidden, activation, optimizer, lr, batch, X, Y, diagnostics: bool) -> float:
    net = MLP([784, *hidden, 10], activation=activation, dtype="float32", init="xavier_uniform")
    every = max(1, math.ceil(math.ceil(len(X) / batch) / 50))
    hook = recorder_for(net, every=every) if diagnostics else None
    on_epoch = (lambda e, m: hook.epoch_metrics()) if hook else None
    started = time.perf_counter()
    fit(net, optimizer(lr=lr), (X, Y), epochs=1, batch_size=batch,
        on_step=hook.hook if hook else None, on_epoch=on_epoch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.samples)]
    print("| workload | batch | off (s/epoch) | on (s/epoch) | on / off |")
    print("|---|---|---|---|---|")
    for name, hidden, activation, optimizer, lr, batch in WORKLOADS:
        times = {False: [], True: []}
        for _ in range(args.repeats):          # alternate, so machine load hits both alike
            for diagnostics in (False, True):
                times[diagnostics].append(epoch_seconds(hidden, activation, optimizer, lr, batch,
                                                        X, Y, diagnostics))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {name} | {batch} | {off:.3f} | {on:.3f} | {on / off:.3f} |")


if __name__ == "__main__":
    main()
