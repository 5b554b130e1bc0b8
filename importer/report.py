"""The results CSV, the errors file and the end-of-run summary.

Lines are written as rows complete and reach the file within ``FLUSH_SECONDS``, so a crash
leaves a results file that says what was done up to a moment before (the ledger, not this file,
is what a rerun trusts). Lines come in completion order; the ``row`` column gives the input
order. A run never destroys an earlier run's files: one already at the path is moved aside
(timestamped, never over another) before the new one is written. The summary's reasons are
kept in bounded memory: counts per reason and a few row numbers each. A cell a spreadsheet would
run as a formula is written with one leading ``'`` (loader.protect_formula); the loader removes
it when one of these files is imported again.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import os
import re
import shlex
import stat
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from importer.errors import AbortedError, ExitStatus, InputError
from importer.status import Status
from importer.table import GUARDED_FIRST, RESULTS_COLUMNS, cell_text, protect_formula

if TYPE_CHECKING:
    from importer.ledger import LedgerLocation

try:
    import fcntl
except ImportError:  # Windows: msvcrt's byte-range lock instead
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # POSIX
    msvcrt = None  # type: ignore[assignment]

#: The loader recognises a results file by these columns (to undo the formula guard).
RESULT_COLUMNS = RESULTS_COLUMNS
#: Statuses in the order the summary lists them.
STATUSES = tuple(Status)


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


def _exclusive(path: Path) -> tuple[int, Path | None]:
    """Open ``path`` for writing, locked, empty; an earlier run's file there is moved aside.

    Two runs of the same file would otherwise write into each other's results. Returns the
    descriptor and where the earlier file went (None if there was none). The lock is taken
    before the old file is moved, so a run still writing it is never moved from under.
    """
    moved: Path | None = None
    for _ in range(10):  # another run may move or create the file between two steps
        # O_BINARY (Windows): else the C library turns csv's \r\n line ends into \r\r\n.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            # A pipe or a device (/dev/stdout): nothing to keep, empty or lock (a lock on a
            # device would be shared by every process on the machine).
            return fd, moved
        _lock(fd, path)
        info = os.fstat(fd)  # as it is now that no other run writes it
        if not _same_file(path, info):
            os.close(fd)  # moved aside by another run meanwhile: open the new one
            continue
        if info.st_size == 0:
            return fd, moved
        # Closed before the move: Windows cannot rename an open file.
        os.close(fd)
        try:
            moved = _move_aside(path, info.st_mtime)
        except FileNotFoundError:
            continue  # another run moved it first
    raise InputError(f"cannot open {path}: other runs keep replacing it; run one at a time")


def _lock(fd: int, path: Path) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        elif msvcrt is not None:
            # Windows: lock the first byte (allowed past the end of an empty file).
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        os.close(fd)
        raise InputError(
            f"another run is writing {path} right now; wait for it to finish, or give this"
            " run other --results / --errors paths"
        ) from None


def _same_file(path: Path, info: os.stat_result) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino)


def aside_path(path: Path, mtime: float, attempt: int = 0) -> Path:
    """``attendees.results.2026-03-14T090501.csv``: the time is the old file's, local."""
    stamp = dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%dT%H%M%S")
    if attempt:
        stamp += f"-{attempt + 1}"
    return path.with_name(f"{path.stem}.{stamp}{path.suffix}")


def _move_aside(path: Path, mtime: float) -> Path:
    """Rename ``path`` to a timestamped name no other file has; never replace a file."""
    for attempt in range(1000):
        target = aside_path(path, mtime, attempt)
        try:
            os.link(path, target)  # fails if the name is taken, unlike a rename on POSIX
        except FileExistsError:
            continue
        except FileNotFoundError:
            raise
        except OSError:  # no hard links here (FAT, some network shares): rename instead
            if target.exists():
                continue
            os.rename(path, target)  # Windows: refuses to replace, the check above is a hint
            return target
        os.unlink(path)
        return target
    raise InputError(f"cannot move the earlier {path} aside: too many earlier copies beside it")


