"""``ledger copy SRC DST``: move a ledger between a SQLite file and PostgreSQL (either way).

What the copy promises:

- Nothing in DST is lost or overwritten: a DST entry is only ever promoted from ``pending`` to
  ``created`` (SRC knows the answer DST missed); a created entry keeps its id.
- A DST that holds entries SRC does not know (another ledger's) is refused, unless ``merge``:
  copying into it would mix two ledgers' histories without anyone deciding so.
- Idempotent: copying again adds nothing and is not refused (DST then holds only SRC's
  entries).
- Runs are copied too, so a pending entry stays judged by the run that wrote it (a run gone is
  uncertain, as before the copy).

Rows move in bounded batches (``BATCH``), each batch one DST transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from importer.errors import ConfigError
from importer.ledger import LedgerLocation, LedgerStore, open_store

BATCH = 1000

#: table -> its columns, in the order both backends' schemas declare them.
_ENTRY_COLUMNS = {
    "activities": (
        "site", "fingerprint", "state", "activity_id", "run_id", "source", "updated_at",
        "prior_state", "prior_id", "details",
    ),
    "legacy_activities": (
        "site", "fingerprint", "state", "activity_id", "run_id", "source", "updated_at",
        "prior_state", "prior_id",
    ),
}  # fmt: skip
_RUN_COLUMNS = ("run_id", "host", "pid", "started_at", "ended_at", "pid_start")


@dataclass
class CopyReport:
    source: LedgerLocation
    target: LedgerLocation
    read: dict[str, int] = field(default_factory=dict)  # entries read from SRC, per table
    written: dict[str, int] = field(default_factory=dict)  # new or promoted in DST
    runs: int = 0

    def render(self) -> str:
        lines = [f"Copied the ledger {self.source} to {self.target}:"]
        for table, label in (("activities", "entries"), ("legacy_activities", "older entries")):
            lines.append(
                f"  {label:<14} {self.read.get(table, 0)} read,"
                f" {self.written.get(table, 0)} new or updated"
            )
        lines.append(f"  runs           {self.runs} new")
        if not any(self.written.values()):
            lines.append("  (the target already had all of them: nothing to do)")
        return "\n".join(lines)


def copy_ledger(
    source: LedgerLocation, target: LedgerLocation, *, merge: bool = False
) -> CopyReport:
    """Copy every entry and run of ``source`` into ``target`` (created if missing)."""
    if str(source) == str(target) and type(source) is type(target):
        raise ConfigError(f"the ledger {source} cannot be copied onto itself")
    if isinstance(source, Path) and not source.exists():
        # Opening it would create an empty ledger there, and the copy would "succeed" with
        # nothing in it: a mistyped SRC must not look like a moved ledger.
        raise ConfigError(f"there is no ledger at {source}: check SRC (nothing was copied)")
    report = CopyReport(source, target)
    src = open_store(source)
    try:
        dst = open_store(target)
        try:
            if not merge:
                _refuse_foreign_entries(src, dst, report)
            for table, columns in _ENTRY_COLUMNS.items():
                report.read[table], report.written[table] = _copy_entries(src, dst, table, columns)
            report.runs = _copy_runs(src, dst)
        except dst.errors as exc:
            raise ConfigError(f"cannot write the ledger {target}: {exc}") from None
        finally:
            dst.close()
    finally:
        src.close()
    return report


def _batches(store: LedgerStore, sql: str) -> Iterator[list[tuple]]:
    for rows in store.scan(sql, BATCH):
        yield [tuple(row) for row in rows]


def _refuse_foreign_entries(src: LedgerStore, dst: LedgerStore, report: CopyReport) -> None:
    for table in _ENTRY_COLUMNS:
        for rows in _batches(dst, f"SELECT site, fingerprint FROM {table}"):
            for site in {site for site, _ in rows}:
                keys = [bytes(key) for s, key in rows if s == site]
                marks = ", ".join("?" * len(keys))
                known = src.execute(
                    f"SELECT count(*) FROM {table} WHERE site = ? AND fingerprint IN ({marks})",
                    (site, *keys),
                ).fetchone()[0]
                if known < len(keys):
                    raise ConfigError(
                        f"the ledger {report.target} already holds entries that {report.source}"
                        " does not know (another ledger's?); copying would mix the two. Copy"
                        " into an empty ledger, or add --merge to keep both (an entry created"
                        " in either stays created)"
                    )


def _copy_entries(
    src: LedgerStore, dst: LedgerStore, table: str, columns: tuple[str, ...]
) -> tuple[int, int]:
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    # A created entry is never replaced; a pending one takes SRC's answer when SRC has one.
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (site, fingerprint) DO"
        f" UPDATE SET state = excluded.state, activity_id = excluded.activity_id,"
        f" run_id = excluded.run_id, source = excluded.source, updated_at = excluded.updated_at,"
        f" prior_state = NULL, prior_id = NULL"
        f" WHERE {table}.state != 'created' AND excluded.state = 'created'"
    )
    read = written = 0
    for rows in _batches(src, f"SELECT {names} FROM {table}"):
        rows = [(row[0], bytes(row[1]), *row[2:]) for row in rows]
        with dst.write():
            written += dst.executemany(sql, rows)
        read += len(rows)
    return read, written


def _copy_runs(src: LedgerStore, dst: LedgerStore) -> int:
    names = ", ".join(_RUN_COLUMNS)
    marks = ", ".join("?" * len(_RUN_COLUMNS))
    sql = f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT (run_id) DO NOTHING"
    written = 0
    for rows in _batches(src, f"SELECT {names} FROM runs"):
        with dst.write():
            written += dst.executemany(sql, rows)
    return written
