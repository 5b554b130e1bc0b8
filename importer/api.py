"""The library API: import a file, or Python records (dicts, a pandas DataFrame), from code.

``import_file`` and ``import_records`` run the same pipeline as ``eloqua-import run`` (which is
a thin layer over this module): the same ledger, retries, statuses and messages. They return a
``Result`` with the counts, the exit status the CLI would give, and one ``RecordOutcome`` per
row in input order (unless ``collect=False``, for streams too long to keep in memory).

Problems found before anything is sent raise the exceptions in ``importer.errors`` (never
SystemExit); nothing here prints. Outcomes, progress and notices go to the callbacks given.
The synchronous functions run their own event loop; inside a running loop (Jupyter, async
code) await the ``*_async`` variants instead.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, TypedDict, Unpack

from importer.config import Connection, connection_from_env, has_credentials
from importer.eloqua import Timeouts
from importer.errors import ConfigError, ExitStatus
from importer.ledger import LedgerURL, ledger_location
from importer.pipeline import OnNotice, OnProgress, RunOptions, run_import
from importer.records import RecordRow
from importer.report import STATUSES, Summary
from importer.sandbox.connection import sandbox_connection
from importer.sender import Outcome
from importer.status import Status
from importer.table import Row

MAX_CONCURRENCY = 64
DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 120.0

StrPath = str | os.PathLike[str]
MappingSource = StrPath | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What happened to one input row or record."""

    row: int  # records: 1, 2, ... in input order; files: the row number Excel shows
    status: Status  # created, already_created, duplicate, valid, invalid, rejected, failed, ...
    activity_id: str  # Eloqua's id for the activity, when created (or created before)
    http_status: int | None  # Eloqua's last answer, if a request was sent
    attempts: int  # requests sent for this row
    error: str  # why it was not created (empty when it was)
    record: Any  # the input values: the dict given, or column -> value
    index: Any = None  # the DataFrame index value; None otherwise

    @property
    def ok(self) -> bool:
        """Created, created by an earlier run, a repeat of another row, or (dry run) valid."""
        return Status(self.status).is_success


OnOutcome = Callable[[RecordOutcome], None]


class ImportOptions(TypedDict, total=False):
    """The keyword options of import_file and import_records (see import_records)."""

    dry_run: bool
    sandbox: bool
    connection: Connection | None
    ledger: StrPath | LedgerURL | None
    concurrency: int
    timeout: float
    results: StrPath | None
    errors: StrPath | None
    retry_uncertain: bool
    allow_duplicates: bool
    collect: bool
    on_outcome: OnOutcome | None
    on_progress: OnProgress | None
    on_notice: OnNotice | None
    handle_signals: bool
    stop: asyncio.Event | None


@dataclass
class Result:
    """The end of one import."""

    counts: Counter[str]  # rows per status, e.g. {"created": 950, "invalid": 3}
    outcomes: list[RecordOutcome]  # input order; empty with collect=False
    summary: Summary  # the CLI's summary (summary.render() is what `run` prints)

    @property
    def exit_status(self) -> ExitStatus:
        """The exit code ``eloqua-import run`` gives for this result."""
        return self.summary.exit_status()

    @property
    def ok(self) -> bool:
        return self.exit_status == ExitStatus.OK

    @property
    def stopped_reason(self) -> str:
        """Why the run stopped early (credentials refused, outage, Ctrl-C), or ""."""
        return self.summary.stopped_reason

    @property
    def results_path(self) -> Path | None:
        return self.summary.results_path

    @property
    def errors_path(self) -> Path | None:
        """The errors file, if one was asked for and some row needed it."""
        return self.summary.errors_path

    def __repr__(self) -> str:
        counts = ", ".join(f"{status}={n}" for status, n in self.counts.items())
        return f"<Result {self.exit_status.name}: {counts or 'no rows'}>"


def import_file(
    path: StrPath,
    *,
    mapping: MappingSource,
    sheet: str | int | None = None,
    header_row: int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    **options: Unpack[ImportOptions],
) -> Result:
    """Import a CSV or Excel file: one External Activity per row.

    ``mapping`` is the path of a mapping file or a dict of the same schema. The other keyword
    options are those of :func:`import_records`. Raises ImporterError subclasses (InputError,
    MappingError, ConfigError, AuthError...) for problems found before anything is sent.
    """
    _no_running_loop("import_file")
    return asyncio.run(
        import_file_async(
            path,
            mapping=mapping,
            sheet=sheet,
            header_row=header_row,
            encoding=encoding,
            delimiter=delimiter,
            **options,
        )
    )


