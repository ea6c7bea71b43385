"""Ctrl-C at random moments: a soak for what the deterministic interrupt tests cannot pin down.

    python tests/reliability/interrupt_soak.py --tries 300 --seed 1

Each try starts ``python -m nnexp epochs=2`` (or, half the time, a two-job sweep) in its own
session on a store in a temporary folder, sends SIGINT to its process group after a random
delay (``--earliest`` to ``--latest`` seconds), and checks what a user would see: exit status 130
with one line starting ``nnexp: interrupted; ``, or 0 and nothing on stderr when the command had
already finished. Anything else (a traceback, another error, a death by the signal) is printed
with the delay that caused it; the exit status is the number of such tries (capped at 100).

Not part of the test suite: it is random and takes about 2 s a try. What it found became
deterministic tests in ``test_interrupts.py`` (an interrupt hidden by a library's failing
clean-up; a Ctrl-C in the interpreter's teardown).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

SWEEP = ("-m", "lr=0.1,0.01")


def one_try(workdir: str, env: dict, after: float, sweep: bool) -> str | None:
    """What went wrong when SIGINT came ``after`` seconds into the command, or None."""
    args = [*SWEEP] if sweep else []
    process = subprocess.Popen([sys.executable, "-m", "nnexp", *args, "epochs=2", "progress=false"],
                               cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    time.sleep(after)
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:   # finished and reaped already
        pass
    _, stderr = process.communicate(timeout=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    if process.returncode == 0 and not lines:
        return None
    if process.returncode == 130 and len(lines) == 1 and lines[0].startswith("nnexp: interrupted; "):
        return None
    return f"exit status {process.returncode}, stderr:\n{stderr[-3000:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--earliest", type=float, default=0.05, help="seconds (default 0.05)")
    parser.add_argument("--latest", type=float, default=2.5, help="seconds (default 2.5)")
    args = parser.parse_args()
    chance = random.Random(args.seed)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="nnexp-soak-") as workdir:
        env = {key: value for key, value in os.environ.items()
               if key not in ("MLFLOW_TRACKING_URI", "NNEXP_DEBUG", "HYDRA_FULL_ERROR")}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir}/mlflow.db"
        for number in range(1, args.tries + 1):
            after, sweep = chance.uniform(args.earliest, args.latest), chance.random() < 0.5
            problem = one_try(workdir, env, after, sweep)
            if problem:
                failed += 1
                print(f"try {number}: {'sweep' if sweep else 'run'}, SIGINT after {after:.2f} s: {problem}",
                      flush=True)
    print(f"{args.tries} tries, {failed} failed")
    return min(failed, 100)


if __name__ == "__main__":
    sys.exit(main())
