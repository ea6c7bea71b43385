"""The learning-curve picture is drawn for every run, including one whose loss blew up."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnexp.plots import DRAWABLE_LIMIT, _drawable, learning_curves


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_a_finished_run_is_drawn_with_a_log_loss_axis(tmp_path):
    rows = [{"train_loss": 1 / e, "train_acc": 0.5, "val_loss": 1.2 / e, "val_acc": 0.5}
            for e in range(1, 11)]
    path = learning_curves(rows, tmp_path / "curves.png", best_epoch=10, title="t")
    assert _png_size(path) == (1000, 360)


@pytest.mark.parametrize("blow_up", [1e296, 1.7e308, math.inf, math.nan])
def test_a_diverging_run_near_the_float_maximum_is_still_drawn(tmp_path, blow_up):
    """matplotlib's transforms become singular for data near 1.8e308 (a diverged run's last
    finite loss can be there); such points are left out of the line instead."""
    losses = [0.7, 0.9, 3e4, blow_up]
    rows = [{"train_loss": v, "train_acc": 0.5, "val_loss": v, "val_acc": 0.5} for v in losses]
    path = learning_curves(rows, tmp_path / "curves.png", best_epoch=1)
    assert _png_size(path) == (1000, 360)


def test_drawable_values():
    assert _drawable(0.25) == 0.25
    assert _drawable(-DRAWABLE_LIMIT) == -DRAWABLE_LIMIT
    assert all(np.isnan(_drawable(v)) for v in (DRAWABLE_LIMIT * 10, math.inf, -math.inf, math.nan))
