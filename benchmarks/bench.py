#!/usr/bin/env python3
"""tumorsim benchmark: the explicit step against the copy bandwidth and its peers.

    python3 benchmarks/bench.py --small            # CPU only, well under a minute (CI)
    python3 benchmarks/bench.py --out              # full GPU suite, files in benchmarks/out/
    python3 benchmarks/bench.py --out "$OUT"       # as benchmarks/gpu_check.sh runs it

The measurements live in solver/bench/ (also behind `tumorsim bench`); this
script only parses the options, shows progress on stderr and prints the short table
last on stdout. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run from a checkout without installing: the repository root holds the `solver` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.bench import add_arguments, run_from_args
from solver.errors import BackendError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        report = run_from_args(args)
    except BackendError as exc:
        print(f"bench: {exc}; the CPU-only benchmark is `--small`", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
