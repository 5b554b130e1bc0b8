"""Where the importer's CPU goes: the 20,000-row zero-latency run under cProfile.

    python benchmarks/profile_run.py [--rows 20000] [--concurrency 32] [--top 10]

Starts the sandbox (zero latency) in its own process, runs ``python -m cProfile -m importer
run ...`` against it as a child process and prints the top functions by own time (tottime)
and by cumulative time. cProfile slows the run down about twofold, evenly enough that the
ranking is what counts, not the seconds.
"""

from __future__ import annotations

import argparse
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Sandbox, importer_command, run_child, sample_csv, scratch_dir


def profile(rows: int, concurrency: int, top: int) -> None:
    csv = sample_csv(rows)
    with Sandbox(0.0) as sandbox, scratch_dir() as scratch:
        stats_path = scratch / "importer.prof"
        run = run_child(
            importer_command(
                csv,
                scratch,
                "--concurrency",
                str(concurrency),
                "--ledger",
                str(scratch / "ledger.sqlite3"),
                python=("-m", "cProfile", "-o", str(stats_path)),
            ),
            env=sandbox.env(),
            cwd=ROOT,
        )
        if run.returncode != 0:
            raise RuntimeError(f"the importer failed ({run.returncode}): {run.stderr[-2000:]}")
        stats = pstats.Stats(str(stats_path))
        print(f"{rows:,} rows, concurrency {concurrency}: {run.cpu:.1f} CPU s under cProfile")
        for key in ("tottime", "cumulative"):
            print(f"\n--- top {top} by {key} ---")
            stats.sort_stats(key).print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description="cProfile the zero-latency import.")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    profile(args.rows, args.concurrency, args.top)


if __name__ == "__main__":
    main()
