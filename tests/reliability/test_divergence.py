"""Divergence: a learning rate far too high stops training at the first non-finite loss; the run
is FAILED with reason diverged and its curves up to that point are kept; in a sweep the other
jobs finish."""

from __future__ import annotations

import math

import pytest

from tests.reliability.helpers import EPOCH_METRICS, all_runs, client_for, history, nnexp

pytestmark = pytest.mark.slow

# Full-batch gradient descent on a linear network with lr=1 blows up after a few epochs (at the
# 9th with seed 0), so finite curves come before the first non-finite loss.
DIVERGES = ("optimizer=sgd", "model.activation=identity", "batch_size=null", "early_stopping=off",
            "epochs=50", "progress=false", "tracking.log_model=false")


def assert_diverged_with_curves_kept(client, run):
    assert run.info.status == "FAILED"
    assert run.data.tags["nnexp.stop_reason"] == "diverged"
    k = int(run.data.metrics["epochs_run"])
    assert run.data.tags["nnexp.error"] == f"diverged at epoch {k}: non-finite loss (try a smaller lr)"
    # the loss of an epoch is non-finite on its training batches, or on the validation set
    # once the last step has overflowed the weights
    losses = list(zip(*([value for _, value in history(client, run.info.run_id, key)]
                        for key in ("train_loss", "val_loss"))))
    assert len(losses) == k and 1 < k < 50
    assert all(math.isfinite(v) for pair in losses[:-1] for v in pair)  # the curves up to then...
    assert not all(math.isfinite(v) for v in losses[-1])               # ...and not one epoch after
    for key in EPOCH_METRICS:
        assert [step for step, _ in history(client, run.info.run_id, key)] == list(range(1, k + 1)), key
    # the scores are those of the best epoch before it diverged, not NaN
    assert run.data.metrics["best_epoch"] >= 1 and math.isfinite(run.data.metrics["test_loss"])


def test_diverged_run_exits_3_and_keeps_its_curves(migrated_store):
    result = nnexp(*DIVERGES, "lr=1", cwd=migrated_store)
    assert result.returncode == 3, result.stderr
    assert "(diverged)" in result.stdout and "[FAILED]" in result.stdout
    assert "Traceback" not in result.stderr
    client = client_for(migrated_store)
    (run,) = all_runs(client)
    assert_diverged_with_curves_kept(client, run)


def test_in_a_sweep_the_other_jobs_finish(migrated_store):
    """A sweep over learning rates expects some to diverge: they are counted and kept, the
    others finish, the parent is FINISHED and the exit status is 0 (a job failing with an
    error, by contrast, makes it 1)."""
    result = nnexp("-m", *DIVERGES, "lr=1,0.01,0.001", cwd=migrated_store)
    assert result.returncode == 0, result.stderr
    assert "sweep: 3 jobs: 2 finished, 1 diverged" in result.stdout
    client = client_for(migrated_store)
    runs = {r.data.params.get("lr"): r for r in all_runs(client)}
    parent = runs.pop(None)
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep_diverged"] == 1
    assert_diverged_with_curves_kept(client, runs["1"])
    for lr in ("0.01", "0.001"):
        assert runs[lr].info.status == "FINISHED"
        assert [s for s, _ in history(client, runs[lr].info.run_id, "val_loss")] == list(range(1, 51))


def test_a_loss_too_large_to_plot_still_ends_as_diverged(migrated_store):
    """lr=1e6 gives a finite loss of ~1e296 before the overflow: too large for matplotlib's log
    axis. The picture is skipped with a one-line warning; the run still ends diverged (exit 3)
    with its weights, config and curves, not as an error."""
    result = nnexp("optimizer=sgd", "model.activation=identity", "early_stopping=off", "lr=1e6",
                   "model.hidden=[8]", "epochs=2", "progress=false", "tracking.log_model=false",
                   cwd=migrated_store)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert all(line.startswith("nnexp: warning: learning_curves.png not drawn")
               for line in result.stderr.splitlines() if line.strip())
    client = client_for(migrated_store)
    (run,) = all_runs(client)
    assert run.info.status == "FAILED" and run.data.tags["nnexp.stop_reason"] == "diverged"
    assert run.data.tags["nnexp.error"].startswith("diverged at epoch 2")
    assert {"config.yaml", "weights.npz"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert [s for s, _ in history(client, run.info.run_id, "train_loss")] == [1, 2]
