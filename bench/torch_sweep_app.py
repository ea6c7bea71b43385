"""The sweep of ``bench/sweep_ceiling.py`` written as a user would without nnexp: a Hydra app
whose task trains 784-256-256-10 ReLU with a plain PyTorch loop and logs to MLflow.

    python bench/torch_sweep_app.py -m seed=0,1,2,3,4,5,6,7 data_root=/work/shared/data
    (the store: tracking_uri, by default sqlite:///mlflow.db in the current folder)

Each job: ``mlflow.start_run``, ``log_params``, per epoch a shuffled pass of ``Adam`` steps at
batch 128, the validation loss and accuracy, ``mlflow.log_metrics`` with the epoch as step.
The images come from ``nnexp.data.load`` (the same 54,000 / 6,000 split and cached arrays as the
nnexp jobs), so data loading costs both sides the same and what differs is training, tracking
and the per-job work around them. No model is logged (nnexp's sweep logs one, for its best
child).
"""

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore


@dataclass
class Config:
    seed: int = 0
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 1
    data_root: str = "/work/shared/data"
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "torch_sweep"


ConfigStore.instance().store(name="torch_sweep", node=Config)


@hydra.main(version_base="1.3", config_name="torch_sweep")
def main(cfg: Config) -> float:
    import mlflow
    import torch

    from nnexp.data import load

    data = load("mnist", root=cfg.data_root, dtype="float32", download=False, scaling="minmax",
                val_fraction=0.1)
    X, y = torch.from_numpy(data.train[0]), torch.from_numpy(data.train[1].argmax(1))
    Xv, yv = torch.from_numpy(data.val[0]), torch.from_numpy(data.val[1].argmax(1))
    torch.manual_seed(cfg.seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=f"torch-seed{cfg.seed}"):
        mlflow.log_params({"seed": cfg.seed, "lr": cfg.lr, "batch_size": cfg.batch_size})
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order, total = torch.randperm(len(X)), 0.0
            for start in range(0, len(X), cfg.batch_size):
                rows = order[start:start + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(X[rows]), y[rows])
                loss.backward()
                opt.step()
                total += loss.item() * len(rows)
            model.eval()
            with torch.no_grad():
                out = model(Xv)
                val_loss = loss_fn(out, yv).item()
                val_acc = (out.argmax(1) == yv).float().mean().item()
            mlflow.log_metrics({"train_loss": total / len(X), "val_loss": val_loss,
                                "val_acc": val_acc}, step=epoch)
    return val_loss


if __name__ == "__main__":
    main()
