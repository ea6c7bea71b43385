"""Where an nnexp training epoch spends its time, from py-spy's native stack samples.

    python bench/profile_nnexp.py --workload b --optimizer adam          # one thread, float32
    python bench/profile_nnexp.py --workload a --optimizer sgd --epochs 2

Runs ``fit`` on the benchmark's random MNIST-shaped data under ``py-spy record --native``
(``pip install py-spy``; it needs permission to ptrace its child, which root has) with every
BLAS thread variable pinned, and classifies each sample by what its innermost frames are
doing:

- ``matmul (BLAS)``: inside the BLAS library (OpenBLAS gemm kernels and their copies);
- ``numpy loops``: inside NumPy's compiled inner loops (ufuncs, take, reductions, casts) or
  libc's memory copies;
- ``numpy call overhead``: inside NumPy's C code but not in a loop -- argument parsing, dtype
  resolution, buffer and iterator set-up, the array-function dispatch;
- ``python``: the interpreter running nnexp's Python (or anything else);
and attributes it to the nnexp.core function nearest the leaf (``_forward``, ``Adam._update``,
...). The table gives, per function and category, the share of the training samples (imports
and data generation are left out).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import markdown_table, pinned_env  # noqa: E402
from _workloads import WORKLOADS  # noqa: E402

TRAIN = """
import sys
sys.path.insert(0, {bench!r})
from _workloads import WORKLOADS, nnexp_model, one_hot, random_mnist
from nnexp.core import fit
w = WORKLOADS[{workload!r}]
X, labels = random_mnist({samples}, {dtype!r})
Y = one_hot(labels, {dtype!r})
net, opt = nnexp_model(w, {optimizer!r}, {dtype!r})
fit(net, opt, (X[:2000], Y[:2000]), epochs=1, batch_size=w.batch_size)   # warm-up
fit(net, opt, (X, Y), val=None, epochs={epochs}, batch_size=w.batch_size)
"""

FRAME = re.compile(r"^(?P<name>.*?) \((?P<where>[^()]*)\)$")
# a NumPy inner loop or a memory copy: the work itself, as opposed to the set-up around it
LOOP = re.compile(r"^(HALF|FLOAT|DOUBLE|LONGDOUBLE|BOOL|U?BYTE|U?SHORT|U?INT|U?LONG|U?LONGLONG)_"
                  r"|take|mem(cpy|move|set)|_contig|cast|simd|reduce_loop|npyv|aligned", re.I)
CATEGORIES = ["matmul (BLAS)", "numpy loops", "numpy call overhead", "python"]


def _is_python(where: str) -> bool:
    return ".py:" in where or where.startswith("<")


def classify(frames: list[str]) -> tuple[str, str]:
    """(nnexp.core function nearest the leaf, category) for one stack, root first; samples
    outside ``fit`` belong to "(outside nnexp.core)"."""
    parsed = [m for m in map(FRAME.match, frames) if m]
    in_fit = any(m["name"] == "fit" and "nnexp/core/fit.py" in m["where"] for m in parsed)
    owner = next((m["name"] for m in reversed(parsed) if "nnexp/core/" in m["where"]), None)
    owner = owner if in_fit else "(outside nnexp.core)"
    if not parsed or _is_python(parsed[-1]["where"]):
        return owner, "python"
    native = []
    for m in reversed(parsed):                   # the native frames below the last Python one
        if _is_python(m["where"]):
            break
        native.append(m)
    if any(re.search(r"openblas|gemm|mkl", m["name"] + m["where"], re.I) for m in native):
        return owner, "matmul (BLAS)"
    # unresolved addresses in libc are its memcpy/memmove/memset: data movement, like a loop
    if LOOP.search(native[0]["name"]) or native[0]["where"].startswith("libc"):
        return owner, "numpy loops"
    if "libpython" in native[0]["where"]:
        return owner, "python"
    return owner, "numpy call overhead"


def profile(workload: str, optimizer: str, dtype: str, epochs: int, samples: int,
            rate: int) -> Counter:
    code = TRAIN.format(bench=str(Path(__file__).resolve().parent), workload=workload,
                        optimizer=optimizer, dtype=dtype, epochs=epochs, samples=samples)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stacks.txt"
        cmd = ["py-spy", "record", "--native", "--rate", str(rate), "--format", "raw",
               "--output", str(out), "--", sys.executable, "-c", code]
        subprocess.run(cmd, env=pinned_env(1), check=True, capture_output=True)
        tally = Counter()
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            tally[classify(stack.split(";"))] += int(count)
    return tally


def report(tally: Counter) -> str:
    """Shares of the training samples (those under ``fit``) per function and
    category; the samples outside (imports, data generation) are left out."""
    training = Counter({k: n for k, n in tally.items() if k[0] != "(outside nnexp.core)"})
    total = sum(training.values()) or 1
    owners = Counter()
    for (owner, _), n in training.items():
        owners[owner] += n
    rows = [[owner, f"{100 * n / total:.1f}%",
             *(f"{100 * training[(owner, c)] / total:.1f}%" for c in CATEGORIES)]
            for owner, n in owners.most_common()]
    rows.append(["**all**", "100%", *(
        f"{100 * sum(n for (_, c), n in training.items() if c == cat) / total:.1f}%"
        for cat in CATEGORIES)])
    return markdown_table(["nnexp.core function (innermost)", "share", *CATEGORIES], rows, "lrrrrr")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", default="a", choices=sorted(WORKLOADS))
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--samples", type=int, default=60_000)
    p.add_argument("--rate", type=int, default=250, help="samples per second")
    args = p.parse_args(argv)
    tally = profile(args.workload, args.optimizer, args.dtype, args.epochs, args.samples, args.rate)
    inside = sum(n for k, n in tally.items() if k[0] != "(outside nnexp.core)")
    print(f"py-spy --native at {args.rate} Hz, workload ({args.workload}) {args.optimizer} "
          f"{args.dtype}, 1 thread: {inside} samples in training (of {sum(tally.values())})\n")
    print(report(tally))


if __name__ == "__main__":
    main()
