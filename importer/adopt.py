"""A lost ledger: noticed before sending, and rebuilt from results files (``ledger adopt``).

The ledger is what stops a rerun from creating activities again. When it is deleted (a new
laptop, another user, a container), the results file of the last run is often all that is left:
it lists every row with its status, its activity id and its original cells. A run refuses to
send when that file shows rows created that the ledger has never heard of, and ``adopt`` maps
those rows through the mapping again to record their identities as created. Nothing is sent to
Eloqua by either; ``adopt`` only reads (to resolve emails to contact ids and campaign names to
ids, as the original run did).
"""

from __future__ import annotations

import asyncio
import csv
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from importer.config import Connection
from importer.eloqua import ACTIVITY_PATH, EloquaClient, open_session
from importer.errors import AuthError, ConfigError, InputError, RowError, Unauthorized
from importer.fields import Lookup
from importer.identity import Identity, identify
from importer.ledger import Ledger, LedgerLocation
from importer.lookup import DRY_RUN_NEW_CONTACT, LookupFailed, Resolver
from importer.mapping import Mapping, load_mapping
from importer.preflight import Catalog, connect
from importer.report import RESULT_COLUMNS
from importer.retry import RetryPolicy
from importer.status import Status
from importer.table import Cell, Row

#: Statuses of rows that exist in Eloqua, with their activity id in the results.
CREATED = frozenset({Status.CREATED, Status.ALREADY_CREATED})
#: Enough ids to tell "the ledger knows this file" without reading a huge results file whole.
SAMPLE_IDS = 500
#: Rows adopted per ledger transaction (bounded memory however long the file).
BATCH = 5_000
#: Rows that could not be adopted, listed in the report (the rest are counted).
SHOWN_PROBLEMS = 10


def created_ids(results_path: Path, limit: int = SAMPLE_IDS) -> list[str]:
    """Activity ids of rows an earlier run's results file shows created (at most ``limit``).

    A file that is missing, unreadable or not a results file gives none.
    """
    ids: list[str] = []
    try:
        if not stat.S_ISREG(results_path.stat().st_mode):
            return []  # /dev/null, a pipe: nothing an earlier run left
        with results_path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            if tuple(next(reader, ()))[:3] != RESULT_COLUMNS[:3]:
                return []
            for line in reader:
                if len(line) > 2 and line[1] in CREATED and line[2]:
                    ids.append(line[2])
                    if len(ids) >= limit:
                        break
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return ids


#: Ids read back from Eloqua to tell a lost ledger from results of another Eloqua.
READ_BACK = 3


async def refuse_lost_ledger(
    ledger: Ledger,
    results_path: Path,
    mapping_path: Path | None,
    input_name: str = "",
    client: EloquaClient | None = None,
) -> str | None:
    """Stop (exit 2) before sending when the results of an earlier run of this input show
    rows created that the ledger knows nothing of: they would all be created again.

    Before refusing, a few of those ids are read back from this Eloqua (activities can be read,
    never changed): when none of them exists here, the results came from another Eloqua (the
    sandbox tried first, a test instance) and the run goes on; the note returned says so.
    """
    ids = created_ids(results_path)
    if not ids or ledger.knows_any(ids, input_name):
        return None
    if client is not None and await _none_exist(client, ids[:READ_BACK]):
        return (
            f"{results_path} showed rows created in another Eloqua (activity"
            f" {ids[0]} and others do not exist in this one, e.g. a sandbox trial); they are"
            " sent here as new rows"
        )
    shown = f"{len(ids)}+" if len(ids) >= SAMPLE_IDS else str(len(ids))
    raise ConfigError(
        f"{results_path} shows {shown} rows already created in Eloqua, but the ledger"
        f" {ledger.path} knows none of them (was it deleted, or is this another machine or"
        " user?). Sending now would create them again. Nothing was sent. Restore the ledger"
        " from a backup (or point --ledger at it), or rebuild it from the results file:\n"
        f"  eloqua-import ledger adopt {results_path} --mapping {mapping_path or 'MAPPING.yaml'}"
        f" --ledger {ledger.path}\n"
        f"then run the same command again. If those rows were created in another Eloqua (a"
        f" test instance), move {results_path} away and run again."
    )


async def _none_exist(client: EloquaClient, ids: list[str]) -> bool:
    """True only when Eloqua answers 404 for every id; any doubt counts as "they exist"."""
    for activity_id in ids:
        if not activity_id.isdigit():
            return False
        try:
            answer = await client.get(f"{ACTIVITY_PATH}/{activity_id}")
        except (aiohttp.ClientError, TimeoutError):
            return False
        if answer.status != 404:
            return False
    return True


@dataclass
class AdoptReport:
    """What ``ledger adopt`` did."""

    results_path: Path
    ledger_path: LedgerLocation
    site: str = ""
    rows: int = 0  # rows the results file shows created
    adopted: int = 0  # new to the ledger (or made created from pending)
    problems: list[str] = field(default_factory=list)
    unadoptable: int = 0

    def render(self) -> str:
        lines = [
            f"Adopted {self.results_path} into the ledger {self.ledger_path} ({self.site}):",
            f"  rows created     {self.rows:>8}",
            f"  newly recorded   {self.adopted:>8}",
            f"  already known    {self.rows - self.unadoptable - self.adopted:>8}",
        ]
        if self.unadoptable:
            lines.append(f"  not adopted      {self.unadoptable:>8}")
            lines.extend(f"    {problem}" for problem in self.problems)
            if self.unadoptable > len(self.problems):
                lines.append(f"    ... and {self.unadoptable - len(self.problems)} more")
            lines.append(
                "  A rerun would send those rows again: fix the mapping (it must be the one the"
                " run used) and adopt again, or remove them from the input."
            )
        return "\n".join(lines)