class _CsvOut:
    def __init__(self, path: Path, header: Sequence[str], delimiter: str = ",") -> None:
        self.path = path
        #: Where an earlier run's file at ``path`` was moved, if there was one.
        self.moved_aside: Path | None = None
        try:
            fd, self.moved_aside = _exclusive(path)
            # UTF-8 with the BOM Excel needs to read it correctly, written here rather than by
            # the utf-8-sig codec: its encoder is Python code called for every line, while the
            # text layer encodes UTF-8 in C (the bytes are the same).
            self._file: IO[str] = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._file.write("\ufeff")
            self._writer = csv.writer(self._file, delimiter=delimiter)
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
        self._written()

    def _write_line(self, line: str) -> None:
        """A line built as the csv writer would write it (see ResultsWriter.write)."""
        if self._error is not None:
            raise ReportError(self.path, self._error)
        try:
            self._file.write(line)
        except OSError as exc:
            raise ReportError(self.path, exc) from None
        self._written()

    def _written(self) -> None:
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
        super().__init__(path, [*RESULT_COLUMNS, *_texts(input_header)])

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
        if not error and (not activity_id or activity_id.isdigit()):
            plain = _plain_cells(cells)
            if plain is not None:
                # Nothing to quote or guard: the line the csv writer would write, built at a
                # fraction of its cost (it runs for every row of a dry run).
                shown = "" if http_status is None else http_status
                self._write_line(f"{row},{status},{activity_id},{shown},{attempts},,{plain}\r\n")
                return
        self._write(
            (
                row,
                status,
                activity_id,
                "" if http_status is None else http_status,
                attempts,
                protect_formula(_one_line(error)) if error else "",
                *_texts(cells),
            )
        )


class ErrorsWriter(_CsvOut):
    """Rows not created, original header and cells + ``error`` and ``source_row``.

    Opened at the start (so a bad path fails before anything is sent) and removed at the end
    if no row needed it. Fix the cells and import it again with the same mapping (the two
    extra columns are ignored by the mapping). It uses the input's delimiter, so Excel set to
    a ``;`` list separator opens a ``;`` file's errors in columns, and keeps the cells as read.
    """

    def __init__(self, path: Path, input_header: Sequence[str], delimiter: str = ",") -> None:
        super().__init__(path, [*_texts(input_header), "error", "source_row"], delimiter)
        self.count = 0

    def write(self, row: int, cells: Sequence[Any], error: str) -> None:
        self._write([*_texts(cells), protect_formula(_one_line(error)), row])
        self.count += 1

    def close(self) -> None:
        super().close()
        if not self.count:
            # No row failed: a leftover file would list rows this run created.
            self.path.unlink(missing_ok=True)


def shell_quote(text: str, windows: bool = sys.platform == "win32") -> str:
    """``text`` as one argument for the user's shell: POSIX quoting, or Windows double quotes.

    Windows' cmd.exe and PowerShell both read "" inside double quotes as one quote.
    """
    if not windows:
        return shlex.quote(text)
    if text and not re.search(r'[\s"&|<>^%!`$;,()\'{}@#]', text):
        return text
    return '"' + text.replace('"', '""') + '"'


# --- the reasons rows were not created -------------------------------------------------------

#: The summary lists this many reasons, then points to the errors file.
TOP_REASONS = 5
#: Distinct reasons kept; rows with further reasons are only counted (bounded memory however
#: varied the messages are).
MAX_REASONS = 1000
#: An example message longer than this is cut short in the summary.
EXAMPLE_CHARS = 300
#: Runs of consecutive row numbers kept per reason ("rows 2-46, 50, 61-62, ...").
ROW_RUNS = 3
#: A message's values (quoted texts, numbers): what differs between rows with the same reason.
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|\d+")


@dataclass
class Reason:
    """One kind of problem: how many rows had it, the first message, the first rows."""

    status: str
    example: str
    error: bool
    count: int = 0
    runs: list[list[int]] = field(default_factory=list)
    more_rows: bool = False

    def add(self, row: int) -> None:
        self.count += 1
        # Rows sent to Eloqua finish in any order: a row may extend a run at either end.
        for run in self.runs:
            if run[0] - 1 <= row <= run[1] + 1:
                run[0], run[1] = min(run[0], row), max(run[1], row)
                self._merge()
                return
        if len(self.runs) < ROW_RUNS:
            self.runs.append([row, row])
            self.runs.sort()
        else:
            self.more_rows = True

    def _merge(self) -> None:
        runs = sorted(self.runs)
        merged = [runs[0]]
        for run in runs[1:]:
            if run[0] <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], run[1])
            else:
                merged.append(run)
        self.runs = merged

    def rows_text(self) -> str:
        parts = [str(a) if a == b else f"{a}-{b}" for a, b in self.runs]
        plural = "s" if self.count > 1 else ""
        return f"row{plural} " + ", ".join(parts) + (", ..." if self.more_rows else "")


