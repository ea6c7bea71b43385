"""Interrupts: SIGINT, SIGTERM and SIGHUP end the run as KILLED at once with every epoch logged so far;
a SIGKILLed run's RUNNING record is marked FAILED by the next invocation or by
``python -m nnexp.tracking cleanup``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.infra.services import answers_health, free_port, wait_until
from tests.reliability.helpers import (
    EPOCH_METRICS, LONG_RUN, QUICK, all_runs, client_for, group_members, history, isolated_env,
    model_helper_pids, stderr_lines, wait_for_epochs,
)

pytestmark = pytest.mark.slow

# How long after the signal the process may take to exit (it takes about 0.1 s).
EXIT_WITHIN = 2.0


def start_long_run(workdir):
    return subprocess.Popen([sys.executable, "-m", "nnexp", *LONG_RUN], cwd=workdir,
                            env=isolated_env(workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def interrupt(process, signum, times=1, gap=0.0) -> tuple[float, str]:
    """Send ``signum`` ``times`` times; returns the seconds from the first signal to the exit,
    and what the process wrote on stderr."""
    sent = time.monotonic()
    for _ in range(times):
        process.send_signal(signum)
        time.sleep(gap)
    process.wait(timeout=60)
    seconds = time.monotonic() - sent
    _, stderr = process.communicate()
    return seconds, stderr


def assert_killed_with_every_epoch(workdir, logged_before: int, reason: str):
    client = client_for(workdir)
    (run,) = all_runs(client)
    assert run.info.status == "KILLED"
    assert run.data.tags["nnexp.stop_reason"] == "killed"
    assert reason in run.data.tags["nnexp.error"]
    steps = {key: [step for step, _ in history(client, run.info.run_id, key)] for key in EPOCH_METRICS}
    k = len(steps["train_loss"])
    assert k >= max(1, logged_before)
    for key, logged in steps.items():
        assert logged == list(range(1, k + 1)), key   # every epoch, once, none missing


@pytest.mark.parametrize(("signum", "status", "reason", "message"), [
    (signal.SIGINT, 130, "interrupted by SIGINT", "nnexp: interrupted;"),
    (signal.SIGTERM, 143, "terminated by SIGTERM", "nnexp: terminated by SIGTERM;"),
    (signal.SIGHUP, 129, "hung up (SIGHUP", "nnexp: hung up (SIGHUP: the terminal or session closed);"),
], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_training_kills_the_run_at_once(migrated_store, signum, status, reason, message):
    process = start_long_run(migrated_store)
    logged = wait_for_epochs(migrated_store / "mlruns" / "mlflow.db", process)
    seconds, stderr = interrupt(process, signum)
    assert process.returncode == status, stderr
    assert seconds < EXIT_WITHIN, seconds
    assert stderr_lines(stderr) == [
        f"{message} the run was ended as KILLED with every epoch logged so far"]
    assert_killed_with_every_epoch(migrated_store, logged, reason)


def test_ctrl_c_while_the_data_loads_says_no_run_was_created(migrated_store):
    """Before the run exists (a large spiral set takes seconds to make) there is nothing to end:
    the message must not claim a KILLED run, and the store is left as it was."""
    before = (migrated_store / "mlruns" / "mlflow.db").read_bytes()
    process = subprocess.Popen([sys.executable, "-m", "nnexp", "data=spiral", "data.n_per_class=1000000", *QUICK],
                               cwd=migrated_store, env=isolated_env(migrated_store), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # Hydra writes the job's config just before calling nnexp, which then makes the data (~4 s)
    deadline = time.monotonic() + 120
    while not list(migrated_store.glob("outputs/*/*/.hydra/overrides.yaml")):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.02)
    time.sleep(0.5)
    _, stderr = interrupt(process, signal.SIGINT)
    assert process.returncode == 130, stderr
    assert stderr_lines(stderr) == [
        "nnexp: interrupted; no run had been created yet, so nothing was recorded"]
    assert (migrated_store / "mlruns" / "mlflow.db").read_bytes() == before
    assert all_runs(client_for(migrated_store)) == []


@pytest.mark.parametrize("after", [0.1, 0.25, 0.4])
def test_ctrl_c_during_start_up_says_so_in_one_line(migrated_store, after):
    """A Ctrl-C (SIGINT to the process group) while Python imports nnexp and Hydra starts (the
    first 0.3-0.6 s of a sweep) gave a traceback from whatever was importing, and the model
    helper that ``-m`` starts printed its own. Now: one line, exit 130, no helper left."""
    process = subprocess.Popen([sys.executable, "-m", "nnexp", "-m", "lr=0.1,0.01", *QUICK], cwd=migrated_store,
                               env=isolated_env(migrated_store), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    time.sleep(after)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = stderr_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("nnexp: interrupted; "), stderr
    deadline = time.monotonic() + 5
    while model_helper_pids(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model_helper_pids(process.pid) == []


# A Ctrl-C arriving inside a library's try/finally, whose clean-up then fails on the state the
# interrupt left half-built: what OmegaConf's flag_override did in CI when the signal came 0.4 s
# into a sweep (an AttributeError, wrapped by Hydra in ConfigCompositionException).
_MASKED_INTERRUPT = """
import {module} as target

