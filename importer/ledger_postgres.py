"""The ledger's PostgreSQL backend: one ledger several machines share (``ledger.LedgerStore``).

Imported only when a ``postgresql://`` ledger is used (psycopg 3 is an optional extra).

The same promises as the SQLite file: a commit is durable (PostgreSQL's synchronous commit)
before the request is sent, and one writer at a time decides and records its claims — a
transaction-scoped advisory lock (``pg_advisory_xact_lock``) plays SQLite's ``BEGIN
IMMEDIATE``, so two machines claiming one activity at once never both get ``send``.

The SQL the ledger writes is portable (``?`` placeholders, ``ON CONFLICT``); this module
translates the placeholders and owns what differs: the schema (``BYTEA``, ``DOUBLE
PRECISION``), its version (a ``schema_version`` table), the write lock, and liveness.

Liveness: a run on another machine has no pid we can look at, so every run keeps
``runs.heartbeat_at`` fresh (``HEARTBEAT_EVERY``) on a connection of its own; a run whose
heartbeat is older than ``STALE_AFTER`` is gone. Times are the database server's clock, so
machines with skewed clocks agree.

The URL's password never appears in messages: ``name`` masks it, and error texts from the
driver are scrubbed of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg

from importer.errors import ConfigError
from importer.ledger import mask_url

#: A claim's owner: (owner id, host, pid, pid_start).
Owner = tuple[str, str, int, str | None]

SCHEMA_VERSION = 2  # the SQLite ledger's numbering: the same tables, the same meaning
HEARTBEAT_EVERY = 10.0  # seconds between a live run's (or claim's) heartbeats (ledger.STALE_AFTER)

#: Advisory lock keys (pg_advisory_xact_lock's two-int form: ours, and what it guards).
_LOCK_CLASS = 0x454C51  # "ELQ"
_WRITE_LOCK = 1
_SCHEMA_LOCK = 2
_INBOX_LOCK = 3

_NOW = "extract(epoch from clock_timestamp())"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS activities (
    site        TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    state       TEXT NOT NULL,
    activity_id TEXT,
    run_id      TEXT NOT NULL,
    source      TEXT,
    updated_at  DOUBLE PRECISION NOT NULL,
    prior_state TEXT,
    prior_id    TEXT,
    details     TEXT,
    PRIMARY KEY (site, fingerprint)
)""",
    f"""CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    ended_at     DOUBLE PRECISION,
    pid_start    TEXT,
    heartbeat_at DOUBLE PRECISION NOT NULL DEFAULT {_NOW}
)""",
    """CREATE TABLE IF NOT EXISTS legacy_activities (
    site        TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    state       TEXT NOT NULL,
    activity_id TEXT,
    run_id      TEXT NOT NULL,
    source      TEXT,
    updated_at  DOUBLE PRECISION NOT NULL,
    prior_state TEXT,
    prior_id    TEXT,
    PRIMARY KEY (site, fingerprint)
)""",
    # watch: which watcher owns a file in an inbox's processing/ (see inbox.DatabaseLocks).
    f"""CREATE TABLE IF NOT EXISTS claims (
    inbox        TEXT NOT NULL,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    pid_start    TEXT,
    heartbeat_at DOUBLE PRECISION NOT NULL DEFAULT {_NOW},
    PRIMARY KEY (inbox, name)
)""",
)


