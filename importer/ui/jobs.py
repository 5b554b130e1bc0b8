"""Checks and imports started from the page: asyncio tasks of the server, not of a browser tab.

A job calls the library API (``importer.import_file_async``) and keeps what the page shows:
counts, progress, the rows' outcomes, the summary. Closing the tab changes nothing; the page
finds running and recent jobs again through ``JobBoard``.

Invariants: at most one job per file (same bytes) at a time, so two tabs cannot race the same
rows; every job writes the CLI's results and errors files in a folder of its own, with a
``job.json`` that lists it among the recent imports after a restart; the ledger is the CLI's
(default or given), so a page and a command line never create the same activity twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import importer
from importer.config import Connection
from importer.errors import ImporterError
from importer.ledger import LedgerLocation
from importer.report import shell_quote

#: Outcomes kept per job for the page's table (the files hold all of them).
MAX_ROWS_SHOWN = 5000
RECENT_JOBS = 20


@dataclass
class Upload:
    """A file the page sent: stored under a name the server chose, never the browser's."""

    id: str
    name: str  # as the person's computer called it: shown, never used as a path
    path: Path
    size: int
    digest: str


@dataclass
class Job:
    id: str
    kind: str  # "check" or "import"
    upload: Upload
    folder: Path
    mapping_name: str
    sheet: str | int | None
    header_row: int | None
    sandbox: bool
    hints: dict[str, Any] = field(default_factory=dict)  # the mapping's source: section
    state: str = "running"  # running, stopping, finished, failed
    done: int = 0
    total: int | None = None
    counts: Counter[str] = field(default_factory=Counter)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    summary: str = ""
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    has_errors_file: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def results_path(self) -> Path:
        return self.folder / "results.csv"

    @property
    def errors_path(self) -> Path:
        return self.folder / "errors.csv"

    def touch(self) -> None:
        self.changed.set()

    def snapshot(self) -> dict[str, Any]:
        """What the page shows (rows apart: they are sent by offset)."""
        elapsed = (self.finished or time.time()) - self.started
        return {
            "id": self.id,
            "kind": self.kind,
            "file": self.upload.name,
            "upload": self.upload.id,
            "mapping": self.mapping_name,
            "sandbox": self.sandbox,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "counts": dict(self.counts),
            "notices": self.notices[-5:],
            "summary": self.summary,
            "error": self.error,
            "elapsed": round(elapsed, 1),
            "started": dt.datetime.fromtimestamp(self.started).isoformat(timespec="seconds"),
            "rows_total": len(self.rows),
            "errors_file": self.has_errors_file,
            "command": self.command(),
        }

    def command(self) -> str:
        """The command line that reruns this import (rows created already are not sent)."""
        words = ["eloqua-import", "run", self.upload.name, "--mapping", self.mapping_name]
        # Only what the page chose differently from the mapping's own source: section.
        if self.sheet is not None and self.sheet != self.hints.get("sheet"):
            words += ["--sheet", str(self.sheet)]
        if self.header_row is not None and self.header_row != self.hints.get("header_row", 1):
            words += ["--header-row", str(self.header_row)]
        if self.kind == "check":
            words.append("--dry-run")
        if self.sandbox:
            words.append("--sandbox")
        return " ".join(shell_quote(word) for word in words)


class Busy(Exception):
    """A job for the same file is running."""


