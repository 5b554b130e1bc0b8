"""The results CSV, the errors file and the end-of-run summary.

Lines are written as rows complete and reach the file within ``FLUSH_SECONDS``, so a crash
leaves a results file that says what was done up to a moment before (the ledger, not this file,
is what a rerun trusts). Lines come in completion order; the ``row`` column gives the input
order.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import shlex
import stat
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from importer.errors import AbortedError, ExitStatus, InputError
from importer.mapping import cell_text

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

RESULT_COLUMNS = ("row", "status", "activity_id", "http_status", "attempts", "error")
#: Statuses in the order the summary lists them.
STATUSES = (
    "created",
    "already_created",
    "duplicate",
    "valid",
    "invalid",
    "rejected",
    "failed",
    "uncertain",
)
SUCCESS_STATUSES = frozenset({"created", "already_created", "duplicate", "valid"})


def default_results_path(input_path: Path, suffix: str = "results") -> Path:
    """``<input stem>.results.csv`` in the current directory."""
    return Path.cwd() / f"{input_path.stem}.{suffix}.csv"


#: Written lines reach the file at most this many seconds later. Flushing every line cost
#: about as much as building it, and a results file is read by people, not by reruns.
FLUSH_SECONDS = 0.5


class ReportError(AbortedError):
    """The results (or errors) file cannot be written any more: the run must stop."""

    def __init__(self, path: Path, error: OSError) -> None:
        super().__init__(
            f"cannot write {path} ({error.strerror or error}); free some disk space, then rerun"
            " the same command: rows already created are not sent again"
        )


def _exclusive(path: Path) -> int:
    """Open ``path`` for writing, locked, and only then empty it.

    Two runs of the same file would otherwise write into each other's results.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"another run is writing {path} right now; wait for it to finish, or give this"
                " run other --results / --errors paths"
            ) from None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.ftruncate(fd, 0)
    return fd


