"""One import: loader -> mapping -> sender (with the ledger) -> report, for one input file
or one stream of records (``importer.records``).

Library code: nothing here prints. Outcomes, progress and notices (e.g. "stopping" after
Ctrl-C) reach the caller through the callbacks in ``RunOptions``; the CLI and ``watch``
supply them. A results CSV and an errors file are written only when their paths are given.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import signal
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from collections.abc import Mapping as AnyMapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.adopt import refuse_lost_ledger
from importer.config import Connection
from importer.eloqua import EloquaClient, Timeouts, open_session
from importer.errors import (
    AbortedError,
    ConfigError,
    InputError,
    Interrupted,
    MappingError,
    RowError,
)
from importer.fields import Lookup
from importer.identity import FirstSeen, identify
from importer.ledger import Ledger, LedgerError, LedgerLocation, default_ledger
from importer.loader import open_table
from importer.lookup import DRY_RUN_NEW_CONTACT, LookupFailed, Resolver
from importer.mapping import ColumnsMissing, Mapping, load_mapping
from importer.preflight import Catalog, check_campaign, check_constants, connect
from importer.records import RecordsTable, records_table
from importer.report import ErrorsWriter, ResultsWriter, Summary
from importer.retry import RetryPolicy
from importer.sender import Job, Outcome, Sender, SendOptions
from importer.signals import SignalHandlers, signal_name
from importer.status import SUCCESS, Status
from importer.table import Row, Table

PREVIEW_ROWS = 3
#: Rows read without a job to send, between turns of the event loop (see _read_jobs).
IDLE_ROWS = 256
#: Statuses that are not "a reason a row was not created" in the summary.
NOT_A_REASON = frozenset({Status.CREATED, Status.ALREADY_CREATED, Status.VALID})

#: Called once per row as it completes (completion order), after its results line is written,
#: with the table's header (the names of the row's cells).
OnOutcome = Callable[[Row, Outcome, Sequence[str]], None]
#: Called as rows complete: (rows done, estimated total or None); a last call has done == total.
OnProgress = Callable[[int, int | None], None]
#: A message for the person running the import, e.g. "Ctrl-C: stopping...".
OnNotice = Callable[[str], None]


@dataclass
class RunOptions:
    """One import. The rows come from ``input_path`` (a file) or ``records`` (an iterable of
    dicts or a DataFrame); the mapping from ``mapping_path`` or ``mapping`` (a dict)."""

    input_path: Path | None = None
    mapping_path: Path | None = None
    results_path: Path | None = None  # None: no results CSV
    errors_path: Path | None = None  # None: no errors file
    records: Any = None
    mapping: AnyMapping[str, Any] | None = None
    source_name: str = "records"  # how records are named in the ledger and the summary
    sheet: str | int | None = None
    header_row: int | None = None
    encoding: str | None = None
    delimiter: str | None = None
    concurrency: int = 8
    dry_run: bool = False
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    ledger_path: LedgerLocation | None = None  # None: ELOQUA_IMPORT_LEDGER, else the per-user file
    retry_uncertain: bool = False
    allow_duplicates: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    stop_grace: float = 30.0
    handle_signals: bool = False  # Ctrl-C / SIGTERM stop the run cleanly (the CLI sets it)
    #: Refuse to send when the results file shows rows created that the ledger does not know
    #: (off for the built-in sandbox: it starts empty, so sending them again is right).
    guard_lost_ledger: bool = True
    #: The results of an earlier import of this input kept elsewhere (watch: done/NAME.results.csv),
    #: checked by that guard instead of ``results_path``, which watch writes afresh.
    earlier_results: Path | None = None
    #: Set it to stop as the first Ctrl-C does (the web page's Stop button): no new rows are
    #: sent, answers in flight are awaited, every row is reported, the run ends interrupted.
    stop: asyncio.Event | None = None
    on_outcome: OnOutcome | None = None
    on_progress: OnProgress | None = None
    on_notice: OnNotice | None = None

    @property
    def source(self) -> str:
        """The input as the summary and the ledger name it."""
        return str(self.input_path) if self.input_path is not None else self.source_name


async def run_import(options: RunOptions, connection: Connection | None) -> Summary:
    """Import one file or stream of records. Raises ImporterError subclasses for problems
    found before sending.

    ``connection`` may be None only for a dry run of a mapping without lookups: the rows are
    then checked offline.
    """
    if options.mapping is not None:
        mapping = load_mapping(options.mapping)
    elif options.mapping_path is not None:
        mapping = load_mapping(options.mapping_path)
    else:
        raise ConfigError("no mapping: give the path of a mapping file, or a mapping dict")
    with _open_source(options, mapping) as table:
        try:
            mapping.bind(
                table.header,
                file=_described(options, table),
                records=isinstance(table, RecordsTable),
            )
        except ColumnsMissing as exc:
            if isinstance(table, RecordsTable):
                raise
            raise _with_header_row_hint(exc, options, mapping, table) from None
        if connection is None:
            if mapping.has_lookups:
                raise ConfigError(
                    f"{mapping.path} looks up contacts or campaigns in Eloqua, so even"
                    " a dry run needs credentials: set ELOQUA_COMPANY, ELOQUA_USERNAME and"
                    " ELOQUA_PASSWORD (or ELOQUA_ACCESS_TOKEN), or add --sandbox"
                )
            assert options.dry_run, "a real run needs a connection"
            return _Run(options, mapping, table, Catalog(None)).dry_run_offline()
        signals = _Signals(options.handle_signals, options.on_notice, options.stop)
        with signals:
            try:
                return await _send_table(options, connection, mapping, table, signals)
            except asyncio.CancelledError:
                if not signals.interrupted:
                    raise
                raise Interrupted(
                    f"interrupted by {signals.interrupted} before any row was sent"
                ) from None


@contextlib.contextmanager
def _open_source(options: RunOptions, mapping: Mapping) -> Iterator[Table | RecordsTable]:
    if options.input_path is None:
        # An empty batch has no keys to take a header from: the mapping's columns stand in.
        yield records_table(options.records, fallback_header=mapping.column_names())
        return
    hints = mapping.source
    with open_table(
        options.input_path,
        sheet=options.sheet if options.sheet is not None else hints.sheet,
        header_row=options.header_row or hints.header_row,
        encoding=options.encoding or hints.encoding,
        delimiter=options.delimiter or hints.delimiter,
    ) as table:
        yield table


def _described(options: RunOptions, table: Table | RecordsTable) -> str:
    return table.described if isinstance(table, RecordsTable) else str(options.input_path)


async def _send_table(
    options: RunOptions,
    connection: Connection,
    mapping: Mapping,
    table: Table | RecordsTable,
    signals: _Signals,
) -> Summary:
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            open_session(options.concurrency, options.timeouts)
        )
        client, site, catalog = await connect(session, connection)
        check_constants(mapping, catalog)
        resolver = None
        if mapping.has_lookups:
            resolver = Resolver(
                client, options.retry_policy, options.concurrency, dry_run=options.dry_run
            )
            await check_campaign(mapping, resolver.id_of)
        ledger_path = options.ledger_path or default_ledger()
        ledger = await stack.enter_async_context(Ledger(ledger_path, site))
        note = None
        earlier = options.earlier_results or options.results_path
        if earlier and not options.dry_run and options.guard_lost_ledger:
            # Before _Run moves the results file aside: it may be all that is left of a lost
            # ledger, and a rerun must not send again what it shows created.
            path = options.input_path
            source = path.name if path is not None else options.source_name  # as in _read_jobs
            note = await refuse_lost_ledger(ledger, earlier, options.mapping_path, source, client)
        run = _Run(options, mapping, table, catalog)
        if note:
            run.summary.header_notes.append(note)
        run.summary.ledger_path = ledger_path
        return await run.send(client, ledger, resolver, signals)


class _Run:
    """The state of one import: the writers, the counts and the in-file duplicate index."""

    def __init__(
        self,
        options: RunOptions,
        mapping: Mapping,
        table: Table | RecordsTable,
        catalog: Catalog,
    ):
        self.options = options
        self.mapping = mapping
        self.table = table
        self.catalog = catalog
        results_path, errors_path = options.results_path, options.errors_path
        _check_outputs(options, results_path, errors_path)
        self.summary = Summary(
            # A Path for a file (the summary's commands name it), the records' name otherwise.
            input_path=options.input_path or options.source_name,
            results_path=results_path,
            dry_run=options.dry_run,
            header_notes=list(table.header_notes),
            mapping_path=options.mapping_path,
            # The errors file has its header on row 1: re-importing it with this mapping
            # needs --header-row 1 whenever the mapping reads its header from another row.
            header_row=mapping.source.header_row,
        )
        if _reads_as_other_than_utf8(mapping.source.encoding):
            # The errors file is UTF-8: re-importing it must not use the mapping's encoding.
            self.summary.reimport_options += ["--encoding", "utf-8"]
        # Both files are opened now, so an unwritable path fails before anything is sent. An
        # earlier run's files there are moved aside now, after every check before sending.
        self.results = ResultsWriter(results_path, table.header) if results_path else None
        self.errors = (
            ErrorsWriter(errors_path, table.header, table.delimiter or ",") if errors_path else None
        )
        for writer in (self.results, self.errors):
            if writer is not None and writer.moved_aside is not None:
                self.summary.moved_aside.append((writer.path, writer.moved_aside))
        # In-file duplicates, in bounded memory however long the file.
        self.seen = FirstSeen()
        self.sender: Sender[Row] | None = None
        self.started = time.monotonic()
        self.done = 0
        # The total (for the ETA) costs a quick pass over a file: only when progress is shown.
        self.total = table.estimated_rows if options.on_progress is not None else None
        #: What the caller's on_outcome raised: the run stops, then it is raised again.
        self.hook_error: Exception | None = None

    def dry_run_offline(self) -> Summary:
        """A dry run without Eloqua: every row mapped and checked locally."""
        try:
            for job in self._jobs():
                if job is not None:  # None: rows that send nothing (no event loop here)
                    self.record(job.key, Outcome(Status.VALID))
        except _HookFailed:
            pass
        finally:
            self._close()
        self._raise_hook_error()
        self.summary.offline = True
        return self.summary

    async def send(
        self, client: EloquaClient, ledger: Ledger, resolver: Resolver | None, signals: _Signals
    ) -> Summary:
        """Send every row (or, in a dry run, look up and consult the ledger only)."""
        options = self.options
        sender: Sender[Row] = Sender(
            client,
            on_outcome=self.record,
            options=SendOptions(
                concurrency=options.concurrency,
                policy=options.retry_policy,
                retry_uncertain=options.retry_uncertain,
                allow_duplicates=options.allow_duplicates,
                stop_grace=options.stop_grace,
                dry_run=options.dry_run,
            ),
            ledger=ledger,
            prepare=_resolving(resolver, self._show_resolved) if resolver is not None else None,
        )
        self.sender = sender
        try:
            signals.sender = sender  # from now on a signal stops the sender cleanly
            try:
                stats = await sender.run(self._jobs())
            except _HookFailed:
                stats = sender.stats  # the caller's callback failed while rows were read
            with contextlib.suppress(LedgerError):  # already reported as the stop reason
                await ledger.flush()
        finally:
            self._close()
        self._raise_hook_error()
        summary = self.summary
        if stats.stopped_reason and not summary.stop_cause:
            summary.stopped_reason = stats.stopped_reason
            summary.stop_cause = "interrupted" if stats.interrupted else "eloqua"
        summary.interrupted = stats.interrupted
        summary.throttled = stats.throttled
        summary.lowest_concurrency = stats.lowest_concurrency
        summary.concurrency = options.concurrency
        if resolver is not None:
            summary.lookups = resolver.stats
        return summary

    def _jobs(self) -> Iterator[Job[Row] | None]:
        """Valid, first-seen payloads; invalid rows and repeats are recorded on the way.

        A file that turns unreadable part-way ends the stream: rows before it are still sent
        and reported, and the run ends as stopped.
        """
        sent = 0
        try:
            for job in self._read_jobs():
                sent += job is not None
                yield job
                if self.sender is not None and self.sender.aborted:
                    self._report_unsent()
                    return
        except InputError as exc:
            if self.options.dry_run or not sent:
                raise  # nothing went to Eloqua: a plain input error, exit 2
            self.summary.stopped_reason = f"the file could not be read further: {exc}"
            self.summary.stop_cause = "file"

    def _report_unsent(self) -> None:
        """Stopped at once: every row not yet read is ``failed`` (not sent), fast.

        No mapping, no ledger, no network: only reading and writing lines, so even a large
        file is finished in seconds and the results still hold every row.
        """
        assert self.sender is not None
        error = self.sender.unsent_text()
        for row in self.table.rows:
            self.record(row, Outcome(Status.FAILED, error=error))

    def _read_jobs(self) -> Iterator[Job[Row] | None]:
        """Jobs for the sender; ``None`` after every IDLE_ROWS rows that sent nothing, so a
        long stretch of invalid or duplicate rows never keeps the event loop from signals
        and the answers of requests in flight."""
        path = self.options.input_path
        source = path.name if path is not None else self.options.source_name
        # Bound once: these run for every row.
        payload_of, check, first_seen = self.mapping.payload, self.catalog.check, self.seen.first
        idle = 0
        for row in self.table.rows:
            idle += 1
            if idle % IDLE_ROWS == 0:
                yield None
            try:
                payload = payload_of(row)
                check(payload)
            except RowError as exc:  # RowSkipped too: its status is "skipped"
                self.record(row, Outcome(exc.status, error=str(exc)), reason=exc)
                continue
            key = identify(payload)
            first = first_seen(key.key, row.number)
            if first != row.number:
                self.record(
                    row,
                    Outcome(
                        Status.DUPLICATE, error=f"same activity as row {first}; not sent again"
                    ),
                )
                continue
            if self.options.dry_run and len(self.summary.preview) < PREVIEW_ROWS:
                self.summary.preview.append((row.number, payload))
            idle = 0
            yield Job(row, payload, key, f"{source} row {row.number}")

    def _show_resolved(self, row: Row, payload: dict[str, Any]) -> None:
        """Dry run: the preview shows the ids the lookups found, not placeholders."""
        for index, (number, shown) in enumerate(self.summary.preview):
            if number == row.number:
                # A contact a dry run would create has no id yet: keep saying so.
                kept = {
                    name: shown[name]
                    for name, value in payload.items()
                    if isinstance(shown.get(name), Lookup) and value == DRY_RUN_NEW_CONTACT
                }
                self.summary.preview[index] = (number, {**payload, **kept})

    def record(self, row: Row, outcome: Outcome, reason: RowError | None = None) -> None:
        status = outcome.status
        if self.results is not None:
            self.results.write(
                row.number,
                status,
                row.cells,
                activity_id=outcome.activity_id,
                http_status=outcome.http_status,
                attempts=outcome.attempts,
                error=outcome.error,
            )
        # Set membership, not Status(status).is_error: this runs for every row (a status given
        # as its plain text is found too, a StrEnum member hashes and compares as its text).
        if status not in NOT_A_REASON:
            to_errors = status not in SUCCESS
            if to_errors and self.errors is not None:
                self.errors.write(row.number, row.cells, f"{status}: {outcome.error}")
            self.summary.reasons.add(
                status,
                row.number,
                outcome.error,
                column=reason.column if reason is not None else None,
                code=reason.code if reason is not None else _http_code(outcome),
                error=to_errors,
            )
        self.summary.counts[status] += 1
        self.done += 1
        options = self.options
        if options.on_progress is not None:
            options.on_progress(self.done, self.total)
        if options.on_outcome is not None and self.hook_error is None:
            try:
                options.on_outcome(row, outcome, self.table.header)
            except Exception as exc:
                # Stop sending as after a full disk: in-flight answers still reach the ledger.
                self.hook_error = exc
                raise _HookFailed(f"on_outcome raised {type(exc).__name__}: {exc}") from None

    def _close(self) -> None:
        if self.options.on_progress is not None:
            # The estimate counts blank lines too: the last call says where it really ended.
            self.options.on_progress(self.done, self.done)
        self.seen.close()
        if self.results is not None:
            self.results.close()
        if self.errors is not None:
            self.errors.close()
        self.summary.blank_rows = self.table.blank_rows
        self.summary.elapsed = time.monotonic() - self.started
        if self.errors is not None and self.errors.count:
            self.summary.errors_path = self.errors.path

    def _raise_hook_error(self) -> None:
        """The caller's on_outcome failed: the rows so far are recorded; raise its error."""
        if self.hook_error is not None:
            raise self.hook_error


