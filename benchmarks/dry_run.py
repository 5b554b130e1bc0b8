"""Dry-run speed and memory over large files: is the pipeline streaming end to end?

    python benchmarks/dry_run.py [--rows 100000 1000000]

Runs ``python -m importer run FILE --mapping mappings/attendees.yaml --dry-run --quiet`` as a
child process for each size (files are generated once and cached in the temp directory) and
reports rows/s (wall time of the whole command, startup included), CPU and the peak RSS of
that process (os.wait4). Flat memory means the peak RSS barely changes from the smallest to
the largest file. Targets (issues 6 and 15): 1,000,000 rows at 50,000+ rows/s, peak RSS under
300 MB; ``targets.py dry-run`` measures the same with credentials and a 1,000,000-entry ledger.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, importer_command, run_child, sample_csv, scratch_dir

CREDENTIAL_VARIABLES = (
    "ELOQUA_COMPANY",
    "ELOQUA_USERNAME",
    "ELOQUA_PASSWORD",
    "ELOQUA_ACCESS_TOKEN",
)


def dry_run(rows: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MB) of one dry run over ``rows`` rows."""
    csv = sample_csv(rows)
    with scratch_dir() as scratch:
        run = run_child(
            importer_command(csv, scratch, "--dry-run"),
            # Offline: no ELOQUA_* credentials, so the run reads, maps and checks only.
            env=dict.fromkeys(CREDENTIAL_VARIABLES, ""),
            cwd=ROOT,
        )
    if run.returncode != 0:
        raise RuntimeError(f"the dry run failed ({run.returncode}): {run.stderr[-2000:]}")
    if f": {rows} rows in" not in run.stdout:
        raise RuntimeError(f"the dry run did not check {rows} rows: {run.stdout[:500]}")
    return run.wall, run.cpu, run.max_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description="Dry-run rows/s and peak RSS by file size.")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    print("| rows | rows/s | CPU s | peak RSS MB |")
    print("|---:|---:|---:|---:|")
    peaks = []
    for rows in sorted(args.rows):
        wall, cpu, rss = dry_run(rows)
        peaks.append(rss)
        print(f"| {rows:,} | {rows / wall:,.0f} | {cpu:.1f} | {rss:.0f} |", flush=True)
    print()
    print(f"peak RSS grows {peaks[-1] - peaks[0]:+.0f} MB from the smallest to the largest file")


if __name__ == "__main__":
    main()
