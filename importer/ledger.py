"""The idempotency ledger: which activities this machine has already sent to which Eloqua.

Eloqua cannot update or delete an external activity, so a duplicate is permanent. Every
activity is recorded in an embedded SQLite database, keyed by the Eloqua instance and a
fingerprint of its canonical payload:

- ``pending``   written and committed (fsync'd) *before* the request is sent;
- ``created``   Eloqua answered with an id;
- a row that was certainly not created (rejected, failed) is removed, so it may be sent again;
- a ``pending`` row whose run is gone (crash, kill -9, timeout after sending) is *uncertain*:
  it may exist in Eloqua, and it is only resent when the user asks (``--retry-uncertain``).

Writes are group-committed: every claim and outcome that arrives while one commit is being
written goes into the next one, so durability costs one fsync per batch, not per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import operator
import os
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.errors import AbortedError, ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS activities (
    site        TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state       TEXT NOT NULL,          -- pending | created
    activity_id TEXT,
    run_id      TEXT NOT NULL,          -- the run that wrote it last
    source      TEXT,                   -- file and row, to explain a duplicate
    updated_at  REAL NOT NULL,
    prior_state TEXT,                   -- what a deliberate resend (--allow-duplicates,
    prior_id    TEXT,                   --   --retry-uncertain) replaced, restored if it fails
    PRIMARY KEY (site, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at   REAL,                    -- NULL while running, or if it crashed
    pid_start  TEXT                     -- the process's start time, so a reused pid is not
);                                      --   taken for a crashed run that is still alive
"""


class LedgerError(AbortedError):
    """The ledger could not be written: sending must stop (exit 3)."""


def default_ledger_path() -> Path:
    """The per-user state directory (XDG on Linux, Library on macOS, LOCALAPPDATA on Windows)."""
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Application Support"
    else:
        root = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return root / "eloqua-import" / "ledger.sqlite3"


@dataclass(frozen=True)
class Claim:
    """What the ledger says about one activity before it is sent.

    ``decision`` is ``send``, ``already_created``, ``uncertain``, ``in_progress`` (another
    live run is sending the same activity right now) or ``duplicate`` (this run already has).
    """

    decision: str
    activity_id: str = ""
    source: str = ""


_SELECT_CHUNK = 500  # fingerprints per SELECT ... IN (...): under SQLite's parameter limit


@dataclass(slots=True)
class _Op:
    kind: str  # claim | created | forget
    fingerprint: bytes
    source: str = ""
    activity_id: str = ""
    force: bool = False
    retry_uncertain: bool = False
    future: asyncio.Future[Claim] | None = None


