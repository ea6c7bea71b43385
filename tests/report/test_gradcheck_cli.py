"""mode=gradcheck through the command line: no spurious failure at ReLU kinks, the worst entry
named with both values, and a check after some epochs of training."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("at_epoch", [0, 3])
def test_spiral_gradcheck_passes_and_names_the_worst_entries(tmp_path, tracking_uri, at_epoch):
    result = run_cli("mode=gradcheck", "experiment=spiral", f"gradcheck.at_epoch={at_epoch}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout and "kink" in result.stdout
    lines = re.findall(r"^\s*(W1|b1|W2|b2) .* at \1\[[\d, ]+\]: analytic \S+, numerical \S+\s+ok$",
                       result.stdout, re.M)
    assert lines == ["W1", "b1", "W2", "b2"]
    assert ("after 3 epoch(s)" in result.stdout) == (at_epoch == 3)