@dataclass
class Reasons:
    """Rows not created, grouped by status, column and kind of problem.

    The kind is a RowError's ``code`` when there is one; otherwise the message with its values
    (quoted texts, numbers) taken out, so "no contact 'a@x.com'" and "no contact 'b@x.com'"
    group together.
    """

    groups: dict[tuple[str, str, str], Reason] = field(default_factory=dict)
    uncounted: int = 0  # rows whose reason came after MAX_REASONS others

    def add(
        self,
        status: str,
        row: int,
        message: str,
        *,
        column: str | None = None,
        code: str | None = None,
        error: bool = True,
    ) -> None:
        key = (status, column or "", code or _VALUES.sub("_", message))
        reason = self.groups.get(key)
        if reason is None:
            if len(self.groups) >= MAX_REASONS:
                self.uncounted += 1
                return
            example = _one_line(message)
            if len(example) > EXAMPLE_CHARS:  # Eloqua's answers can be long: the file has it all
                example = example[: EXAMPLE_CHARS - 3] + "..."
            reason = self.groups[key] = Reason(status, example, error)
        reason.add(row)

    def top(self, limit: int = TOP_REASONS) -> list[Reason]:
        """Errors first (they need fixing), then the most rows."""
        ranked = sorted(self.groups.values(), key=lambda r: (not r.error, -r.count))
        return ranked[:limit]

    def render(
        self, *, results_file: bool = True, errors_file: bool = True, dry_run: bool = False
    ) -> list[str]:
        """The files say which were written: a library call writes them only when asked."""
        shown = self.top()
        if not shown:
            return []
        width = len(str(max(reason.count for reason in shown)))
        status_width = max(len(reason.status) for reason in shown)
        not_created = "would not be created" if dry_run else "were not created"
        lines = [f"Why rows {not_created}:"]
        lines.extend(
            f"  {r.count:>{width}} {r.status:<{status_width}}  {r.example}  ({r.rows_text()})"
            for r in shown
        )
        hidden = [r for r in self.groups.values() if not any(r is s for s in shown)]
        rest = sum(r.count for r in hidden) + self.uncounted
        if rest:
            # Only errors go to the errors file; a duplicate or a skipped row is in the results.
            where = "errors" if self.uncounted or any(r.error for r in hidden) else "results"
            if where == "errors" and not errors_file:
                where = "results"  # every row is in the results file too
            lines.append(
                f"  and {rest} more row{'s' if rest > 1 else ''} for other reasons"
                + (f": see the {where} file" if where == "errors" or results_file else "")
            )
        elif errors_file and any(r.error for r in shown):
            each = "that would not be created" if dry_run else "not created"
            lines.append(f"  Each row {each}, with its reason: see the errors file")
        return lines


def _preview(payload: dict[str, Any]) -> str:
    shown = dict(payload)
    if "activityDate" in shown:
        when = dt.datetime.fromtimestamp(int(shown["activityDate"]), dt.UTC)
        shown["activityDate"] = f"{shown['activityDate']} (= {when:%Y-%m-%d %H:%M} UTC)"
    return json.dumps(shown, ensure_ascii=False, default=_shown_lookup)


def _shown_lookup(value: Any) -> str:
    if value.create_missing:
        return f"<a new contact for {value.key!r}, created by the real run>"
    return f"<the {value.kind} id for {value.key!r}>"


def _texts(cells: Sequence[Any]) -> list[str]:
    """Cells as text, with the formula guard (people open these files in Excel)."""
    # One pass: a CSV cell is already text and almost never starts like a formula, so it is
    # kept as it is without a call; any other cell takes cell_text and the formula guard.
    return [
        cell
        if type(cell) is str and cell[:1] not in GUARDED_FIRST
        else protect_formula(cell if type(cell) is str else cell_text(cell))
        for cell in cells
    ]


