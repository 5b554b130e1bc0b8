"""One import: loader -> mapping -> sender -> report, for one input file."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from importer.config import Connection
from importer.eloqua import ASSET_TYPES_PATH, EloquaClient, discover_base_url, open_session
from importer.errors import AbortedError, AuthError, InputError, RowError
from importer.loader import Row, Table, open_table
from importer.mapping import Mapping, load_mapping
from importer.report import ErrorsWriter, ResultsWriter, Summary, default_results_path
from importer.sender import Outcome, RetryPolicy, Sender

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
        async with open_session(options.concurrency) as session:
            client = await connect(session, connection)
            return await _Run(options, mapping, table).send(client)


async def connect(session: aiohttp.ClientSession, connection: Connection) -> EloquaClient:
    """Resolve the base URL and check the credentials with one cheap read."""
    try:
        base_url = connection.base_url or await discover_base_url(
            session, connection.login_url, connection.credentials
        )
        client = EloquaClient(session, base_url, connection.credentials)
        answer = await client.get(ASSET_TYPES_PATH, params={"count": "1"})
    except (aiohttp.ClientError, TimeoutError) as exc:
        where = connection.base_url or connection.login_url
        raise AbortedError(
            f"could not reach Eloqua at {where} ({type(exc).__name__}: {exc}); check the URL"
            " and your network, then run the same command again. Nothing was sent."
        ) from None
    if answer.status == 401:
        raise AuthError(
            f"Eloqua did not accept the credentials for {connection.credentials.describe()} at"
            f" {base_url}. Check ELOQUA_COMPANY, ELOQUA_USERNAME and ELOQUA_PASSWORD (or"
            " ELOQUA_ACCESS_TOKEN). Nothing was sent."
        )
    return client


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
        _check_outputs(options.input_path, results_path, errors_path)
        self.summary = Summary(
            input_path=options.input_path,
            results_path=results_path,
            dry_run=options.dry_run,
            header_notes=list(getattr(table, "header_notes", [])),
        )
        self.results = ResultsWriter(results_path, table.header)
        self.errors = ErrorsWriter(errors_path, table.header)
        self.seen: dict[bytes, int] = {}
        self.started = time.monotonic()
        self.progress = tqdm(
            unit=" rows", file=sys.stderr, disable=not options.progress, dynamic_ncols=True
        )

    def dry_run(self) -> Summary:
        try:
            for row, payload in self._payloads():
                if len(self.summary.preview) < PREVIEW_ROWS:
                    self.summary.preview.append((row.number, payload))
                self.record(row, Outcome("valid"))
        finally:
            self._close()
        return self.summary

    async def send(self, client: EloquaClient) -> Summary:
        sender: Sender[Row] = Sender(
            client,
            on_outcome=self.record,
            concurrency=self.options.concurrency,
            policy=self.options.retry_policy,
        )
        try:
            stats = await sender.run(self._payloads())
        finally:
            self._close()
        self.summary.stopped_reason = stats.stopped_reason or self.summary.stopped_reason
        return self.summary

    def _payloads(self) -> Iterator[tuple[Row, dict[str, Any]]]:
        """Valid, first-seen payloads; invalid rows and repeats are recorded on the way.

        A file that turns unreadable part-way (a bad byte deep in a CSV) ends the stream:
        rows before it are still sent and reported, and the run ends as stopped.
        """
        sent = 0
        try:
            for job in self._read_payloads():
                sent += 1
                yield job
        except InputError as exc:
            if self.options.dry_run or not sent:
                raise  # nothing went to Eloqua: a plain input error, exit 2
            self.summary.stopped_reason = f"the file could not be read further: {exc}"

    def _read_payloads(self) -> Iterator[tuple[Row, dict[str, Any]]]:
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
                    row,
                    Outcome(
                        "duplicate",
                        error=f"same activity as row {first}; not sent again",
                    ),
                )
                continue
            yield row, payload

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


def _check_outputs(input_path: Path, results_path: Path, errors_path: Path) -> None:
    if results_path.resolve() == errors_path.resolve():
        raise InputError(
            f"--results and --errors are both {results_path}; give them different names"
        )
    for output in (results_path, errors_path):
        if output.resolve() == input_path.resolve():
            raise InputError(
                f"{output} is the input file; choose another --results/--errors path so the"
                " input is not overwritten"
            )
    # A stale errors file from an earlier run would list rows this run created.
    errors_path.unlink(missing_ok=True)


def fingerprint(payload: dict[str, Any]) -> bytes:
    """A stable digest of the canonical payload: equal activities, equal fingerprints."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()
