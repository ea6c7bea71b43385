"""The sweep disconnects from Ray itself once it is summarised (nnexp.sweep.callback._leave_ray),
instead of leaving it to Ray's exit hook, which sleeps 0.5 s first."""

from __future__ import annotations

import sys
import time
import types

from nnexp.sweep import callback


def fake_ray(monkeypatch, initialized: bool) -> list[str]:
    calls: list[str] = []
    ray = types.SimpleNamespace(is_initialized=lambda: initialized, shutdown=lambda: calls.append("shutdown"))
    monkeypatch.setitem(sys.modules, "ray", ray)
    return calls


def test_a_connected_driver_disconnects_without_the_exit_hooks_sleep(monkeypatch):
    calls = fake_ray(monkeypatch, initialized=True)
    slept: list[float] = []
    monkeypatch.setattr(callback.time, "sleep", slept.append)
    callback._leave_ray(jobs_returned=time.monotonic() - 2.0)   # the summary took 2 s
    assert calls == ["shutdown"] and slept == [0.0]


def test_log_lines_still_get_their_half_second_after_a_quick_summary(monkeypatch):
    calls = fake_ray(monkeypatch, initialized=True)
    slept: list[float] = []
    monkeypatch.setattr(callback.time, "sleep", slept.append)
    callback._leave_ray(jobs_returned=time.monotonic())
    assert calls == ["shutdown"] and 0.4 < slept[0] <= callback.RAY_LOG_GRACE_SECONDS


def test_nothing_happens_without_ray(monkeypatch):
    calls = fake_ray(monkeypatch, initialized=False)
    callback._leave_ray(jobs_returned=0.0)
    assert calls == []
    monkeypatch.delitem(sys.modules, "ray")
    callback._leave_ray(jobs_returned=0.0)   # never imported: no import, no error
    assert "ray" not in sys.modules
