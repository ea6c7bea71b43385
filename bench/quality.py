"""Test accuracy and wall time of an nnexp preset next to the same settings in PyTorch.

    python bench/quality.py --experiment mnist_best --data-root /work/shared/data
    python bench/quality.py --experiment fashion_best --data-root /work/shared/data --threads 2
    python bench/quality.py --experiment mnist_best --epochs 1 --limit 5000   # a smoke test

nnexp: ``python -m nnexp experiment=NAME`` as a user runs it (a subprocess, its own temporary
store, no model logged), timed from start to exit; its ``test_acc=`` line is read.

PyTorch: the same composed config translated to ``nn.Sequential`` (``Linear``, optional
``BatchNorm1d`` before the activation, the activation, optional ``Dropout``), the same
initialisation family, optimizer, schedule (per epoch or per step as nnexp applies it),
gradient clipping, label smoothing and random image shifts, trained on the very arrays nnexp
trains on (``nnexp.data.load`` with the run's options and seed: same split, same scaling), and
evaluated at the weights of its best validation epoch (by ``early_stopping.monitor``), as
nnexp's logged scores are. Same
thread count for both (``--threads``, set before NumPy or torch load). nnexp's time is the
whole command (start-up, imports, data, tracking); PyTorch's starts after its imports, in
process, data loading included: a slight advantage to PyTorch.

What differs on purpose: the random streams (weights, shuffles, masks, shifts), so single
runs differ by about 0.1 percentage point either way; ``--seeds`` repeats both.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compose(experiment: str, overrides: list[str]) -> dict:
    """The resolved config of ``python -m nnexp experiment=NAME OVERRIDES`` (Hydra compose API)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = hydra_compose("config", [f"experiment={experiment}", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def run_nnexp(experiment: str, overrides: list[str], threads: int) -> tuple[float, float]:
    """(test accuracy, seconds) of the preset run through the command line."""
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "nnexp", f"experiment={experiment}", "progress=false",
                   "tracking.log_model=false", f"tracking.uri=sqlite:///{folder}/bench.db",
                   f"hydra.run.dir={folder}/outputs", *overrides]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    found = re.search(r"test_acc=([0-9.]+)", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"nnexp run failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return float(found.group(1)), seconds


def _torch_layers(torch, model: dict, sizes: list[int]):
    nn = torch.nn
    hidden = len(sizes) - 2

    def per_layer(value, default):
        value = default if value is None else value
        return list(value) if isinstance(value, list) else [value] * hidden

    activations = per_layer(model.get("activation"), "relu")
    dropouts = per_layer(model.get("dropout"), 0.0)
    norms = per_layer(model.get("batch_norm"), False)
    kinds = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU}
    layers = []
    for k in range(hidden):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if norms[k]:
            layers.append(nn.BatchNorm1d(sizes[k + 1]))
        layers.append(kinds[activations[k]]())
        if dropouts[k]:
            layers.append(nn.Dropout(dropouts[k]))
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    net = nn.Sequential(*layers).double() if model.get("_dtype") == "float64" else nn.Sequential(*layers)
    init = model.get("init", "he")
    for layer in net:
        if isinstance(layer, nn.Linear):
            if init == "he":
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            elif init == "xavier_uniform":
                nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def _torch_optimizer(torch, net, opt: dict):
    """The optimizer with the project's rule: weight decay on weight matrices only."""
    decayed = [p for p in net.parameters() if p.ndim >= 2]
    plain = [p for p in net.parameters() if p.ndim < 2]
    wd = opt.get("weight_decay", 0.0)
    groups = [{"params": decayed, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}]
    name, lr = opt["name"], opt["lr"]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(opt["beta1"], opt["beta2"]), eps=opt["eps"])
    if name in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=opt.get("momentum", 0.0),
                               nesterov=name == "nesterov")
    raise SystemExit(f"bench/quality.py has no PyTorch translation of optimizer={name}")


def _lr_at(schedule, base: float, epoch: int, step: int, total: int) -> float:
    """The learning rate nnexp uses at (completed epochs, steps taken so far): its own schedule
    object, so both sides follow exactly the same rates."""
    if getattr(schedule, "per_step", False):
        return float(schedule(base, step, total))
    return float(schedule(base, epoch))


