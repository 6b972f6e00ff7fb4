"""Run every ``bench/bench_*.py`` in turn: ``python -m bench.run_all`` (``make bench``).

Each benchmark runs as ``python -m bench.<name>`` in its own process from the repository
root, so one benchmark's memory and threads never skew the next, and each writes its own
marked section of docs/performance.md. Arguments after ``--`` go to every benchmark;
``--only NAME`` (repeatable) picks some. Exits non-zero if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def discover() -> list[str]:
    """Module names of the benchmarks present, in name order."""
    return sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument("--only", action="append", default=[], help="e.g. bench_monitor")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- arguments for every benchmark")
    args = parser.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
        names = [name for name in names if name in args.only]
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    failed: list[str] = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        code = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *extra], cwd=REPO, check=False
        ).returncode
        print(f"== {name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