class _HookFailed(AbortedError):
    """The caller's ``on_outcome`` raised: stop sending (its error is raised at the end)."""


class _Signals:
    """Ctrl-C / SIGTERM during an online run.

    Before sending starts (connecting, preflight, lookups of constants) the run is cancelled:
    nothing was sent, and a second Ctrl-C quits outright. Once the sender runs, it stops
    sending, lets in-flight requests finish and every row is reported. A second Ctrl-C stops at
    once: requests in flight are given up (``uncertain``), the rows not yet sent are written
    ``failed`` without mapping or network, and the run ends as interrupted (exit 130).
    Notices go to ``on_notice``.
    """

    def __init__(
        self,
        enabled: bool,
        on_notice: OnNotice | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.handlers = SignalHandlers(enabled)
        self.on_notice = on_notice
        self.sender: Sender[Row] | None = None
        self.interrupted = ""  # the signal's name, once one came before sending
        self._task: asyncio.Task[Any] | None = None
        self._stop_event = stop
        self._stop_watcher: asyncio.Task[None] | None = None

    def __enter__(self) -> _Signals:
        self._task = asyncio.current_task()
        if self._stop_event is not None:
            self._stop_watcher = asyncio.create_task(self._watch_stop(self._stop_event))
        self.handlers.__enter__()
        if self.handlers.active:
            self.handlers.on_stop_signals(self._stop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop_watcher is not None:
            self._stop_watcher.cancel()
        self.handlers.__exit__(*exc_info)

    async def _watch_stop(self, event: asyncio.Event) -> None:
        """RunOptions.stop: the same graceful stop as a first Ctrl-C."""
        await event.wait()
        name = "a stop request"
        if self.sender is None:  # nothing sent yet: end before sending anything
            self.interrupted = name
            if self._task is not None:
                self._task.cancel()
            return
        self._notice("Stopping: waiting for the requests in flight, then writing the results.")
        self.sender.stop(f"interrupted by {name}", interrupted=True)

    def _stop(self, sig: signal.Signals) -> None:
        # More SIGTERMs change nothing (`timeout` and service managers send SIGTERM to the
        # process and again to its group).
        self.handlers.ignore(signal.SIGTERM)
        name = signal_name(sig)
        if self.sender is None:
            # Nothing sent yet: a second Ctrl-C quits outright.
            self.handlers.release(signal.SIGINT)
            self.interrupted = name
            if self._task is not None:
                self._task.cancel()
            return
        # A second Ctrl-C stops at once, still reporting every row (see _stop_at_once).
        self.handlers.on(signal.SIGINT, self._stop_at_once)
        self._notice(
            f"{name}: stopping. Waiting for the requests in flight, then writing the results"
            " (press Ctrl-C again to stop at once)."
        )
        self.sender.stop(f"interrupted by {name}", interrupted=True)

    def _stop_at_once(self) -> None:
        """The second Ctrl-C: no more waiting for answers; every row is still reported."""
        assert self.sender is not None
        if self.sender.aborted:
            # Signals that arrive while the loop is busy are handled together: this one came
            # after the second Ctrl-C, so it is the third, which quits outright.
            raise KeyboardInterrupt
        # A third Ctrl-C quits outright, leaving the results file short (the ledger holds what
        # was sent, so a rerun is still safe).
        self.handlers.release(signal.SIGINT)
        self._notice(
            "Ctrl-C again: stopping at once. Requests still in flight are reported uncertain,"
            " the rows not sent yet failed (press Ctrl-C once more to quit without writing"
            " them)."
        )
        self.sender.abort(f"{self.sender.stats.stopped_reason}, then stopped at once by Ctrl-C")

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:  # library code never prints: the caller shows it
            self.on_notice(text)


def _with_header_row_hint(
    exc: ColumnsMissing, options: RunOptions, mapping: Mapping, table: Table
) -> MappingError:
    """Say which row the columns are on, when they are all on another one."""
    from importer.infer import locate_columns  # init's module: a run needs it only here

    assert options.input_path is not None  # a file's table
    try:
        row = locate_columns(
            options.input_path,
            mapping.column_names(),
            sheet=table.sheet,
            encoding=table.encoding,
            delimiter=options.delimiter or mapping.source.delimiter,
        )
    except InputError:
        row = None
    if row is None or row == table.header_row:
        return exc
    return MappingError(
        f"{exc}\nThe columns the mapping names are all on row {row} of {options.input_path}:"
        f" add `header_row: {row}` under `source:` in {options.mapping_path}"
        f" (or run with --header-row {row})."
    )


def _check_outputs(
    options: RunOptions, results_path: Path | None, errors_path: Path | None
) -> None:
    if results_path and errors_path and results_path.resolve() == errors_path.resolve():
        raise InputError(
            f"--results and --errors are both {results_path}; give them different names"
        )
    inputs = {
        path.resolve(): kind
        for path, kind in ((options.input_path, "input"), (options.mapping_path, "mapping"))
        if path is not None
    }
    for output in (results_path, errors_path):
        if output is not None and output.resolve() in inputs:
            raise InputError(
                f"{output} is the {inputs[output.resolve()]} file; choose another --results or"
                " --errors path so it is not overwritten"
            )


def _reads_as_other_than_utf8(encoding: str | None) -> bool:
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig")
    except LookupError:
        return True


def _http_code(outcome: Outcome) -> str | None:
    """Eloqua's answers group by status code as well as by message."""
    return None if outcome.http_status is None else f"http-{outcome.http_status}"


def _resolving(
    resolver: Resolver, on_resolved: Callable[[Row, dict[str, Any]], None]
) -> Callable[[Job[Row]], Coroutine[Any, Any, Outcome | None]]:
    """The sender's prepare step: ids for the lookups, then the identity of the result."""

    async def prepare(job: Job[Row]) -> Outcome | None:
        try:
            job.payload = await resolver.resolve(job.payload)
        except LookupFailed as exc:
            return Outcome(exc.status, http_status=exc.http_status, error=str(exc))
        job.fingerprint = identify(job.payload)
        on_resolved(job.key, job.payload)
        return None

    return prepare