def import_records(
    records: Any, *, mapping: MappingSource, name: str = "records", **options: Unpack[ImportOptions]
) -> Result:
    """Import records: a pandas DataFrame, or a list or other iterable of dicts.

    Each record is one row (numbered from 1); its keys (or the DataFrame's columns) are the
    column names the mapping uses. Keyword options:

    - ``dry_run``: map and check every record, look up what the mapping looks up, send nothing.
    - ``sandbox``: send to an in-process Eloqua sandbox (with a temporary ledger).
    - ``connection``: a ``Connection``; default: the ELOQUA_* environment, as the CLI.
    - ``ledger``: the idempotency ledger: a file path or a ``postgresql://`` URL; default:
      ELOQUA_IMPORT_LEDGER, else the per-user file, as the CLI.
    - ``concurrency`` (1-64, default 8), ``timeout`` (seconds per request, default 120).
    - ``results`` / ``errors``: write the results CSV / the errors file there (default: none).
    - ``retry_uncertain``, ``allow_duplicates``: as the CLI's options of the same names.
    - ``name``: how the ledger and the summary name this input (default "records").
    - ``collect``: keep one RecordOutcome per record in ``Result.outcomes`` (default True);
      False keeps none, for streams of millions: use ``on_outcome``.
    - ``on_outcome(outcome)``: called as each record completes (completion order).
    - ``on_progress(done, total)``: as records complete; total is None when unknown.
    - ``on_notice(text)``: messages for the person running the import.
    - ``handle_signals``: Ctrl-C / SIGTERM stop the run cleanly (main thread only).
    - ``stop``: an ``asyncio.Event`` of the running loop (``*_async`` only); setting it stops
      the run as a first Ctrl-C does: nothing new is sent, answers in flight are awaited,
      every row is reported, and ``Result.exit_status`` is INTERRUPTED.
    """
    _no_running_loop("import_records")
    return asyncio.run(import_records_async(records, mapping=mapping, name=name, **options))


async def import_file_async(
    path: StrPath,
    *,
    mapping: MappingSource,
    sheet: str | int | None = None,
    header_row: int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    **options: Unpack[ImportOptions],
) -> Result:
    """:func:`import_file` for a running event loop: ``await importer.import_file_async(...)``."""
    plan = _plan("import_file", mapping=mapping, **options)
    plan.run.input_path = Path(path)
    plan.run.sheet, plan.run.header_row = sheet, header_row
    plan.run.encoding, plan.run.delimiter = encoding, delimiter
    return await _import(plan)


async def import_records_async(
    records: Any, *, mapping: MappingSource, name: str = "records", **options: Unpack[ImportOptions]
) -> Result:
    """:func:`import_records` for a running event loop (Jupyter, async code)."""
    plan = _plan("import_records", mapping=mapping, **options)
    plan.run.records, plan.run.source_name = records, str(name)
    return await _import(plan)


# --- internals ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    """One call's options, checked: the pipeline's RunOptions and where to send."""

    run: RunOptions
    collector: _Collector
    sandbox: bool
    connection: Connection | None


def _plan(function: str, *, mapping: MappingSource, **options: Any) -> _Plan:
    """Refuse unknown options by name (a typo would otherwise be silently ignored)."""
    for name in options:
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, _OPTIONS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "options: " + ", ".join(_OPTIONS)
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}; {hint}")
    return _checked_plan(mapping=mapping, **options)


