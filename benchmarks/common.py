"""Shared pieces of the benchmarks: test files, the sandbox in its own process, child runs.

Every client under test runs as a child process of the benchmark, and so does the sandbox, so
no two of them share an event loop or a GIL. A child's CPU time and peak RSS come from
``os.wait4`` (that child only, not the sandbox).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "attendees.yaml"
CACHE = Path(tempfile.gettempdir()) / "eloqua-import-bench"
HEADER = "First Name,Last Name,Email,Contact ID,Company,Event,Action,Scan Time,Booth,Campaign ID\n"
CONTACT_IDS = range(2001, 2121)  # the sandbox's seeded contacts (importer/sandbox/seed.py)
ACTIONS = ("visited", "demo", "registered")
# Mid-May: no daylight-saving change within the ~6 days a million rows span.
FIRST_SCAN = dt.datetime(2026, 5, 11, 8, 0)
SANDBOX_ENV = {
    "ELOQUA_COMPANY": "Sandbox",
    "ELOQUA_USERNAME": "api.user",
    "ELOQUA_PASSWORD": "sandbox",
}


def sample_csv(rows: int) -> Path:
    """A booth-scan CSV of ``rows`` distinct, valid rows for mappings/attendees.yaml (cached)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"scans-{rows}.csv"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        contacts = len(CONTACT_IDS)
        for i in range(rows):
            contact = CONTACT_IDS[i % contacts]
            # One scan per contact per minute: every row is a different activity.
            when = FIRST_SCAN + dt.timedelta(minutes=i // contacts)
            out.write(
                f"Ana {i},Lópes,ana.{i}@example.com,{contact},Blue Harbor Logistics,"
                f"Spring Expo 2026,{ACTIONS[i % 3]},{when:%m/%d/%Y %H:%M},B{i % 40:02d},37\n"
            )
    partial.rename(path)
    return path


@dataclass
class ChildRun:
    returncode: int
    wall: float
    cpu: float  # user + system seconds of that child process
    max_rss_mb: float
    stdout: str
    stderr: str


def importer_command(
    csv: Path, scratch: Path, *options: str, python: tuple[str, ...] = ()
) -> list[str]:
    """``python [PYTHON...] -m importer run CSV`` with the attendee mapping, quiet, results in
    ``scratch``, then ``options``."""
    return [
        sys.executable,
        *python,
        "-m",
        "importer",
        "run",
        str(csv),
        "--mapping",
        str(MAPPING),
        "--quiet",
        "--results",
        str(scratch / "results.csv"),
        *options,
    ]


def run_child(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run a child to completion; its own CPU time and peak RSS, measured by wait4."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, env={**os.environ, **(env or {})}, cwd=cwd
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            returncode=process.returncode,
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            max_rss_mb=_rss_mb(usage.ru_maxrss),
            stdout=out.read(),
            stderr=err.read(),
        )


def _rss_mb(maxrss: int) -> float:
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024  # bytes vs KiB


class Sandbox:
    """``python -m importer sandbox`` on a free loopback port, in its own process."""

    def __init__(self, latency: float, *options: str) -> None:
        self.latency = latency
        self.options = options  # more `sandbox` options, e.g. ("--rate-429", "0.05")
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Sandbox:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "importer",
                "sandbox",
                "--port",
                "0",
                "--latency",
                str(self.latency),
                *self.options,
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # "Eloqua sandbox at http://127.0.0.1:PORT - ..."
        if " at http" not in line:
            self.__exit__()
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        self.url = line.split(" at ", 1)[1].split()[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()

    def reset(self) -> dict:
        return self._call("POST", "/sandbox/reset-stats")

    def stats(self) -> dict:
        return self._call("GET", "/sandbox/stats")

    def _call(self, method: str, path: str) -> dict:
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.load(answer)

    def env(self) -> dict[str, str]:
        return {**SANDBOX_ENV, "ELOQUA_BASE_URL": self.url}


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="eloqua-import-bench-") as name:
        yield Path(name)