def cut_short(*args, **kwargs):
    try:
        raise KeyboardInterrupt
    finally:
        if {hide}:
            None._invalidate_flags_cache()   # the clean-up fails: AttributeError hides the interrupt

setattr({owner}, {name!r}, cut_short)
"""


def _nnexp_after(workdir, prelude: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m nnexp *args QUICK`` in ``workdir``, in an interpreter that runs ``prelude``
    (code that patches what the test interrupts) first."""
    code = f"{prelude}\nimport runpy, sys\nsys.argv = ['nnexp', *{[*args, *QUICK]!r}]\n" \
           "runpy.run_module('nnexp', run_name='__main__', alter_sys=True)\n"
    return subprocess.run([sys.executable, "-c", code], cwd=workdir, env=isolated_env(workdir),
                          capture_output=True, text=True, timeout=300)


def _nnexp_with_masked_interrupt(workdir, module: str, owner: str, name: str, *args: str, hide: bool = True):
    """``python -m nnexp *args`` whose ``owner.name`` (in ``module``) is interrupted as it is
    called; the interrupt is hidden behind a failing clean-up unless ``hide`` is false."""
    return _nnexp_after(workdir, _MASKED_INTERRUPT.format(module=module, owner=owner, name=name, hide=hide), *args)


COMPOSING = ("hydra._internal.config_loader_impl", "target.ConfigLoaderImpl", "_load_configuration_impl")
CHECKING_THE_SWEEP = ("nnexp.sweep.preflight", "target", "check_sweep_composes")


@pytest.mark.parametrize("where, args", [(COMPOSING, ()), (COMPOSING, ("-m", "lr=0.1,0.01")),
                                         (CHECKING_THE_SWEEP, ("-m", "lr=0.1,0.01"))],
                         ids=["run-composing", "sweep-composing", "sweep-checking-its-jobs"])
def test_an_interrupt_hidden_by_a_failing_clean_up_during_composition_is_still_an_interrupt(
        migrated_store, where, args):
    """Was: ``nnexp: error (AttributeError): 'NoneType' object has no attribute
    '_invalidate_flags_cache'``, exit 1, for a Ctrl-C during Hydra's composition, or while the
    sweep's callback composed its jobs to check them (the callback re-raised the error, and the
    re-raise replaced the context that named the interrupt)."""
    before = (migrated_store / "mlruns" / "mlflow.db").read_bytes()
    result = _nnexp_with_masked_interrupt(migrated_store, *where, *args)
    assert result.returncode == 130, result.stderr
    assert stderr_lines(result.stderr) == [
        "nnexp: interrupted; no run had been created yet, so nothing was recorded"]
    assert (migrated_store / "mlruns" / "mlflow.db").read_bytes() == before


