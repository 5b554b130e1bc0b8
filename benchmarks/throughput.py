"""Throughput side by side: the importer, a bare aiohttp client, a naive one-at-a-time loop.

    python benchmarks/throughput.py [--rows 20000] [--latency 0 0.05] [--concurrency 16]
                                    [--repeat 1] [--large [--large-rows 1000000]]

For each latency a sandbox (``python -m importer sandbox``) runs in its own process on
loopback, and three clients run one after the other, each as its own child process:

- importer: the real command line, ``python -m importer run FILE --mapping ... --ledger ...``,
  against the sandbox through ELOQUA_BASE_URL. Everything it does counts (reading, mapping,
  ledger with fsync'd group commits, results file), startup included;
- bare: aiohttp posting prebuilt bodies at the same concurrency (benchmarks/clients.py);
  the practical limit of this machine for this server;
- naive: one request at a time, a new connection each (fewer rows: it is slow).

Measured per client:
- rows/s: activities created / the server's measurement window (first request to last answer);
- CPU s / 1k rows: the client process's user+system time (os.wait4); for the reference clients
  only the posting part (payloads are prebuilt before the clock starts);
- mean in flight: requests in flight as the sandbox saw them, averaged over time. On machines
  whose timers wake late, this, not wall time, is what shows whether a client keeps the server
  busy: with latency the targets compare it.

Targets (issue 15; ``targets.py`` measures each of them on its own): with latency, importer
mean in flight >= 0.95x the bare client's; at zero latency, importer CPU per row and wall time
<= 2.5x the bare client's. ``--large`` adds a 1,000,000-row import at zero latency
(minutes) and reports its time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Sandbox, importer_command, run_child, sample_csv, scratch_dir

CLIENTS = Path(__file__).resolve().parent / "clients.py"


@dataclass
class Measure:
    client: str
    latency: float
    rows: int
    created: int
    rows_per_s: float
    wall: float
    cpu_per_1k: float
    mean_in_flight: float
    max_in_flight: int
    max_rss_mb: float


def measure_importer(sandbox: Sandbox, csv: Path, rows: int, concurrency: int) -> Measure:
    with scratch_dir() as scratch:
        sandbox.reset()
        run = run_child(
            importer_command(
                csv,
                scratch,
                "--concurrency",
                str(concurrency),
                "--ledger",
                str(scratch / "ledger.sqlite3"),
            ),
            env=sandbox.env(),
            cwd=ROOT,
        )
        stats = sandbox.stats()
    if run.returncode != 0:
        raise RuntimeError(f"the importer failed ({run.returncode}): {run.stderr[-2000:]}")
    return _measure("importer", sandbox, rows, stats, run.wall, run.cpu, run.max_rss_mb)


def measure_client(kind: str, sandbox: Sandbox, csv: Path, rows: int, concurrency: int) -> Measure:
    sandbox.reset()
    run = run_child(
        [
            sys.executable,
            str(CLIENTS),
            kind,
            sandbox.url,
            str(csv),
            "--rows",
            str(rows),
            "--concurrency",
            str(concurrency),
        ]
    )
    stats = sandbox.stats()
    if run.returncode != 0:
        raise RuntimeError(f"the {kind} client failed: {run.stderr[-2000:]}")
    report = json.loads(run.stdout.splitlines()[-1])
    return _measure(kind, sandbox, rows, stats, report["wall"], report["cpu"], run.max_rss_mb)


def _measure(client, sandbox, rows, stats, wall, cpu, rss) -> Measure:
    created = stats["activities_in_window"]
    window = stats["window_seconds"] or float("nan")
    return Measure(
        client=client,
        latency=sandbox.latency,
        rows=rows,
        created=created,
        rows_per_s=created / window,
        wall=wall,
        cpu_per_1k=cpu / rows * 1000,
        mean_in_flight=stats["mean_in_flight"],
        max_in_flight=stats["max_in_flight"],
        max_rss_mb=rss,
    )


def run_latency(latency: float, args: argparse.Namespace) -> list[Measure]:
    rows = args.rows if latency == 0 else min(args.rows, args.latency_rows)
    naive_rows = min(args.naive_rows, rows) if latency == 0 else min(args.naive_rows, 200)
    csv = sample_csv(rows)
    results: list[Measure] = []
    with Sandbox(latency) as sandbox:
        for _ in range(args.repeat):
            results.append(measure_importer(sandbox, csv, rows, args.concurrency))
            results.append(measure_client("bare", sandbox, csv, rows, args.concurrency))
            _progress(results[-2:])
        results.append(measure_client("naive", sandbox, csv, naive_rows, 1))
        _progress(results[-1:])
    return results


def _progress(measures: list[Measure]) -> None:
    for m in measures:
        print(
            f"  latency {m.latency:g}s {m.client:<8} {m.rows_per_s:8.0f} rows/s"
            f"  in flight {m.mean_in_flight:5.2f}  cpu {m.cpu_per_1k:.3f} s/1k",
            file=sys.stderr,
            flush=True,
        )


def median_of(measures: list[Measure], client: str, attribute: str) -> float:
    return statistics.median(getattr(m, attribute) for m in measures if m.client == client)


def table(measures: list[Measure], concurrency: int) -> str:
    lines = [
        f"| latency | client | rows | rows/s | CPU s / 1k rows | mean in flight (of {concurrency})"
        " | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.latency:g} s | {m.client} | {m.created:,} | {m.rows_per_s:,.0f}"
            f" | {m.cpu_per_1k:.3f} | {m.mean_in_flight:.2f} | {m.wall:.1f} |"
        )
    return "\n".join(lines)


def verdicts(measures: list[Measure]) -> list[str]:
    lines = []
    for latency in sorted({m.latency for m in measures}):
        here = [m for m in measures if m.latency == latency]
        if latency:
            checks = [("mean in flight", "mean_in_flight", ">=", 0.95)]
        else:
            checks = [("CPU per row", "cpu_per_1k", "<=", 2.5), ("wall", "wall", "<=", 2.5)]
        for what, attribute, sense, target in checks:
            ratio = median_of(here, "importer", attribute) / median_of(here, "bare", attribute)
            met = ratio >= target if sense == ">=" else ratio <= target
            lines.append(
                f"latency {latency:g} s: importer/bare {what} = {ratio:.2f}x"
                f" (target {sense} {target}x) {'PASS' if met else 'FAIL'}"
            )
    return lines


def run_large(args: argparse.Namespace) -> str:
    csv = sample_csv(args.large_rows)
    print(f"  large: {args.large_rows:,} rows into the sandbox ...", file=sys.stderr, flush=True)
    with Sandbox(0.0) as sandbox:
        m = measure_importer(sandbox, csv, args.large_rows, args.concurrency)
    return (
        f"large import: {m.created:,} of {m.rows:,} rows created in {m.wall:.0f} s"
        f" ({m.created / m.wall:,.0f} rows/s wall), peak RSS {m.max_rss_mb:.0f} MB,"
        f" CPU {m.cpu_per_1k:.3f} s / 1k rows, mean in flight {m.mean_in_flight:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Importer vs bare aiohttp vs a naive loop, against the sandbox."
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows at zero latency")
    parser.add_argument(
        "--latency-rows", type=int, default=3_000, help="rows when the server has latency"
    )
    parser.add_argument("--naive-rows", type=int, default=2_000, help="rows for the naive loop")
    parser.add_argument(
        "--latency", type=float, nargs="+", default=[0.0, 0.05], help="server seconds/request"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="importer/bare runs per latency")
    parser.add_argument("--large", action="store_true", help="also a 1M-row import (minutes)")
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    measures: list[Measure] = []
    for latency in args.latency:
        measures.extend(run_latency(latency, args))
    print(table(measures, args.concurrency))
    print()
    for line in verdicts(measures):
        print(line)
    if args.large:
        print(run_large(args))


if __name__ == "__main__":
    main()