#: A cell after the first that starts like a formula (see protect_formula); searched for in
#: the joined line, which takes one regular expression pass, not one test per cell.
_GUARDED_AFTER_COMMA = re.compile(r",[=+\-@\t\r']")


def _plain_cells(cells: Sequence[Any]) -> str | None:
    """The cells joined by commas, if all are text the csv writer writes as it is (nothing to
    quote) and the formula guard leaves alone; else None."""
    try:
        text = ",".join(cells)
    except TypeError:
        return None  # a number or a date: cell_text says how it reads
    if (
        text.count(",") != len(cells) - 1  # a comma inside a cell
        or '"' in text
        or "\n" in text
        or "\r" in text
        or text[:1] in GUARDED_FIRST
        or _GUARDED_AFTER_COMMA.search(text)
    ):
        return None
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


@dataclass
class Summary:
    """Counts per status, and where the results went."""

    input_path: Path | str  # a file, or how records are named (e.g. "records")
    results_path: Path | None  # None: no results CSV was asked for
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
    reasons: Reasons = field(default_factory=Reasons)
    #: (earlier file, where it was moved) for results and errors files that were in the way.
    moved_aside: list[tuple[Path, Path]] = field(default_factory=list)
    #: Options the printed re-import command repeats (``--sandbox``, ``--ledger PATH``, ...):
    #: the caller knows which shaped the run. ``--header-row`` is added here.
    reimport_options: list[str] = field(default_factory=list)
    #: Options a dry run's "check it again" command repeats for the same input (the caller's).
    rerun_options: list[str] = field(default_factory=list)
    ledger_path: LedgerLocation | None = None  # a path or a URL shown masked (None: offline)
    temporary_ledger: bool = False  # the sandbox's own, removed when the run ends

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def exit_status(self) -> ExitStatus:
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.stopped_reason:
            return ExitStatus.ABORTED
        if any(self.counts[status] for status in Status if status.is_error):
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
        # The errors file exists once a row went there, if it was asked for (the CLI always
        # asks; a library call may not).
        lines.extend(
            self.reasons.render(
                results_file=self.results_path is not None,
                errors_file=self.errors_path is not None,
                dry_run=self.dry_run,
            )
        )
        if self.results_path is not None:
            lines.append(f"Results: {self.results_path}")
        for old, aside in self.moved_aside:
            lines.append(f"  The earlier {old.name} was kept: moved to {aside.name}")
        if self.temporary_ledger:
            lines.append("Ledger:  a temporary one for this sandbox run (removed at exit)")
        elif self.ledger_path is not None:
            lines.append(f"Ledger:  {self.ledger_path}")
        if self.errors_path is not None and self.dry_run:
            # A dry run's errors file lists what to fix; the input is what gets fixed, then
            # checked again as a whole (its leftovers alone would not show the full import).
            lines.append(f"Rows that would not be created: {self.errors_path}")
            lines.append(f"  {self._recheck_advice()}")
        elif self.errors_path is not None:
            lines.append(f"Rows not created: {self.errors_path}")
            lines.append(f"  Fix them there, then import them again: {self._reimport_command()}")
        if self.stopped_reason:
            lines.append(
                f"Stopped early: {self.stopped_reason}. Rerun the same command to continue:"
                " rows already created are not sent again."
            )
        return "\n".join(lines)

    def _recheck_advice(self) -> str:
        if not isinstance(self.input_path, Path):  # records from Python: no file to name
            return "Fix the records (or the mapping), then check them again."
        mapping = str(self.mapping_path) if self.mapping_path else "MAPPING.yaml"
        words = ["eloqua-import", "run", str(self.input_path), "--mapping", mapping, "--dry-run"]
        words += self.rerun_options
        command = " ".join(shell_quote(word) for word in words)
        return f"Fix the input file (or the mapping), then check it again: {command}"

    def _reimport_command(self) -> str:
        # A mapping given as a dict has no path: the user saves it as a file first.
        mapping = str(self.mapping_path) if self.mapping_path else "MAPPING.yaml"
        words = ["eloqua-import", "run", str(self.errors_path), "--mapping", mapping]
        # The errors file is a plain CSV with its header on row 1, whatever the input had.
        if self.header_row != 1:
            words += ["--header-row", "1"]
        words += self.reimport_options
        return " ".join(shell_quote(word) for word in words)
