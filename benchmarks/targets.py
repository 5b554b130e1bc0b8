"""The performance targets of issue 15, each measured side by side and printed as a ratio.

    python benchmarks/targets.py                     # all five (about 5 minutes)
    python benchmarks/targets.py cost throttle-random ...   # some of them
    python benchmarks/targets.py --repeat 5 cost      # more runs: the medians steady

Every client runs as a child process, and so does the sandbox (``common.py``):

- cost: 20,000 rows, concurrency 32, zero latency. The importer's whole process (startup,
  reading, mapping, ledger with fsync'd group commits, results file) against the bare aiohttp
  client's posting alone (benchmarks/clients.py), alternately, ``--repeat`` times each;
  medians of CPU per row and of wall time. Targets: both ratios <= 2.5.
- dry-run: a dry run with credentials (against the sandbox, lookups off) of 1,000,000 rows,
  with a ledger holding 1,000,000 entries for that site (100,000 of them the file's first
  rows, as created). Targets: >= 50,000 rows/s (the whole command), peak RSS < 300 MB.
- latency: 3,000 rows at 50 ms latency, concurrency 16: mean requests in flight as the server
  saw them, importer / bare. Target >= 0.95.
- throttle-random: 2,000 rows at 20 ms latency, concurrency 16, with 5% of the creates
  answered 429 at random, against the same without faults. Target >= 0.5.
- throttle-capacity: 2,000 rows at 20 ms latency, ``--concurrency 32``, against a server that
  answers 429 above 8 requests in flight. Targets: mean in flight within 8 +-20%, 429s on at
  most 5% of the creates.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import MAPPING, ROOT, Sandbox, importer_command, run_child, sample_csv, scratch_dir
from throughput import measure_client, measure_importer

from importer.identity import identify
from importer.ledger import ledger_site
from importer.ledger_sqlite import _connect
from importer.loader import open_table
from importer.mapping import load_mapping

Verdict = tuple[str, bool]


def verdict(text: str, ok: bool) -> Verdict:
    line = f"{text}  {'PASS' if ok else 'FAIL'}"
    print(line, flush=True)
    return line, ok


def cost(args: argparse.Namespace) -> list[Verdict]:
    rows = 20_000
    csv = sample_csv(rows)
    importer_runs, bare_runs = [], []
    with Sandbox(0.0) as sandbox:
        for _ in range(args.repeat):
            importer_runs.append(measure_importer(sandbox, csv, rows, 32))
            bare_runs.append(measure_client("bare", sandbox, csv, rows, 32))
            _note(
                f"cost: importer {importer_runs[-1].cpu_per_1k:.3f} CPU s/1k"
                f" {importer_runs[-1].wall:.1f} s wall; bare {bare_runs[-1].cpu_per_1k:.3f}"
                f" CPU s/1k {bare_runs[-1].wall:.1f} s wall"
            )
    cpu = [statistics.median(m.cpu_per_1k for m in runs) for runs in (importer_runs, bare_runs)]
    wall = [statistics.median(m.wall for m in runs) for runs in (importer_runs, bare_runs)]
    return [
        verdict(
            f"cost, CPU per row at zero latency: importer {cpu[0]:.3f} s / 1k rows, bare"
            f" {cpu[1]:.3f}: {cpu[0] / cpu[1]:.2f}x (target <= 2.5x)",
            cpu[0] / cpu[1] <= 2.5,
        ),
        verdict(
            f"cost, wall at zero latency: importer {wall[0]:.2f} s, bare {wall[1]:.2f} s:"
            f" {wall[0] / wall[1]:.2f}x (target <= 2.5x)",
            wall[0] / wall[1] <= 2.5,
        ),
    ]


def fill_ledger(path: Path, site: str, csv: Path, known: int, total: int) -> None:
    """``total`` entries for ``site``: the identities of the first ``known`` rows of ``csv``,
    created, and random others."""
    mapping = load_mapping(MAPPING)
    keys = []
    with open_table(csv) as table:
        mapping.bind(table.header, file=str(csv))
        for row in table.rows:
            if len(keys) == known:
                break
            keys.append(identify(mapping.payload(row)).key)
    keys += [os.urandom(16) for _ in range(total - known)]
    db = _connect(path, "")  # the schema, as the importer makes it; then one bulk insert
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO activities VALUES (?, ?, 'created', ?, 'bench', 'bench', 0, NULL,"
            " NULL, NULL)",
            ((site, key, str(100_000 + n)) for n, key in enumerate(keys)),
        )
        db.execute("COMMIT")
    finally:
        db.close()


def dry_run(args: argparse.Namespace) -> list[Verdict]:
    rows = args.dry_run_rows
    csv = sample_csv(rows)
    known = rows // 10
    with Sandbox(0.0) as sandbox, scratch_dir() as scratch:
        ledger = scratch / "ledger.sqlite3"
        fill_ledger(ledger, ledger_site(sandbox.url, "Sandbox"), csv, known, 1_000_000)
        _note("dry-run: ledger filled with 1,000,000 entries")
        run = run_child(
            importer_command(csv, scratch, "--dry-run", "--ledger", str(ledger)),
            env=sandbox.env(),
            cwd=ROOT,
        )
        entries = sqlite3.connect(ledger).execute("SELECT count(*) FROM activities").fetchone()
    if run.returncode != 0 or f": {rows} rows in" not in run.stdout:
        raise RuntimeError(f"the dry run failed ({run.returncode}): {run.stderr[-2000:]}")
    if f"already_created {known:>10}".split()[1] not in run.stdout:
        _note(f"dry-run: expected {known:,} already_created rows in: {run.stdout[:600]}")
    rate = rows / run.wall
    return [
        verdict(
            f"dry run with credentials, {rows:,} rows, ledger of {entries[0]:,} entries:"
            f" {rate:,.0f} rows/s (target >= 50,000)",
            rate >= 50_000,
        ),
        verdict(
            f"dry run with credentials: peak RSS {run.max_rss_mb:.0f} MB (target < 300 MB)",
            run.max_rss_mb < 300,
        ),
    ]


def latency(args: argparse.Namespace) -> list[Verdict]:
    rows = 3_000
    csv = sample_csv(rows)
    importer_runs, bare_runs = [], []
    with Sandbox(0.05) as sandbox:
        for _ in range(args.repeat):
            importer_runs.append(measure_importer(sandbox, csv, rows, 16))
            bare_runs.append(measure_client("bare", sandbox, csv, rows, 16))
    mine = statistics.median(m.mean_in_flight for m in importer_runs)
    bare = statistics.median(m.mean_in_flight for m in bare_runs)
    return [
        verdict(
            f"in flight at 50 ms latency (concurrency 16): importer {mine:.2f}, bare"
            f" {bare:.2f}: {mine / bare:.2f}x (target >= 0.95x)",
            mine / bare >= 0.95,
        )
    ]


def _importer_in_flight(options: tuple[str, ...], concurrency: int) -> tuple[float, float]:
    """(mean in flight, share of creates answered 429/503) of one 2,000-row import."""
    rows = 2_000
    csv = sample_csv(rows)
    with Sandbox(0.02, *options) as sandbox:
        measure = measure_importer(sandbox, csv, rows, concurrency)
        stats = sandbox.stats()
    posts = stats["requests"].get("activity_post", 0)
    return measure.mean_in_flight, stats["throttled"] / posts if posts else 0.0


def throttle_random(args: argparse.Namespace) -> list[Verdict]:
    clean = statistics.median(_importer_in_flight((), 16)[0] for _ in range(args.repeat))
    faulty = statistics.median(
        _importer_in_flight(("--rate-429", "0.05", "--seed", str(seed)), 16)[0]
        for seed in range(args.repeat)
    )
    return [
        verdict(
            f"5% random 429s at 20 ms (concurrency 16): mean in flight {faulty:.2f} against"
            f" {clean:.2f} fault-free: {faulty / clean:.2f}x (target >= 0.5x)",
            faulty / clean >= 0.5,
        )
    ]


def throttle_capacity(args: argparse.Namespace) -> list[Verdict]:
    runs = [_importer_in_flight(("--capacity", "8"), 32) for _ in range(args.repeat)]
    mean = statistics.median(r[0] for r in runs)
    share = statistics.median(r[1] for r in runs)
    return [
        verdict(
            f"capacity 8, --concurrency 32, 20 ms: mean in flight {mean:.2f}"
            f" ({mean / 8:.2f}x of 8; target 0.8-1.2x)",
            8 * 0.8 <= mean <= 8 * 1.2,
        ),
        verdict(
            f"capacity 8: 429s on {share:.1%} of the creates (target <= 5%)",
            share <= 0.05,
        ),
    ]


TARGETS: dict[str, Callable[[argparse.Namespace], list[Verdict]]] = {
    "cost": cost,
    "dry-run": dry_run,
    "latency": latency,
    "throttle-random": throttle_random,
    "throttle-capacity": throttle_capacity,
}


def _note(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Issue 15's performance targets, as ratios.")
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side; medians count")
    parser.add_argument("--dry-run-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    verdicts = []
    for name in args.targets or list(TARGETS):
        verdicts += TARGETS[name](args)
    print()
    for line, _ in verdicts:
        print(line)
    passed = sum(ok for _, ok in verdicts)
    print(f"{passed} of {len(verdicts)} targets met")
    sys.exit(0 if passed == len(verdicts) else 1)


if __name__ == "__main__":
    main()