class JobBoard:
    """The jobs of this server, and the recent ones of earlier launches (from their folders)."""

    def __init__(
        self, folder: Path, connection: Connection, ledger: LedgerLocation | None, sandbox: bool
    ):
        self.folder = folder
        self.connection = connection
        self.ledger = ledger
        self.sandbox = sandbox
        self.jobs: dict[str, Job] = {}

    def start(
        self,
        kind: str,
        upload: Upload,
        document: dict[str, Any],
        mapping_name: str,
        sheet: str | int | None,
        header_row: int | None,
    ) -> Job:
        for job in self.jobs.values():
            if job.upload.digest == upload.digest and job.state in ("running", "stopping"):
                raise Busy(f"a {job.kind} of {job.upload.name} is running; wait for it or stop it")
        job_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
        folder = self.folder / job_id
        folder.mkdir(parents=True, mode=0o700)
        job = Job(job_id, kind, upload, folder, mapping_name, sheet, header_row, self.sandbox)
        source = document.get("source")
        job.hints = source if isinstance(source, dict) else {}
        self.jobs[job_id] = job
        self._save(job)
        job.task = asyncio.create_task(self._run(job, document))
        return job

    async def _run(self, job: Job, document: dict[str, Any]) -> None:
        try:
            result = await importer.import_file_async(
                job.upload.path,
                mapping=document,
                sheet=job.sheet,
                header_row=job.header_row,
                dry_run=job.kind == "check",
                connection=self.connection,
                ledger=self.ledger,
                results=job.results_path,
                errors=job.errors_path,
                collect=False,
                on_outcome=lambda outcome: self._outcome(job, outcome),
                on_progress=lambda done, total: self._progress(job, done, total),
                on_notice=lambda text: self._notice(job, text),
                stop=job.stop,
            )
        except ImporterError as exc:
            job.error = str(exc)
            job.state = "failed"
        except Exception as exc:  # a bug: say so on the page rather than leave it spinning
            job.error = f"unexpected error: {type(exc).__name__}: {exc}"
            job.state = "failed"
        else:
            job.summary = result.summary.render().replace(str(job.upload.path), job.upload.name)
            job.counts = Counter(result.counts)
            job.has_errors_file = result.errors_path is not None
            job.state = "finished"
        job.finished = time.time()
        self._save(job)
        job.touch()

    def _outcome(self, job: Job, outcome: importer.RecordOutcome) -> None:
        job.counts[outcome.status] += 1
        if len(job.rows) < MAX_ROWS_SHOWN:
            job.rows.append(
                {
                    "row": outcome.row,
                    "status": outcome.status,
                    "activity_id": outcome.activity_id,
                    "error": outcome.error,
                    "record": {str(k): _text(v) for k, v in (outcome.record or {}).items()},
                }
            )
        job.touch()

    def _progress(self, job: Job, done: int, total: int | None) -> None:
        job.done, job.total = done, total
        job.touch()

    def _notice(self, job: Job, text: str) -> None:
        job.notices.append(text)
        job.touch()

    def stop(self, job: Job) -> None:
        if job.state == "running":
            job.state = "stopping"
            job.stop.set()
            job.touch()

    def _save(self, job: Job) -> None:
        record = job.snapshot()
        with contextlib.suppress(OSError):  # the list of recent jobs is a convenience
            (job.folder / "job.json").write_text(json.dumps(record), encoding="utf-8")

    def recent(self) -> list[dict[str, Any]]:
        """This launch's jobs and those of earlier launches, newest first."""
        found: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                path = Path(entry.path) / "job.json"
                with contextlib.suppress(OSError, ValueError):
                    record = json.loads(path.read_text(encoding="utf-8"))
                    if record.get("state") in ("running", "stopping"):
                        record["state"] = "interrupted"  # its server has gone
                    found[entry.name] = record
        for job_id, job in self.jobs.items():
            found[job_id] = job.snapshot()
        return [found[key] for key in sorted(found, reverse=True)[:RECENT_JOBS]]

    def folder_of(self, job_id: str) -> Path | None:
        """A job's folder, by an id this board made (never a path from the request)."""
        if job_id in self.jobs:
            return self.jobs[job_id].folder
        known = {record["id"] for record in self.recent() if "id" in record}
        return self.folder / job_id if job_id in known else None

    async def close(self) -> None:
        """At shutdown: stop running imports gracefully (the ledger keeps what was sent)."""
        running = [job for job in self.jobs.values() if job.task and not job.task.done()]
        for job in running:
            self.stop(job)
        if running:
            await asyncio.wait([job.task for job in running if job.task], timeout=60)


def _text(value: Any) -> str:
    from importer.mapping import cell_text

    return "" if value is None else cell_text(value)
