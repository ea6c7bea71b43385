"""A submitit job (SLURM, submitit_local) returns when interrupted, so submitit writes the result
file its driver waits on; a joblib or Ray worker leaves at once instead (tests/sweep's
interrupt tests). The SLURM scancel scenario end to end: tests/infra/test_slurm.py."""

from __future__ import annotations

import math
import signal

import pytest

from nnexp.sweep import job
from nnexp.sweep.context import JobContext
from nnexp.sweep.signals import SweepInterrupt


@pytest.fixture
def in_a_sweep(monkeypatch):
    context = JobContext("p" * 32, "exp", "sqlite:////tmp/x.db", "/tmp", 1, "elsewhere", "/tmp", "abc")
    monkeypatch.setenv("NNEXP_SWEEP", context.encode())


def _interrupted(*args, **kwargs):
    raise SweepInterrupt(signal.SIGTERM)


def test_an_interrupted_submitit_job_returns_and_restores_the_signal_handlers(monkeypatch, in_a_sweep):
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setattr(job, "_joined_job", _interrupted)
    before = signal.getsignal(signal.SIGTERM)
    objective, report = job.run_job({}, job=3, overrides=["seed=1"], choices={}, show_progress=False)
    assert math.isinf(objective)
    assert report == "nnexp: job 3 (seed=1) killed: terminated by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_outside_submitit_the_interrupt_goes_through(monkeypatch, in_a_sweep):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.setattr(job, "_joined_job", _interrupted)
    with pytest.raises(SweepInterrupt):
        job.run_job({}, job=3, overrides=["seed=1"], choices={}, show_progress=False)


def test_a_submitit_job_turns_sigterm_into_an_interrupt_from_its_first_line(monkeypatch, in_a_sweep):
    """submitit's own handler only logs SIGTERM ("Bypassing"): ours must be in place."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    seen = {}

    def joined(*args, **kwargs):
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        return 0.0, "not reached"

    monkeypatch.setattr(job, "_joined_job", joined)
    objective, report = job.run_job({}, job=0, overrides=[], choices={}, show_progress=False)
    assert math.isinf(objective) and "killed: terminated by SIGTERM" in report
    assert callable(seen["handler"]) and seen["handler"] not in (signal.SIG_DFL, signal.SIG_IGN)