class PostgresStore:
    """The ledger in the database at ``url`` (the schema created if missing)."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    heartbeat_every: float | None = HEARTBEAT_EVERY
    select_chunk = 1000

    def __init__(self, url: str, *, keep_advice: str) -> None:
        self.url = url
        self.name = mask_url(url)
        self._secrets = _secrets(url)
        self._side: psycopg.Connection | None = None  # heartbeats, off the writer's transaction
        self._side_lock = threading.RLock()  # inbox_lock holds it around claims
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot connect to the ledger {self.name}: {self.scrub(exc)}. Check the"
                " address, the user and the password (PGPASSWORD or ~/.pgpass), and that the"
                " database exists"
            ) from None
        try:
            self._upgrade()
        except psycopg.Error as exc:
            self._db.close()
            raise ConfigError(
                f"cannot open the ledger {self.name}: {self.scrub(exc)}. {keep_advice}"
            ) from None

    def scrub(self, exc: BaseException | str) -> str:
        text = str(exc).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self._db.close()
        if self._side is not None:
            self._side.close()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _WRITE_LOCK))
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(_sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        with self._db.cursor() as cursor:
            cursor.executemany(_sql(sql), rows)
            return max(cursor.rowcount, 0)

    def scan(self, sql: str, size: int) -> Iterator[list[tuple]]:
        """A whole table, ``size`` rows at a time: a server-side cursor (bounded memory)."""
        with self._db.transaction(), self._db.cursor(name="ledger_scan") as cursor:
            cursor.execute(_sql(sql))
            while rows := cursor.fetchmany(size):
                yield rows

    def run_record(self, run_id: str) -> tuple | None:
        return self._db.execute(
            f"SELECT host, pid, ended_at, pid_start, {_NOW} - heartbeat_at FROM runs"
            " WHERE run_id = %s",
            (run_id,),
        ).fetchone()

    def heartbeat(self, run_id: str) -> None:
        self.side_execute(f"UPDATE runs SET heartbeat_at = {_NOW} WHERE run_id = ?", (run_id,))

    def side_execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A statement on a second connection (autocommit), never inside the writer's
        transaction: heartbeats and claims must not wait for a batch, nor join it."""
        with self._side_lock:
            if self._side is None or self._side.closed:
                self._side = psycopg.connect(self.url, autocommit=True, connect_timeout=30)
            cursor = self._side.execute(_sql(sql), params)
            return cursor.fetchall() if cursor.description else []

    # --- watch's claims (inbox.DatabaseLocks decides; these statements record) -------------

    def claim_file(self, inbox: str, name: str, owner: Owner) -> bool:
        """Record ``owner`` as the owner of a file nobody owns; False if somebody does."""
        return bool(
            self.side_execute(
                "INSERT INTO claims (inbox, name, owner, host, pid, pid_start)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (inbox, name) DO NOTHING RETURNING 1",
                (inbox, name, *owner),
            )
        )

    def claim_holder(self, inbox: str, name: str) -> tuple | None:
        """(owner, host, pid, pid_start, seconds since its heartbeat), or None if free."""
        found = self.side_execute(
            f"SELECT owner, host, pid, pid_start, {_NOW} - heartbeat_at FROM claims"
            " WHERE inbox = ? AND name = ?",
            (inbox, name),
        )
        return found[0] if found else None

    def take_over(self, inbox: str, name: str, stale_owner: str, owner: Owner) -> bool:
        """Replace a gone owner's claim, if it is still that one's (another may be first)."""
        return bool(
            self.side_execute(
                f"UPDATE claims SET owner = ?, host = ?, pid = ?, pid_start = ?,"
                f" heartbeat_at = {_NOW} WHERE inbox = ? AND name = ? AND owner = ? RETURNING 1",
                (*owner, inbox, name, stale_owner),
            )
        )

    def release_file(self, inbox: str, name: str, owner: str) -> None:
        self.side_execute(
            "DELETE FROM claims WHERE inbox = ? AND name = ? AND owner = ?", (inbox, name, owner)
        )

    def beat_claims(self, inbox: str, owner: str, names: list[str]) -> None:
        self.side_execute(
            f"UPDATE claims SET heartbeat_at = {_NOW} WHERE inbox = ? AND owner = ?"
            " AND name = ANY(?)",
            (inbox, owner, names),
        )

    @contextlib.contextmanager
    def inbox_lock(self, inbox: str) -> Iterator[None]:
        """The inbox-wide lock (choosing names in processing/, done/, failed/), across machines."""
        with self._side_lock:
            if self._side is None or self._side.closed:
                self._side = psycopg.connect(self.url, autocommit=True, connect_timeout=30)
            side = self._side
            with side.transaction():
                side.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_CLASS, f"{_INBOX_LOCK}:{inbox}"),
                )
                yield

    def _upgrade(self) -> None:
        """Create the schema, or refuse one written by a newer version; under a lock, so
        machines opening a new ledger at once do it once."""
        with self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_LOCK_CLASS, _SCHEMA_LOCK))
            for statement in SCHEMA:
                self._db.execute(statement)
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] if row else None
            if version is None:
                self._db.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the ledger {self.name} was written by a newer version of eloqua-import"
                    f" (schema {version}; this one knows {SCHEMA_VERSION}): upgrade"
                    " eloqua-import to use it"
                )
            # Later versions: _MIGRATIONS[version:] here, as in ledger_sqlite._upgrade.


def _sql(sql: str) -> str:
    """The ledger's portable SQL (``?`` placeholders) in psycopg's style (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [value for key, value in parse_qsl(parts.query) if key.lower() == "password" and value]
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    return sorted(set(found), key=len, reverse=True)
