"""Cost of the per-layer diagnostics: fit epochs with and without the on_step recorder.

    python bench/dynamics_speed.py [--samples 20000] [--repeats 3] [--samples-per-epoch 20]

Random MNIST-shaped data (784 inputs, 10 classes), float32, one BLAS thread per the caller's
environment. Rows: the seed's 6x50 sigmoid network with SGD at batch 10 and 128, and a
784-256-256-10 ReLU network with Adam at batch 128. The recorder samples every k-th step,
k = ceil(batches per epoch / samples per epoch) as diagnostics=on does (its default
``diagnostics.samples_per_epoch``, or ``--samples-per-epoch``). Best of --repeats alternating epochs
(the least disturbed), each timed by the process's CPU time (``time.process_time``: steadier than wall time on a shared
machine, and training is single-process).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from nnexp.core import SGD, MLP, Adam, fit
from nnexp.core.diagnostics import recorder_for

WORKLOADS = [("6x50 sigmoid SGD", [50] * 6, "sigmoid", SGD, 0.002, 10),
             ("6x50 sigmoid SGD", [50] * 6, "sigmoid", SGD, 0.002, 128),
             ("256x256 relu Adam", [256, 256], "relu", Adam, 0.001, 128)]


def epoch_seconds(hidden, activation, optimizer, lr, batch, X, Y, every: int | None) -> float:
    """CPU seconds of one fit epoch; ``every``: the recorder's sampling period (None: off)."""
    net = MLP([784, *hidden, 10], activation=activation, dtype="float32", init="xavier_uniform")
    hook = recorder_for(net, every=every) if every else None
    on_epoch = (lambda e, m: hook.epoch_metrics()) if hook else None
    started = time.process_time()
    fit(net, optimizer(lr=lr), (X, Y), epochs=1, batch_size=batch,
        on_step=hook.hook if hook else None, on_epoch=on_epoch)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples-per-epoch", type=int, default=None,
                        help="sampled steps per epoch (default: conf/diagnostics/on.yaml's)")
    args = parser.parse_args()
    if args.samples_per_epoch is None:
        from _workloads import diagnostics_section

        args.samples_per_epoch = diagnostics_section()["samples_per_epoch"]
    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, args.samples)]
    print(f"{args.samples} samples, {args.samples_per_epoch} sampled steps per epoch, best of "
          f"{args.repeats} alternating epochs, CPU seconds. 'every step': all steps observed; from it, "
          f"the cost of one sampled step and what {args.samples_per_epoch} of them add to an epoch "
          f"(a steadier figure than the direct ratio on a noisy machine)")
    print("| workload | batch | off (s/epoch) | on (s/epoch) | on / off | every step (s/epoch) "
          "| ms per sampled step | on / off from it |")
    print("|---|---|---|---|---|---|---|---|")
    for name, hidden, activation, optimizer, lr, batch in WORKLOADS:
        steps = math.ceil(len(X) / batch)
        every = max(1, math.ceil(steps / args.samples_per_epoch))
        times = {None: [], every: [], 1: []}
        for _ in range(args.repeats):          # alternate, so machine load hits all alike
            for period in times:
                times[period].append(epoch_seconds(hidden, activation, optimizer, lr, batch, X, Y, period))
        off, on, each = min(times[None]), min(times[every]), min(times[1])
        per_sample = (each - off) / steps
        sampled = math.ceil(steps / every)
        print(f"| {name} | {batch} | {off:.3f} | {on:.3f} | {on / off:.3f} | {each:.3f} | "
              f"{1e3 * per_sample:.3f} | {1 + sampled * per_sample / off:.3f} |")

if __name__ == "__main__":
    main()