def test_an_interrupt_hidden_by_a_failing_clean_up_in_a_run_ends_it_killed(migrated_store):
    """Inside a run the same hidden interrupt ended the run FAILED with the clean-up's error."""
    result = _nnexp_with_masked_interrupt(migrated_store, "nnexp.app", "target", "final_metrics")
    assert result.returncode == 130, result.stderr
    assert stderr_lines(result.stderr) == [
        "nnexp: interrupted; the run was ended as KILLED with every epoch logged so far"]
    (run,) = all_runs(client_for(migrated_store))
    assert run.info.status == "KILLED"
    assert run.data.tags["nnexp.stop_reason"] == "killed"


DRAWING = ("nnexp.plots", "target", "learning_curves")


def test_an_interrupt_hidden_while_a_figure_is_drawn_ends_the_run_killed(migrated_store):
    """A figure that cannot be drawn is a warning and the run ends as it would have; a Ctrl-C
    that arrived while one was drawn, hidden in an error (Python wraps an error in
    ``__set_name__`` in a RuntimeError: seen while matplotlib imported Pillow), was taken for
    such a figure: one warning line, and the run FINISHED with exit status 0."""
    result = _nnexp_with_masked_interrupt(migrated_store, *DRAWING)
    assert result.returncode == 130, result.stderr
    assert stderr_lines(result.stderr) == [
        "nnexp: interrupted; the run was ended as KILLED with every epoch logged so far"]
    (run,) = all_runs(client_for(migrated_store))
    assert run.info.status == "KILLED"


@pytest.mark.parametrize("hide", [True, False], ids=["hidden", "plain"])
def test_an_interrupt_while_a_sweeps_summary_draws_ends_the_sweep_killed(migrated_store, hide):
    """The sweep draws its best child's figures at the end. A Ctrl-C there, hidden, was taken
    for a figure that cannot be drawn (a warning, the parent FINISHED, exit 0); a plain one
    ended the parent FAILED ("summary failed: KeyboardInterrupt") and the line said no run had
    been created. Now: the parent KILLED (its children had FINISHED), exit 130."""
    result = _nnexp_with_masked_interrupt(migrated_store, *DRAWING, "-m", "lr=0.1,0.01", hide=hide)
    assert result.returncode == 130, result.stderr
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("nnexp: interrupted; the sweep's parent"), result.stderr
    runs = all_runs(client_for(migrated_store))
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert sorted(child.info.status for child in children) == ["FINISHED", "FINISHED"]


# A real signal to the process while a figure is drawn; ``swallow`` catches what it raises, as
# matplotlib's import did when the interrupt came as the RuntimeError of an error in
# __set_name__, and as Python does with an interrupt in a weakref callback (both seen by the
# soak, tests/reliability/interrupt_soak.py).
_SIGNAL_WHILE_DRAWING = """
import os, signal, time
import nnexp.plots

def signalled(*args, **kwargs):
    try:
        os.kill(os.getpid(), {signum})
        time.sleep(2)   # delivered here
    except BaseException:
        if not {swallow}:
            raise

nnexp.plots.learning_curves = signalled
"""


@pytest.mark.parametrize("args", [(), ("-m", "lr=0.1,0.01")], ids=["run", "sweep"])
def test_a_ctrl_c_that_a_library_swallows_still_ends_the_run_killed(migrated_store, args):
    """Was: the run (or the sweep's parent) FINISHED, exit 0, as if nobody had pressed Ctrl-C."""
    result = _nnexp_after(migrated_store, _SIGNAL_WHILE_DRAWING.format(signum=int(signal.SIGINT), swallow=True),
                          *args)
    assert result.returncode == 130, result.stderr
    lines = stderr_lines(result.stderr)
    told = "the sweep's parent and its started runs were" if args else "the run was"
    assert lines == [f"nnexp: interrupted; {told} ended as KILLED with every epoch logged so far"], result.stderr
    runs = all_runs(client_for(migrated_store))
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [parent.info.status for parent in parents] == ["KILLED"]


