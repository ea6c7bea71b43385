"""Command line for data files: ``python -m nnexp.data download mnist [--root DIR]``.

Exits 0 when the files are in place and verified, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys

from nnexp.data.mnist import IDX_SETS, download
from nnexp.errors import DataError


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m nnexp.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    get = commands.add_parser("download", help="download and verify a data set's files")
    get.add_argument("dataset", choices=sorted(IDX_SETS))
    get.add_argument("--root", help="data root (default: $NNEXP_DATA_DIR, else ./data)")
    get.add_argument(
        "--mirror", action="append", metavar="URL",
        help="base URL to download from, instead of the defaults (repeat for more)",
    )
    get.add_argument("--timeout", type=float, default=None, help="seconds before a mirror is given up")
    args = parser.parse_args(argv)

    spec = IDX_SETS[args.dataset]
    try:
        folder = download(spec, args.root, args.mirror, timeout=args.timeout)
    except DataError as e:
        print(f"nnexp.data: error: {e}", file=sys.stderr)
        return 1
    print(f"{spec.name}: {len(spec.sha256)} files verified in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
