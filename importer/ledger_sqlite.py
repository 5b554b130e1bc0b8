"""The ledger's SQLite backend: one file on this machine (``ledger.LedgerStore``).

Durability: WAL with ``synchronous=FULL``, so a commit is on disk before the request is sent.
The write lock is SQLite's own (``BEGIN IMMEDIATE``): one writer at a time across processes,
so a claim's decision and its pending record are one step. The schema carries a version
(``PRAGMA user_version``); older ledgers are upgraded in place, under that lock.

SQLite on a network share is unsafe (its locks are not reliable there): for a ledger several
machines share, use the PostgreSQL backend (``ledger_postgres``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from importer.errors import ConfigError

#: The schema version in ``PRAGMA user_version``. 0: the ledgers before versioning (the
#: first release lacked runs.ended_at, runs.pid_start and activities.prior_*); 1: with those
#: columns; 2: activity identity and normalised site keys, earlier entries in legacy_activities.
SCHEMA_VERSION = 2
CACHE_KIB = 16_384  # the page cache's bound
CHECKPOINT_PAGES = 4_000  # WAL pages between automatic checkpoints (16 MiB at 4 KiB a page)
MMAP_BYTES = 128 << 20  # the part of the file read through a memory map

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS activities (
    site        TEXT NOT NULL,          -- normalise_site(): the pod's host and the company
    fingerprint BLOB NOT NULL,          -- identify(): what the activity is
    state       TEXT NOT NULL,          -- pending | created
    activity_id TEXT,
    run_id      TEXT NOT NULL,          -- the run that wrote it last
    source      TEXT,                   -- file and row, to explain a duplicate
    updated_at  REAL NOT NULL,
    prior_state TEXT,                   -- what a deliberate resend (--allow-duplicates,
    prior_id    TEXT,                   --   --retry-uncertain) replaced, restored if it fails
    details     TEXT,                   -- digests of the other fields (JSON), NULL if unknown
    PRIMARY KEY (site, fingerprint)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,                    -- NULL while running, or if it crashed
    pid_start  TEXT                     -- the process's start time, so a reused pid is not
)""",  #                                   taken for a crashed run that is still alive
    # Entries of schema 0/1, keyed by a fingerprint of the whole payload (legacy_fingerprint).
    """CREATE TABLE IF NOT EXISTS legacy_activities (
    site        TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state       TEXT NOT NULL,
    activity_id TEXT,
    run_id      TEXT NOT NULL,
    source      TEXT,
    updated_at  REAL NOT NULL,
    prior_state TEXT,
    prior_id    TEXT,
    PRIMARY KEY (site, fingerprint)
) WITHOUT ROWID""",
)


class SqliteStore:
    """The ledger file at ``path`` (created if missing, upgraded if old)."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    heartbeat_every: float | None = None  # liveness by pid: a file ledger is one machine's
    select_chunk = 500  # keys per SELECT ... IN (...): under SQLite's parameter limit

    def __init__(self, path: Path, *, keep_advice: str) -> None:
        self.path = path
        self.name = str(path)
        self._db = _connect(path, keep_advice)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """One transaction holding the write lock: commit on success, roll back on error."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Rows changed."""
        return self._db.executemany(sql, rows).rowcount

    def scan(self, sql: str, size: int) -> Iterator[list[tuple]]:
        """A whole table, ``size`` rows at a time (bounded memory)."""
        cursor = self._db.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows

    def run_record(self, run_id: str) -> tuple | None:
        """(host, pid, ended_at, pid_start, seconds since its heartbeat or None)."""
        return self._db.execute(
            "SELECT host, pid, ended_at, pid_start, NULL FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()

    def heartbeat(self, run_id: str) -> None:  # pragma: no cover - heartbeat_every is None
        """Liveness on one machine is the pid's."""


def _connect(path: Path, keep_advice: str) -> sqlite3.Connection:
    try:
        existed = path.exists()
    except OSError:  # e.g. a folder we may not read: it may well hold a ledger
        existed = True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in write()).
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        _use_wal(db)
        # FULL: a commit is on disk before we send, even if the machine loses power.
        db.execute("PRAGMA synchronous=FULL")
        # Fingerprints are hashes: every row lands on a random page. A bigger page cache (up
        # to 16 MiB) and a bigger WAL between checkpoints (16 MiB; SQLite's 4 MiB default
        # copied the same pages back again and again) cut a group commit's cost per row by
        # about a tenth. Durability is the WAL's fsync at each commit, unchanged.
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        # Lookups read pages through a memory map instead of a system call each (a third of
        # a dry run's ledger time at a million entries). Bounded: its pages count in the
        # process's memory while used, and the OS takes them back when it needs to. Writes
        # still go through the WAL.
        db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        _upgrade(db, path)
    except (OSError, sqlite3.Error) as exc:
        if not existed:  # nothing to lose yet: another place is as good
            advice = "check the folder exists and is writable, or choose another --ledger PATH"
        else:
            advice = keep_advice
        raise ConfigError(f"cannot open the ledger {path}: {exc}. {advice}") from None
    return db


def _upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Create the schema, or bring an older ledger's up to SCHEMA_VERSION in place.

    Under BEGIN IMMEDIATE (the write lock), with the version read again inside it: of two
    processes opening an old ledger at once, the second finds the work done.
    """
    if _version(db, path) == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db, path)
        if version < SCHEMA_VERSION:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "activities" in tables:  # a ledger written by an earlier version
                for migrate in _MIGRATIONS[version:]:
                    migrate(db)
            for statement in SCHEMA:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _version(db: sqlite3.Connection, path: Path) -> int:
    # A statement on sqlite_master checks this connection's copy of the schema against the
    # file's and reloads it if another process has just upgraded it (PRAGMA user_version does
    # not, and statements compiled against the stale copy would fail).
    db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"the ledger {path} was written by a newer version of eloqua-import (schema"
            f" {version}; this one knows {SCHEMA_VERSION}): upgrade eloqua-import to use it"
        )
    return version


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Schema 0 -> 1: the ledgers before versioning lack some of these columns (the first
    release had none of them)."""
    for table, column, kind in (
        ("activities", "prior_state", "TEXT"),
        ("activities", "prior_id", "TEXT"),
        ("runs", "ended_at", "REAL"),
        ("runs", "pid_start", "TEXT"),
    ):
        names = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in names:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _keep_as_legacy(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: whole-payload entries move to legacy_activities, under normalised sites.

    Two old keys of one site (``h:443/acme`` and ``h/acme``) may both hold an entry for the
    same payload: a created one wins over a pending one.
    """
    from importer.ledger import normalise_site

    db.create_function("normalise_site", 1, normalise_site, deterministic=True)
    db.execute(SCHEMA[2])
    db.execute(
        "INSERT OR IGNORE INTO legacy_activities SELECT normalise_site(site), fingerprint,"
        " state, activity_id, run_id, source, updated_at, prior_state, prior_id"
        " FROM activities ORDER BY state = 'created' DESC"
    )
    db.execute("DROP TABLE activities")


#: _MIGRATIONS[n] upgrades schema n to n + 1.
_MIGRATIONS = (_add_missing_columns, _keep_as_legacy)


def _use_wal(db: sqlite3.Connection, attempts: int = 50) -> None:
    """Switch to WAL. SQLite answers "database is locked" at once (no busy wait) when another
    process is creating the same new ledger at that moment, so try again for a few seconds."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)