@pytest.mark.parametrize("signum, status, message", [
    (signal.SIGTERM, 143, "nnexp: terminated by SIGTERM;"),
    (signal.SIGHUP, 129, "nnexp: hung up (SIGHUP: the terminal or session closed);"),
], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_while_a_sweep_draws_its_summary_ends_the_parent_killed(migrated_store, signum, status, message):
    """The sweep took its signal handlers down before its summary, so a SIGTERM there (a
    scheduler's) killed the process at once and left the parent RUNNING."""
    result = _nnexp_after(migrated_store, _SIGNAL_WHILE_DRAWING.format(signum=int(signum), swallow=False),
                          "-m", "lr=0.1,0.01")
    assert result.returncode == status, result.stderr
    lines = stderr_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"{message} the sweep's parent"), result.stderr
    runs = all_runs(client_for(migrated_store))
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert sorted(run.info.status for run in runs if run not in parents) == ["FINISHED", "FINISHED"]


def test_repeated_ctrl_c_still_ends_the_run(migrated_store):
    """People press Ctrl-C more than once: the later ones arrive while the run is being closed
    and must not leave it RUNNING."""
    process = start_long_run(migrated_store)
    logged = wait_for_epochs(migrated_store / "mlruns" / "mlflow.db", process)
    seconds, stderr = interrupt(process, signal.SIGINT, times=20, gap=0.01)
    assert process.returncode == 130, stderr
    assert seconds < EXIT_WITHIN
    assert_killed_with_every_epoch(migrated_store, logged, "interrupted by SIGINT")