class _CsvOut:
    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        try:
            # utf-8-sig writes the BOM Excel needs to read UTF-8 correctly.
            self._file: IO[str] = open(  # noqa: SIM115
                _exclusive(path), "w", encoding="utf-8-sig", newline=""
            )
            self._writer = csv.writer(self._file)
            self._writer.writerow(header)
            self._file.flush()
        except OSError as exc:
            raise InputError(
                f"cannot write {path}: {exc.strerror}; choose another path or folder"
            ) from None
        self._flushed = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._error: OSError | None = None

    def _write(self, values: Sequence[Any]) -> None:
        if self._error is not None:
            raise ReportError(self.path, self._error)
        try:
            self._writer.writerow(values)
        except OSError as exc:
            raise ReportError(self.path, exc) from None
        if self._timer is not None:
            return  # a flush is already due
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a dry run): the next line after the interval flushes
        # A quiet spell (retries, a slow answer) must not hold back the lines already written.
        self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write everything so far to the file (also done on a timer and on close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._file.closed:
            try:
                self._file.flush()
            except OSError as exc:  # e.g. disk full; reported by the next write
                self._error = exc
        self._flushed = time.monotonic()

    def close(self) -> None:
        """Flush and close; ReportError if any line could not reach the file."""
        self.flush()
        try:
            self._file.close()
        except OSError as exc:
            self._error = self._error or exc
        if self._error is not None:
            raise ReportError(self.path, self._error)


class ResultsWriter(_CsvOut):
    """``row,status,activity_id,http_status,attempts,error`` + every input column."""

    def __init__(self, path: Path, input_header: Sequence[str]) -> None:
        super().__init__(path, [*RESULT_COLUMNS, *input_header])

    def write(
        self,
        row: int,
        status: str,
        cells: Sequence[Any],
        *,
        activity_id: str = "",
        http_status: int | None = None,
        attempts: int = 0,
        error: str = "",
    ) -> None:
        self._write(
            [
                row,
                status,
                activity_id,
                "" if http_status is None else http_status,
                attempts,
                _one_line(error),
                *_texts(cells),
            ]
        )


class ErrorsWriter(_CsvOut):
    """Rows not created, original header and cells + ``error`` and ``source_row``.

    Opened at the start (so a bad path fails before anything is sent) and removed at the end
    if no row needed it. Fix the cells and import it again with the same mapping (the two
    extra columns are ignored by the mapping).
    """

    def __init__(self, path: Path, input_header: Sequence[str]) -> None:
        super().__init__(path, [*input_header, "error", "source_row"])
        self.count = 0

    def write(self, row: int, cells: Sequence[Any], error: str) -> None:
        self._write([*_texts(cells), _one_line(error), row])
        self.count += 1

    def close(self) -> None:
        super().close()
        if not self.count:
            # No row failed: a leftover file would list rows this run created.
            self.path.unlink(missing_ok=True)


def _quote(path: Path | None) -> str:
    return shlex.quote(str(path))


def _preview(payload: dict[str, Any]) -> str:
    shown = dict(payload)
    if "activityDate" in shown:
        when = dt.datetime.fromtimestamp(int(shown["activityDate"]), dt.UTC)
        shown["activityDate"] = f"{shown['activityDate']} (= {when:%Y-%m-%d %H:%M} UTC)"
    return json.dumps(shown, ensure_ascii=False, default=_shown_lookup)


def _shown_lookup(value: Any) -> str:
    return f"<the {value.kind} id for {value.key!r}>"


def _texts(cells: Sequence[Any]) -> list[str]:
    # CSV cells are already text: skip cell_text's type checks for them (the common case).
    return [cell if type(cell) is str else cell_text(cell) for cell in cells]


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


@dataclass
class Summary:
    """Counts per status, and where the results went."""

    input_path: Path
    results_path: Path
    errors_path: Path | None = None
    dry_run: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    blank_rows: int = 0
    stopped_reason: str = ""
    elapsed: float = 0.0
    header_notes: list[str] = field(default_factory=list)
    #: Dry run: the first payloads, so the user can check dates and mapped values.
    preview: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    mapping_path: Path | None = None
    header_row: int = 1
    interrupted: bool = False
    throttled: int = 0  # 429/503 answers
    concurrency: int = 0
    lowest_concurrency: int = 0
    offline: bool = False  # dry run without Eloqua: types, lookups and ledger not checked
    #: Why a stopped run stopped: "file" (it could not be read further) or "eloqua" (401,
    #: outage, ledger): a watcher files the first away and retries the second.
    stop_cause: str = ""
    lookups: Any = None  # lookup.LookupStats when the mapping looks things up

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.stopped_reason:
            return ExitStatus.ABORTED
        if any(self.counts[status] for status in STATUSES if status not in SUCCESS_STATUSES):
            return ExitStatus.ROWS_NOT_CREATED
        return ExitStatus.OK

    def render(self) -> str:
        verb = "Checked" if self.dry_run else "Imported"
        lines = [f"{verb} {self.input_path}: {self.rows} rows in {self.elapsed:.1f}s"]
        if self.rows == 0:
            lines.append("  The file has a header but no data rows: nothing to import.")
        for status in STATUSES:
            if self.counts[status]:
                lines.append(f"  {status:<16}{self.counts[status]:>8}")
        if self.blank_rows:
            lines.append(f"  blank rows skipped {self.blank_rows:>5}")
        lines.extend(f"  note: {note}" for note in self.header_notes)
        if self.throttled:
            lines.append(
                f"  Eloqua throttled {self.throttled} requests (429/503); concurrency went down"
                f" to {self.lowest_concurrency} of {self.concurrency} and grew back as it allowed"
            )
        if self.lookups is not None:
            lines.append(
                f"  Eloqua lookups: {self.lookups.contact_searches} contact searches,"
                f" {self.lookups.campaign_searches} campaign searches"
                + (
                    f", {self.lookups.contacts_created} contacts created"
                    if self.lookups.contacts_created
                    else ""
                )
                + (
                    f", {self.lookups.contacts_to_create} contacts would be created"
                    if self.lookups.contacts_to_create
                    else ""
                )
            )
        if self.dry_run and self.rows:
            lines.append("  Dry run: nothing was sent to Eloqua.")
            if self.offline:
                lines.append(
                    "  Checked offline (no credentials): asset types, the ledger and Eloqua's own"
                    " checks were not consulted."
                )
        for number, payload in self.preview:
            lines.append(f"  row {number} would send: {_preview(payload)}")
        lines.append(f"Results: {self.results_path}")
        if self.errors_path is not None:
            lines.append(f"Rows not created: {self.errors_path}")
            lines.append(f"  Fix them there, then import them again: {self._reimport_command()}")
        if self.stopped_reason:
            lines.append(
                f"Stopped early: {self.stopped_reason}. Rerun the same command to continue:"
                " rows already created are not sent again."
            )
        return "\n".join(lines)

    def _reimport_command(self) -> str:
        command = (
            f"eloqua-import run {_quote(self.errors_path)} --mapping {_quote(self.mapping_path)}"
        )
        # The errors file is a plain CSV with its header on row 1, whatever the input had.
        if self.header_row != 1:
            command += " --header-row 1"
        return command
