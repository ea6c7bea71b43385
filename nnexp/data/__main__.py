"""Command line for data files: ``python -m nnexp.data download mnist [--root DIR]``.

Exit status, as ``python -m nnexp``: 0 the files are in place and verified; 2 with one line on
stderr when they cannot be (a bad argument, a root that cannot hold them, no mirror serving
them intact: the same failure a run reports with 2); 1 only for an unexpected error (a bug,
with its traceback).
"""

from __future__ import annotations

import argparse
import sys

from nnexp.data.base import check_urls
from nnexp.data.mnist import IDX_SETS, download
from nnexp.errors import DataError

EXIT_BAD_INPUT = 2


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
        if args.mirror is not None:
            check_urls(spec.name, "mirrors (--mirror)", args.mirror)
        if args.timeout is not None and not args.timeout > 0:
            raise DataError(f"--timeout must be a number of seconds > 0, got {args.timeout:g}")
        folder = download(spec, args.root, args.mirror, timeout=args.timeout)
    except DataError as e:
        print(f"nnexp.data: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{spec.name}: {len(spec.sha256)} files verified in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