def test_sigkilled_run_is_marked_failed_by_the_next_invocation(migrated_store):
    process = start_long_run(migrated_store)
    wait_for_epochs(migrated_store / "mlruns" / "mlflow.db", process)
    process.kill()
    process.communicate(timeout=30)
    client = client_for(migrated_store)
    (killed,) = all_runs(client)
    assert killed.info.status == "RUNNING"   # nobody could close it
    steps_before = history(client, killed.info.run_id, "train_loss")

    # the next run in the same experiment (spiral) notices that its process is gone
    result = subprocess.run([sys.executable, "-m", "nnexp", "data=spiral", *QUICK], cwd=migrated_store,
                            env=isolated_env(migrated_store), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    stale = client.get_run(killed.info.run_id)
    assert stale.info.status == "FAILED"
    assert f"process {process.pid} on {socket.gethostname()} ended without closing the run" in \
        stale.data.tags["nnexp.error"]
    assert history(client, killed.info.run_id, "train_loss") == steps_before  # its curves kept
    assert sorted(r.info.status for r in all_runs(client)) == ["FAILED", "FINISHED"]


def test_cleanup_command_marks_stale_runs_of_every_experiment(migrated_store):
    """``python -m nnexp.tracking cleanup``: RUNNING runs whose process on this host is gone
    become FAILED, in every experiment; live processes and other hosts' runs are left alone."""
    from mlflow.tracking import MlflowClient

    from nnexp.tracking.store import TAG_HOST, TAG_PID

    uri = f"sqlite:///{migrated_store / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    made = {}
    for experiment in ("spiral", "mnist"):
        experiment_id = client.create_experiment(experiment)
        for name, pid, host in (("dead", dead.pid, here), ("alive", os.getpid(), here),
                                ("elsewhere", dead.pid, "another-host")):
            run = client.create_run(experiment_id, run_name=f"{experiment}-{name}",
                                    tags={TAG_PID: str(pid), TAG_HOST: host})
            made[run.info.run_name] = run.info.run_id

    env = isolated_env(migrated_store, MLFLOW_TRACKING_URI=uri)
    result = subprocess.run([sys.executable, "-m", "nnexp.tracking", "cleanup"], cwd=migrated_store,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = {name: client.get_run(run_id).info.status for name, run_id in made.items()}
    assert status == {"spiral-dead": "FAILED", "spiral-alive": "RUNNING", "spiral-elsewhere": "RUNNING",
                      "mnist-dead": "FAILED", "mnist-alive": "RUNNING", "mnist-elsewhere": "RUNNING"}
    assert "marked 2 stale runs FAILED" in result.stdout
    for name in ("spiral-dead", "mnist-dead"):
        assert made[name] in result.stdout

    again = subprocess.run([sys.executable, "-m", "nnexp.tracking", "cleanup"], cwd=migrated_store,
                           env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "no stale runs" in again.stdout


# -- python -m nnexp.ui ---------------------------------------------------------------------------

def _start_ui(workdir) -> subprocess.Popen:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "nnexp.ui", "--port", str(port)], cwd=workdir,
                               env=isolated_env(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    process.port = port
    return process


def _stop_group(process: subprocess.Popen) -> None:
    """Whatever the test left of the UI's process group, by the group's id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


@pytest.mark.parametrize("after", [0.2, 0.6, 1.2])
def test_ctrl_c_while_the_ui_starts_says_so_in_one_line(migrated_store, after):
    """MLflow's server takes 2-4 s to import and start; a Ctrl-C meanwhile printed the import
    under way as a 30-45 line traceback (and the process died of the signal)."""
    ui = _start_ui(migrated_store)
    try:
        time.sleep(after)
        os.killpg(ui.pid, signal.SIGINT)
        _, stderr = ui.communicate(timeout=60)
        assert ui.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert stderr_lines(stderr)[-1] == (
            "nnexp.ui: interrupted while the MLflow UI was starting; nothing was served")
        assert group_members(ui.pid) == []
    finally:
        _stop_group(ui)


def test_ctrl_c_to_the_serving_ui_stops_its_server_too(migrated_store):
    """Once the server answers, a SIGINT to the command's own process (``kill -INT <pid>``, not
    the group) reaches the server through MLflow's forwarding: it shuts down and none of the
    command's processes is left behind."""
    ui = _start_ui(migrated_store)
    try:
        wait_until(lambda: answers_health(f"http://127.0.0.1:{ui.port}"), 90, "nnexp.ui", ui)
        os.kill(ui.pid, signal.SIGINT)
        _, stderr = ui.communicate(timeout=60)
        assert ui.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert group_members(ui.pid) == []
    finally:
        _stop_group(ui)


# -- the last milliseconds -------------------------------------------------------------------------

# A SIGINT in the interpreter's last garbage collection, after Python has put the signals' default
# actions back: garbage with a finalizer, left by the last exit hook to run (the first registered,
# so after nnexp's gc.freeze, which would otherwise keep it from being collected).
_SIGNAL_IN_TEARDOWN = """
import atexit, os, signal

class SignalInTeardown:
    # bound now: the module's globals may be gone by the time this runs
    def __del__(self, kill=os.kill, pid=os.getpid(), sigint=signal.SIGINT):
        kill(pid, sigint)

def leave_garbage():
    cycle = SignalInTeardown()
    cycle.itself = cycle   # unreachable only by a collection: the teardown's

atexit.register(leave_garbage)
"""


@pytest.mark.parametrize("args", [(), ("-m", "lr=0.1,0.01")], ids=["run", "sweep"])
def test_a_ctrl_c_in_the_interpreters_teardown_changes_nothing(migrated_store, args):
    """A Ctrl-C in the last milliseconds, once everything was recorded, killed the process by
    the signal (status -2 to its parent, no line said why); found by interrupting runs and sweeps
    at random times (2 of 300). Now the command ends as it would have."""
    result = _nnexp_after(migrated_store, _SIGNAL_IN_TEARDOWN, *args)
    assert result.returncode == 0, result.stderr
    runs = all_runs(client_for(migrated_store))
    assert runs and {run.info.status for run in runs} == {"FINISHED"}