async def adopt_results(
    results_path: Path, mapping_path: Path, ledger_path: LedgerLocation, connection: Connection
) -> AdoptReport:
    """Record the created rows of ``results_path`` in the ledger, as the run that wrote it
    would have. Reads from Eloqua (site, types, lookups); sends nothing."""
    mapping = load_mapping(mapping_path)
    report = AdoptReport(results_path, ledger_path)
    with _ResultsRows(results_path) as results:
        mapping.bind(results.header, file=str(results_path))
        async with open_session(4) as session:
            client, report.site, catalog = await connect(session, connection)
            resolver = None
            if mapping.has_lookups:  # dry_run: a contact create_missing would make is not made
                resolver = Resolver(client, RetryPolicy(), 4, dry_run=True)
            async with Ledger(ledger_path, report.site) as ledger:
                batch: list[tuple[Row, str]] = []
                for row, activity_id in results.created():
                    report.rows += 1
                    batch.append((row, activity_id))
                    if len(batch) >= BATCH:
                        await _adopt_batch(batch, mapping, catalog, resolver, ledger, report)
                        batch = []
                await _adopt_batch(batch, mapping, catalog, resolver, ledger, report)
    return report


async def _adopt_batch(
    batch: list[tuple[Row, str]],
    mapping: Mapping,
    catalog: Catalog,
    resolver: Resolver | None,
    ledger: Ledger,
    report: AdoptReport,
) -> None:
    source = report.results_path.name
    identities = await asyncio.gather(
        *(_identity(row, mapping, catalog, resolver) for row, _ in batch)
    )
    entries: list[tuple[Identity, str, str]] = []
    for (row, activity_id), identity in zip(batch, identities, strict=True):
        if isinstance(identity, str):
            report.unadoptable += 1
            if len(report.problems) < SHOWN_PROBLEMS:
                report.problems.append(f"row {row.number}: {identity}")
            continue
        entries.append((identity, activity_id, f"{source} row {row.number}, adopted"))
    report.adopted += ledger.adopt(entries)


async def _identity(
    row: Row, mapping: Mapping, catalog: Catalog, resolver: Resolver | None
) -> Identity | str:
    """The row's identity as the original run computed it, or why it cannot be had."""
    try:
        payload = mapping.payload(row)
        catalog.check(payload)
    except RowError as exc:
        return str(exc)
    if resolver is None:
        return identify(payload)
    try:
        return await _resolved_identity(payload, resolver)
    except LookupFailed as exc:
        return str(exc)
    except Unauthorized:
        raise AuthError("Eloqua answered 401: it no longer accepts the credentials") from None


async def _resolved_identity(payload: dict[str, Any], resolver: Resolver) -> Identity | str:
    contact = payload.get("contactId")
    if isinstance(contact, Lookup):
        contact_id = await resolver.id_of(contact)
        if contact_id == DRY_RUN_NEW_CONTACT:
            return "its contact is not in Eloqua (the run would have created it); not adopted"
        payload = {**payload, "contactId": contact_id}
    try:
        return identify(await resolver.resolve(payload))
    except LookupFailed:
        # Only the contact is part of the identity: a campaign renamed since costs the record
        # of the other fields (to say what differs later), not the row.
        return Identity(identify(payload).key)


class _ResultsRows:
    """A results CSV as the mapping sees it: the input's columns, rows numbered as in the
    input. Read with csv directly, so an input column named like a results column (status)
    keeps its name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        self._reader = csv.reader(self._file)
        try:
            header = next(self._reader, [])
        except (csv.Error, UnicodeDecodeError) as exc:
            self._file.close()
            raise InputError(f"{path} is not a results CSV of eloqua-import ({exc})") from None
        if tuple(header[: len(RESULT_COLUMNS)]) != RESULT_COLUMNS:
            self._file.close()
            raise InputError(
                f"{path} is not a results CSV of eloqua-import: its first columns must be"
                f" {', '.join(RESULT_COLUMNS)}. Give the <input>.results.csv a run wrote"
            )
        self.header = header[len(RESULT_COLUMNS) :]

    def __enter__(self) -> _ResultsRows:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._file.close()

    def created(self) -> Iterator[tuple[Row, str]]:
        """(row, activity id) of each line that shows a row created."""
        width = len(RESULT_COLUMNS)
        try:
            for number, line in enumerate(self._reader, start=2):
                if len(line) < width or line[1] not in CREATED or not line[2]:
                    continue
                cells: list[Cell] = [*line[width:], *[""] * (len(self.header) - len(line) + width)]
                row_number = int(line[0]) if line[0].isdigit() else number
                yield Row(row_number, cells[: len(self.header)]), line[2]
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path} cannot be read further: {exc}") from None