def _checked_plan(
    *,
    mapping: MappingSource,
    dry_run: bool = False,
    sandbox: bool = False,
    connection: Connection | None = None,
    ledger: StrPath | LedgerURL | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
    results: StrPath | None = None,
    errors: StrPath | None = None,
    retry_uncertain: bool = False,
    allow_duplicates: bool = False,
    collect: bool = True,
    on_outcome: OnOutcome | None = None,
    on_progress: OnProgress | None = None,
    on_notice: OnNotice | None = None,
    handle_signals: bool = False,
    stop: asyncio.Event | None = None,
) -> _Plan:
    """Check the options (ConfigError naming the fix) and build the pipeline's RunOptions."""
    _check_options(concurrency, timeout)
    collector = _Collector(collect, on_outcome)
    run = RunOptions(
        results_path=_path(results),
        errors_path=_path(errors),
        concurrency=concurrency,
        dry_run=dry_run,
        ledger_path=None if ledger is None else ledger_location(ledger),
        retry_uncertain=retry_uncertain,
        allow_duplicates=allow_duplicates,
        timeouts=Timeouts(read=timeout),
        handle_signals=handle_signals,
        stop=stop,
        on_outcome=collector.hook,
        on_progress=on_progress,
        on_notice=on_notice,
    )
    if isinstance(mapping, Mapping):
        run.mapping = mapping
    elif isinstance(mapping, str | os.PathLike):
        run.mapping_path = Path(mapping)
    else:
        raise ConfigError(
            f"mapping must be the path of a mapping file or a dict, not {type(mapping).__name__}"
        )
    return _Plan(run, collector, sandbox, connection)


_OPTIONS = tuple(inspect.signature(_checked_plan).parameters)[1:]  # all but mapping


def _check_options(concurrency: int, timeout: float) -> None:
    if (
        not isinstance(concurrency, int)
        or isinstance(concurrency, bool)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, not"
            f" {concurrency!r}: more parallel requests only make Eloqua throttle"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"timeout must be a number of seconds above 0, not {timeout!r}")


def _path(value: StrPath | None) -> Path | None:
    return None if value is None else Path(value)


class _Collector:
    """Turns each row's outcome into a RecordOutcome, for the list and the caller's hook."""

    def __init__(self, collect: bool, on_outcome: OnOutcome | None) -> None:
        self.outcomes: list[RecordOutcome] = []
        self.collect = collect
        self.on_outcome = on_outcome

    @property
    def hook(self) -> Callable[[Row, Outcome, Sequence[str]], None] | None:
        if not self.collect and self.on_outcome is None:
            return None  # nothing wants them: do not even build them
        return self._receive

    def _receive(self, row: Row, outcome: Outcome, header: Sequence[str]) -> None:
        item = _record_outcome(row, outcome, header)
        if self.collect:
            self.outcomes.append(item)
        if self.on_outcome is not None:
            self.on_outcome(item)


def _record_outcome(row: Row, outcome: Outcome, header: Sequence[str]) -> RecordOutcome:
    if isinstance(row, RecordRow):
        record, index = row.record, row.label
    else:
        record, index = dict(zip(header, row.cells, strict=False)), None
    return RecordOutcome(
        row=row.number,
        status=outcome.status,
        activity_id=outcome.activity_id,
        http_status=outcome.http_status,
        attempts=outcome.attempts,
        error=outcome.error,
        record=record,
        index=index,
    )


async def _import(plan: _Plan) -> Result:
    run = plan.run
    if plan.sandbox:
        summary = await _import_to_sandbox(run)
    else:
        connection = plan.connection
        if connection is None:
            # A dry run without credentials still checks every row, offline.
            offline = run.dry_run and not has_credentials()
            connection = None if offline else connection_from_env()
        summary = await run_import(run, connection)
    outcomes = plan.collector.outcomes
    outcomes.sort(key=attrgetter("row"))  # they complete out of order
    return Result(counts=_counts(summary), outcomes=outcomes, summary=summary)


async def _import_to_sandbox(run: RunOptions) -> Summary:
    from importer.sandbox.server import SandboxServer

    # A fresh sandbox knows none of the activities in a real ledger, and must not add to it:
    # unless a ledger is given, it gets a ledger of its own for this run. It has none of the
    # activities an earlier results file shows either: sending them again is right.
    run.guard_lost_ledger = False
    with tempfile.TemporaryDirectory(prefix="eloqua-import-sandbox-") as scratch:
        temporary = run.ledger_path is None
        if temporary:
            run.ledger_path = Path(scratch) / "ledger.sqlite3"
        async with SandboxServer() as server:
            summary = await run_import(run, sandbox_connection(server.base_url))
        summary.temporary_ledger = temporary and summary.ledger_path is not None
        return summary


def _counts(summary: Summary) -> Counter[str]:
    order = [*STATUSES, *(status for status in summary.counts if status not in STATUSES)]
    return Counter({status: summary.counts[status] for status in order if summary.counts[status]})


def _no_running_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise ConfigError(
        f"importer.{name}() runs its own event loop, so it cannot be called inside a running"
        f" one (Jupyter, async code); there, use: result = await importer.{name}_async(...)"
    )
