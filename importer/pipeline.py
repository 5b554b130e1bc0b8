"""One import: loader -> mapping -> sender (with the ledger) -> report, for one input file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tqdm import tqdm

from importer.config import Connection
from importer.eloqua import (
    ASSET_TYPES_PATH,
    EloquaClient,
    Timeouts,
    discover_site,
    open_session,
)
from importer.errors import AbortedError, AuthError, InputError, RowError
from importer.ledger import Ledger, LedgerError, default_ledger_path
from importer.loader import Row, Table, open_table
from importer.mapping import Mapping, load_mapping
from importer.report import ErrorsWriter, ResultsWriter, Summary, default_results_path
from importer.sender import Job, Outcome, RetryPolicy, Sender, SendOptions

PREVIEW_ROWS = 3


@dataclass
class RunOptions:
    input_path: Path
    mapping_path: Path
    results_path: Path | None = None
    errors_path: Path | None = None
    sheet: str | int | None = None
    header_row: int | None = None
    encoding: str | None = None
    delimiter: str | None = None
    concurrency: int = 8
    dry_run: bool = False
    progress: bool = False
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    ledger_path: Path | None = None  # None: the per-user default
    retry_uncertain: bool = False
    allow_duplicates: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    stop_grace: float = 30.0
    handle_signals: bool = False  # Ctrl-C / SIGTERM stop the run cleanly (the CLI sets it)


async def run_import(options: RunOptions, connection: Connection | None) -> Summary:
    """Import one file. Raises ImporterError subclasses for problems found before sending.

    ``connection`` may be None only for a dry run.
    """
    mapping = load_mapping(options.mapping_path)
    hints = mapping.source
    with open_table(
        options.input_path,
        sheet=options.sheet if options.sheet is not None else hints.sheet,
        header_row=options.header_row or hints.header_row,
        encoding=options.encoding or hints.encoding,
        delimiter=options.delimiter or hints.delimiter,
    ) as table:
        mapping.bind(table.header, file=str(options.input_path))
        if options.dry_run:
            return _Run(options, mapping, table).dry_run()
        assert connection is not None, "a real run needs a connection"
        async with AsyncExitStack() as stack:
            session = await stack.enter_async_context(
                open_session(options.concurrency, options.timeouts)
            )
            client, site = await connect(session, connection)
            ledger_path = options.ledger_path or default_ledger_path()
            ledger = await stack.enter_async_context(Ledger(ledger_path, site))
            return await _Run(options, mapping, table).send(client, ledger)


async def connect(
    session: aiohttp.ClientSession, connection: Connection
) -> tuple[EloquaClient, str]:
    """Resolve the base URL, check the credentials with one cheap read, name the instance.

    The name keys the ledger: the pod's host and the company (many companies share a pod).
    """
    credentials = connection.credentials
    try:
        if connection.base_url:
            base_url, company = connection.base_url, credentials.company
        else:
            base_url, company = await discover_site(session, connection.login_url, credentials)
        client = EloquaClient(session, base_url, credentials)
        answer = await client.get(ASSET_TYPES_PATH, params={"count": "1"})
    except (aiohttp.ClientError, TimeoutError) as exc:
        where = connection.base_url or connection.login_url
        raise AbortedError(
            f"could not reach Eloqua at {where} ({type(exc).__name__}: {exc}); check the URL"
            " and your network, then run the same command again. Nothing was sent."
        ) from None
    if answer.status == 401:
        raise AuthError(
            f"Eloqua did not accept the credentials for {credentials.describe()} at"
            f" {base_url}. Check ELOQUA_COMPANY, ELOQUA_USERNAME and ELOQUA_PASSWORD (or"
            " ELOQUA_ACCESS_TOKEN). Nothing was sent."
        )
    site = f"{urlsplit(base_url).netloc.lower()}/{(company or 'token').casefold()}"
    return client, site


class _Run:
    """The state of one import: the writers, the counts and the in-file duplicate index."""

    def __init__(self, options: RunOptions, mapping: Mapping, table: Table) -> None:
        self.options = options
        self.mapping = mapping
        self.table = table
        # A dry run must not overwrite the results of a real run: it gets its own names.
        prefix = "dry-run." if options.dry_run else ""
        results_path = options.results_path or default_results_path(
            options.input_path, prefix + "results"
        )
        errors_path = options.errors_path or default_results_path(
            options.input_path, prefix + "errors"
        )
        _check_outputs(options, results_path, errors_path)
        self.summary = Summary(
            input_path=options.input_path,
            results_path=results_path,
            dry_run=options.dry_run,
            header_notes=list(table.header_notes),
            mapping_path=options.mapping_path,
            header_row=options.header_row or mapping.source.header_row,
        )
        # Both files are opened now, so an unwritable path fails before anything is sent.
        self.results = ResultsWriter(results_path, table.header)
        self.errors = ErrorsWriter(errors_path, table.header)
        self.seen: dict[bytes, int] = {}
        self.started = time.monotonic()
        self.progress = tqdm(
            unit=" rows", file=sys.stderr, disable=not options.progress, dynamic_ncols=True
        )

    def dry_run(self) -> Summary:
        try:
            for job in self._jobs():
                if len(self.summary.preview) < PREVIEW_ROWS:
                    self.summary.preview.append((job.key.number, job.payload))
                self.record(job.key, Outcome("valid"))
        finally:
            self._close()
        return self.summary

    async def send(self, client: EloquaClient, ledger: Ledger) -> Summary:
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
            ),
            ledger=ledger,
        )
        try:
            with _stop_on_signals(sender, options.handle_signals):
                stats = await sender.run(self._jobs())
            with contextlib.suppress(LedgerError):  # already reported as the stop reason
                await ledger.flush()
        finally:
            self._close()
        self.summary.stopped_reason = stats.stopped_reason or self.summary.stopped_reason
        self.summary.interrupted = stats.interrupted
        self.summary.throttled = stats.throttled
        self.summary.lowest_concurrency = stats.lowest_concurrency
        self.summary.concurrency = options.concurrency
        return self.summary

    def _jobs(self) -> Iterator[Job[Row]]:
        """Valid, first-seen payloads; invalid rows and repeats are recorded on the way.

        A file that turns unreadable part-way ends the stream: rows before it are still sent
        and reported, and the run ends as stopped.
        """
        sent = 0
        try:
            for job in self._read_jobs():
                sent += 1
                yield job
        except InputError as exc:
            if self.options.dry_run or not sent:
                raise  # nothing went to Eloqua: a plain input error, exit 2
            self.summary.stopped_reason = f"the file could not be read further: {exc}"

    def _read_jobs(self) -> Iterator[Job[Row]]:
        source = self.options.input_path.name
        for row in self.table.rows:
            try:
                payload = self.mapping.payload(row)
            except RowError as exc:
                self.record(row, Outcome("invalid", error=str(exc)))
                continue
            key = fingerprint(payload)
            first = self.seen.setdefault(key, row.number)
            if first != row.number:
                self.record(
                    row, Outcome("duplicate", error=f"same activity as row {first}; not sent again")
                )
                continue
            yield Job(row, payload, key, f"{source} row {row.number}")

    def record(self, row: Row, outcome: Outcome) -> None:
        self.results.write(
            row.number,
            outcome.status,
            row.cells,
            activity_id=outcome.activity_id,
            http_status=outcome.http_status,
            attempts=outcome.attempts,
            error=outcome.error,
        )
        if outcome.status in ("invalid", "rejected", "failed", "uncertain"):
            self.errors.write(row.number, row.cells, f"{outcome.status}: {outcome.error}")
        self.summary.counts[outcome.status] += 1
        self.progress.update()

    def _close(self) -> None:
        self.progress.close()
        self.results.close()
        self.errors.close()
        self.summary.blank_rows = self.table.blank_rows
        self.summary.elapsed = time.monotonic() - self.started
        if self.errors.count:
            self.summary.errors_path = self.errors.path


class _stop_on_signals:
    """Ctrl-C / SIGTERM: stop sending, let in-flight requests finish, report every row.

    A second signal falls back to the default behaviour (stop at once).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, sender: Sender[Row], enabled: bool) -> None:
        self.sender = sender
        self.enabled = enabled and sys.platform != "win32"
        self.loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> None:
        if self.enabled:
            self.loop = asyncio.get_running_loop()
            for sig in self.SIGNALS:
                self.loop.add_signal_handler(sig, self._stop, sig)

    def __exit__(self, *exc_info: object) -> None:
        if self.loop is not None:
            for sig in self.SIGNALS:
                self.loop.remove_signal_handler(sig)

    def _stop(self, sig: signal.Signals) -> None:
        assert self.loop is not None
        for other in self.SIGNALS:
            self.loop.remove_signal_handler(other)
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        print(
            f"\n{name}: stopping. Waiting for the requests in flight, then writing the results"
            " (press Ctrl-C again to quit at once).",
            file=sys.stderr,
        )
        self.sender.stop(f"interrupted by {name}", interrupted=True)


def _check_outputs(options: RunOptions, results_path: Path, errors_path: Path) -> None:
    if results_path.resolve() == errors_path.resolve():
        raise InputError(
            f"--results and --errors are both {results_path}; give them different names"
        )
    inputs = {options.input_path.resolve(): "input", options.mapping_path.resolve(): "mapping"}
    for output in (results_path, errors_path):
        if output.resolve() in inputs:
            raise InputError(
                f"{output} is the {inputs[output.resolve()]} file; choose another --results or"
                " --errors path so it is not overwritten"
            )


def fingerprint(payload: dict[str, Any]) -> bytes:
    """A stable digest of the canonical payload: equal activities, equal fingerprints."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()