def run_torch(cfg: dict, threads: int, seed: int) -> tuple[float, float]:
    """(test accuracy at the best validation epoch, seconds) of the same settings in PyTorch."""
    import numpy as np
    import torch

    from nnexp.app import load_data
    from nnexp.build import build_optimizer
    from nnexp.data.augment import IMAGE_SHAPES, shift_images

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    started = time.perf_counter()
    data = load_data(cfg)
    Xtr, Ytr = data.train
    sizes = [data.n_inputs, *cfg["model"]["hidden"], data.n_outputs]
    model = dict(cfg["model"], _dtype=cfg["dtype"])
    net = _torch_layers(torch, model, sizes)
    opt = _torch_optimizer(torch, net, cfg["optimizer"])
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg["model"].get("label_smoothing", 0.0))
    batch = cfg["batch_size"] or len(Xtr)
    epochs = cfg["epochs"]
    total = epochs * math.ceil(len(Xtr) / batch)
    shift = (cfg["data"].get("augment") or {}).get("shift", 0)
    clip = cfg["optimizer"].get("clip_norm")
    schedule = build_optimizer(cfg).schedule
    rng = np.random.default_rng(seed)
    ytr = torch.from_numpy(data.y_train)
    monitor = cfg["early_stopping"].get("monitor", "val_loss")
    best_val, best_state, step = -math.inf, None, 0
    for epoch in range(epochs):
        X = shift_images(Xtr, IMAGE_SHAPES[cfg["data"]["name"]], shift, rng) if shift else Xtr
        X = torch.from_numpy(X)
        net.train()
        for rows in torch.randperm(len(X)).split(batch):
            for group in opt.param_groups:
                group["lr"] = _lr_at(schedule, cfg["optimizer"]["lr"], epoch, step, total)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[rows]), ytr[rows])
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            step += 1
        net.eval()
        with torch.no_grad():   # the epoch nnexp would keep: by early_stopping.monitor
            logits = net(torch.from_numpy(data.val[0]))
            yval = torch.from_numpy(data.y_val)
            score = ((logits.argmax(1) == yval).double().mean().item() if monitor == "val_acc"
                     else -torch.nn.functional.cross_entropy(logits, yval).item())
        if score > best_val:
            best_val = score
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        acc = float((net(torch.from_numpy(data.test[0])).argmax(1).numpy() == data.y_test).mean())
    return acc, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--data-root", default=os.environ.get("NNEXP_DATA_DIR"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="repeat both with seeds 0..N-1")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--limit", type=int, help="train on this many images (smoke test)")
    parser.add_argument("--skip", choices=["nnexp", "torch"], help="leave one side out")
    args = parser.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    overrides = []
    if args.data_root:   # the files are there: never fetch
        overrides += [f"data.root={args.data_root}", "data.download=false"]
    if args.epochs:
        overrides.append(f"epochs={args.epochs}")
    if args.limit:
        overrides.append(f"data.limit={args.limit}")
    rows = []
    for seed in range(args.seeds):
        run_overrides = [*overrides, f"seed={seed}"]
        cfg = compose(args.experiment, run_overrides)
        if args.skip != "nnexp":
            rows.append(("nnexp", seed, *run_nnexp(args.experiment, run_overrides, args.threads)))
        if args.skip != "torch":
            rows.append(("torch", seed, *run_torch(cfg, args.threads, seed)))
        for row in rows[-2:]:
            print(f"  {row[0]:6s} seed {row[1]}: test acc {row[2]:.4f} in {row[3]:.0f} s",
                  file=sys.stderr)
    print(f"\n`experiment={args.experiment}`, {args.threads} thread(s), "
          f"epochs={cfg['epochs']}, hidden={cfg['model']['hidden']}\n")
    print("| framework | seed | test accuracy | wall time (s) |")
    print("| --- | ---: | ---: | ---: |")
    for framework, seed, acc, seconds in rows:
        print(f"| {framework} | {seed} | {acc:.2%} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