class Ledger:
    """One run's view of the ledger file. Use as ``async with Ledger(path, site) as ledger``."""

    def __init__(self, path: Path, site: str) -> None:
        self.path = path
        self.site = site
        self.run_id = uuid.uuid4().hex
        self._ops: list[_Op] = []
        self._wake = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._db: sqlite3.Connection | None = None
        self._failure: LedgerError | None = None
        self.commits = 0

    async def __aenter__(self) -> Ledger:
        self._db = _connect(self.path)
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, NULL, ?)",
                    (
                        self.run_id,
                        socket.gethostname(),
                        os.getpid(),
                        time.time(),
                        _process_start(os.getpid()),
                    ),
                )
        except sqlite3.Error as exc:
            self._db.close()
            raise LedgerError(
                f"cannot write the ledger {self.path}: {exc}; free some disk space or choose"
                " another location with --ledger PATH. Nothing was sent."
            ) from None
        _OPEN_RUNS.add(self.run_id)
        self._committer = asyncio.create_task(self._commit_loop())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._wake.set()
        if self._committer is not None:
            await self._committer
        _OPEN_RUNS.discard(self.run_id)
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error), self._db:
                self._db.execute(
                    "UPDATE runs SET ended_at = ? WHERE run_id = ?", (time.time(), self.run_id)
                )
            self._db.close()

    # --- the API the pipeline uses ---------------------------------------------------------

    def lookup(self, fingerprint: bytes) -> Claim:
        """Read-only: what a claim would decide (for dry runs)."""
        assert self._db is not None
        found = self._db.execute(
            "SELECT state, activity_id, run_id, source, prior_state, prior_id FROM activities"
            " WHERE site = ? AND fingerprint = ?",
            (self.site, fingerprint),
        ).fetchone()
        return self._judge(found, retry_uncertain=False) or Claim("send")

    async def claim(
        self,
        fingerprint: bytes,
        source: str,
        *,
        force: bool = False,
        retry_uncertain: bool = False,
    ) -> Claim:
        """Decide whether to send; if so, the ``pending`` record is durable when this returns.

        ``force`` (--allow-duplicates) sends even if the ledger says it was created.
        """
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._push(
            _Op(
                "claim",
                fingerprint,
                source,
                force=force,
                retry_uncertain=retry_uncertain,
                future=future,
            )
        )
        return await future

    def created(self, fingerprint: bytes, activity_id: str) -> None:
        """Eloqua created it (committed with the next batch, before the run ends)."""
        self._push(_Op("created", fingerprint, activity_id=activity_id))

    def not_created(self, fingerprint: bytes) -> None:
        """Certainly not created (rejected, or failed before reaching Eloqua): may be resent."""
        self._push(_Op("forget", fingerprint))

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed."""
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        self._push(_Op("flush", b"", future=future))
        await future

    # --- group commit ----------------------------------------------------------------------

    def _push(self, op: _Op) -> None:
        if self._failure is not None:
            self._fail([op])
            return
        if self._closing and op.kind != "flush":
            raise RuntimeError("ledger is closed")
        self._ops.append(op)
        self._wake.set()

    def _fail(self, ops: Iterable[_Op]) -> None:
        for op in [*ops, *self._ops]:
            if op.future is not None and not op.future.done():
                op.future.set_exception(self._failure or LedgerError("ledger failed"))
        self._ops = []

    async def _commit_loop(self) -> None:
        while True:
            if not self._ops:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._ops = self._ops, []
            try:
                # The fsync happens off the event loop, so requests keep flowing meanwhile.
                results = await asyncio.to_thread(self._commit, batch)
            except (sqlite3.Error, OSError) as exc:
                self._failure = LedgerError(
                    f"cannot write the ledger {self.path}: {exc}. Nothing more is sent; free"
                    " some disk space or choose another --ledger, then rerun the same command"
                )
                self._fail(batch)
                return
            for op, result in zip(batch, results, strict=True):
                if op.future is not None and not op.future.done():
                    op.future.set_result(result)

    def _commit(self, batch: list[_Op]) -> list[Claim]:
        """One transaction for the batch; consecutive ops of one kind share their statements.

        Per-row statements would hold the GIL for most of their time, competing with the
        event loop; a few ``executemany`` calls per batch keep the Python part small.
        """
        assert self._db is not None
        results: list[Claim] = []
        now = time.time()
        with self._db:  # one transaction: BEGIN IMMEDIATE ... COMMIT
            self._db.execute("BEGIN IMMEDIATE")
            for kind, group in itertools.groupby(batch, key=operator.attrgetter("kind")):
                ops = list(group)
                if kind == "claim":
                    results.extend(self._apply_claims(ops, now))
                    continue
                if kind == "created":
                    self._db.executemany(
                        "UPDATE activities SET state = 'created', activity_id = ?,"
                        " updated_at = ?, prior_state = NULL, prior_id = NULL"
                        " WHERE site = ? AND fingerprint = ?",
                        [(op.activity_id, now, self.site, op.fingerprint) for op in ops],
                    )
                elif kind == "forget":
                    keys = [(self.site, op.fingerprint, self.run_id) for op in ops]
                    # A fresh claim goes; a resend that failed gives back what it replaced
                    # (a created record stays created; an uncertain one stays uncertain).
                    self._db.executemany(
                        "DELETE FROM activities WHERE site = ? AND fingerprint = ?"
                        " AND state = 'pending' AND run_id = ? AND prior_state IS NULL",
                        keys,
                    )
                    self._db.executemany(
                        "UPDATE activities SET state = 'created', activity_id = prior_id,"
                        " prior_state = NULL, prior_id = NULL WHERE site = ?"
                        " AND fingerprint = ? AND run_id = ? AND prior_state = 'created'",
                        keys,
                    )
                results.extend(Claim("send") for _ in ops)
        self.commits += 1
        return results

    def _apply_claims(self, ops: list[_Op], now: float) -> list[Claim]:
        """Decide claims in order; a claim sees the ones before it in the same group."""
        assert self._db is not None
        found = self._find({op.fingerprint for op in ops})
        verdicts = []
        pending = []
        for op in ops:
            verdict = self._judge(found.get(op.fingerprint), retry_uncertain=op.retry_uncertain)
            if verdict is not None and not (op.force and verdict.decision == "already_created"):
                verdicts.append(verdict)
                continue
            found[op.fingerprint] = ("pending", None, self.run_id, op.source, None, None)
            pending.append((self.site, op.fingerprint, self.run_id, op.source, now))
            verdicts.append(Claim("send"))
        self._db.executemany(
            "INSERT INTO activities VALUES (?, ?, 'pending', NULL, ?, ?, ?, NULL, NULL)"
            " ON CONFLICT (site, fingerprint) DO UPDATE SET state = 'pending',"
            " activity_id = NULL, run_id = excluded.run_id, source = excluded.source,"
            " updated_at = excluded.updated_at,"
            # Resending an unanswered resend keeps what the first resend replaced.
            " prior_state = CASE WHEN activities.state = 'pending'"
            " AND activities.prior_state IS NOT NULL THEN activities.prior_state"
            " ELSE activities.state END,"
            " prior_id = CASE WHEN activities.state = 'pending'"
            " AND activities.prior_state IS NOT NULL THEN activities.prior_id"
            " ELSE activities.activity_id END",
            pending,
        )
        return verdicts

    def _find(self, fingerprints: set[bytes]) -> dict[bytes, tuple]:
        """fingerprint -> (state, activity_id, run_id, source, prior_state, prior_id)."""
        assert self._db is not None
        found: dict[bytes, tuple] = {}
        keys = list(fingerprints)
        for start in range(0, len(keys), _SELECT_CHUNK):
            chunk = keys[start : start + _SELECT_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT fingerprint, state, activity_id, run_id, source, prior_state, prior_id"
                f" FROM activities WHERE site = ? AND fingerprint IN ({marks})",
                (self.site, *chunk),
            )
            found.update((row[0], row[1:]) for row in rows)
        return found

    def _judge(self, found: tuple | None, *, retry_uncertain: bool) -> Claim | None:
        """None: nothing stands in the way of sending."""
        if found is None:
            return None
        state, activity_id, run_id, source, prior_state, prior_id = found
        if run_id == self.run_id:
            # Two rows of this run became the same activity (e.g. two emails, one contact).
            return Claim("duplicate", activity_id or "", source or "")
        if state == "created":
            return Claim("already_created", activity_id or "", source or "")
        if self._run_alive(run_id):
            return Claim("in_progress", "", source or "")
        if prior_state == "created":
            # A deliberate resend (--allow-duplicates) got no answer: the first copy exists.
            return Claim("already_created", prior_id or "", source or "")
        return None if retry_uncertain else Claim("uncertain", "", source or "")

    def _run_alive(self, run_id: str) -> bool:
        assert self._db is not None
        run = self._db.execute(
            "SELECT host, pid, ended_at, pid_start FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if run is None or run[2] is not None or run[0] != socket.gethostname():
            # Ended, or on another machine: we cannot tell, and must not block forever.
            return False
        if run[1] == os.getpid():
            return run_id in _OPEN_RUNS  # this process: alive only if that run is still open
        started = _process_start(run[1])
        if started is not None and run[3] is not None and started != run[3]:
            return False  # the pid now belongs to another process
        return _pid_alive(run[1])


#: Runs open in this process (a pid alone cannot tell them from a crashed run's).
_OPEN_RUNS: set[str] = set()


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def check_ledger(path: Path) -> None:
    """Open (creating if need be) the ledger at ``path``; ConfigError if it is unusable."""
    _connect(path).close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in _commit).
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        _use_wal(db)
        # FULL: a commit is on disk before we send, even if the machine loses power.
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        _add_missing_columns(db)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            f"cannot open the ledger {path}: {exc}; choose another location with --ledger PATH"
        ) from None
    return db


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Ledgers written by an earlier version lack the newer columns: add them."""
    for table, column in (
        ("activities", "prior_state"),
        ("activities", "prior_id"),
        ("runs", "pid_start"),
    ):
        names = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in names:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
            except sqlite3.OperationalError as exc:  # another process added it meanwhile
                if "duplicate column" not in str(exc):
                    raise


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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class FirstSeen:
    """The row that first had each fingerprint (in-file duplicates), in bounded memory.

    A dict of every fingerprint costs about 120 bytes a row (120 MB per million rows). Here the
    most recent ``in_memory`` fingerprints stay in a dict; older ones move to a private
    temporary SQLite database on disk (removed on close) with a bounded page cache, behind a
    fixed-size Bloom filter so that a new fingerprint rarely costs a disk lookup.
    """

    BLOOM_BITS = 1 << 27  # 16 MiB: under 1% false positives up to about 10 million rows

    def __init__(self, in_memory: int = 100_000, cache_kib: int = 16_384) -> None:
        self._recent: dict[bytes, int] = {}
        self._in_memory = in_memory
        self._cache_kib = cache_kib
        self._db: sqlite3.Connection | None = None
        self._bloom = bytearray()

    def first(self, fingerprint: bytes, row: int) -> int:
        """The row that first had ``fingerprint``: ``row`` itself when it is new."""
        first = self._recent.get(fingerprint)
        if first is not None:
            return first
        if self._db is not None and self._maybe_spilled(fingerprint):
            found = self._db.execute(
                "SELECT row FROM seen WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
            if found is not None:
                return found[0]
        self._recent[fingerprint] = row
        if len(self._recent) >= self._in_memory:
            self._spill()
        return row

    def _spill(self) -> None:
        if self._db is None:
            self._db = sqlite3.connect("", isolation_level=None)  # "": a private temp file
            self._db.execute(f"PRAGMA cache_size = -{self._cache_kib}")
            self._db.execute(
                "CREATE TABLE seen (fingerprint BLOB PRIMARY KEY, row INTEGER) WITHOUT ROWID"
            )
            self._bloom = bytearray(self.BLOOM_BITS // 8)
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO seen VALUES (?, ?)", self._recent.items())
        self._db.execute("COMMIT")
        bloom = self._bloom
        for fingerprint in self._recent:
            for bit in self._bits(fingerprint):
                bloom[bit >> 3] |= 1 << (bit & 7)
        self._recent = {}

    def _maybe_spilled(self, fingerprint: bytes) -> bool:
        bloom = self._bloom
        return all(bloom[bit >> 3] & (1 << (bit & 7)) for bit in self._bits(fingerprint))

    def _bits(self, fingerprint: bytes) -> tuple[int, int, int]:
        # A fingerprint is a hash already: three slices of it are three independent positions.
        mask = self.BLOOM_BITS - 1
        return (
            int.from_bytes(fingerprint[0:4]) & mask,
            int.from_bytes(fingerprint[4:8]) & mask,
            int.from_bytes(fingerprint[8:12]) & mask,
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def fingerprint(payload: dict[str, Any]) -> bytes:
    """A stable digest of the canonical payload: equal activities, equal fingerprints.

    A value still to be looked up (an email) counts by its normalised key, so two rows with the
    same email are the same activity before the lookup, too.
    """
    canonical = _CANONICAL.encode(payload)
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).digest()


def _lookup_key(value: Any) -> str:
    cache_key = getattr(value, "cache_key", None)
    if cache_key is None:
        raise TypeError(f"cannot fingerprint {value!r}")
    return "lookup:" + ":".join(cache_key)


# One encoder for every row: json.dumps with options builds a new one per call. Changing
# these options would change every fingerprint, and so what earlier runs' ledgers recognise.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_lookup_key
)
