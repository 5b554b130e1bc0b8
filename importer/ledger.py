"""The idempotency ledger: which activities have already been sent to which Eloqua.

Eloqua cannot update or delete an external activity, so a duplicate is permanent. Every
activity is recorded in the ledger, keyed by the Eloqua instance and a fingerprint of what the
activity is. The ledger is a SQLite file (``ledger_sqlite``) or, for several machines, a
PostgreSQL database (``ledger_postgres``, a ``postgresql://`` location): one ``Ledger`` with
its decisions and group commit here, the storage behind ``LedgerStore``, where all SQL that
differs between the two lives.

- ``pending``   written and committed (fsync'd) *before* the request is sent;
- ``created``   Eloqua answered with an id;
- a row that was certainly not created (rejected, failed) is removed, so it may be sent again;
- a ``pending`` row whose run is gone (crash, kill -9, timeout after sending) is *uncertain*:
  it may exist in Eloqua, and it is only resent when the user asks (``--retry-uncertain``).

Writes are group-committed by one writer thread: every claim and outcome that arrives while
one commit is being written goes into the next one (and ops still arriving back to back, within
a few turns of the event loop, join it), so durability costs one fsync per batch, not per row.
When answers come several per commit (a fast Eloqua), a commit also waits for the answers of
the requests on the wire, until as few are left as the loop answers while a commit runs (all
measured, bounded by a few commits' time): fuller, fewer commits, the loop still busy.
A batch's ops share their statements: its claims, then its created, then its forgets, cut into
segments wherever that order would differ from applying them one by one.

An activity is identified by what it is (``importer.identity``): the contact, asset type,
asset name, activity type and date, on one site. Its other fields (name, campaign, field values) are
kept as short digests, so a rerun with a changed name is ``already_created`` and says what
differs. Entries written by versions that fingerprinted the whole payload are kept in
``legacy_activities`` and still stop a rerun of the same rows. The schema carries a version
(the store's); older ledgers are upgraded in place, under a write lock.

A ``pending`` row's run is alive while its process lives (same machine: pid and start time)
or, on another machine, while its heartbeat is fresh (``STALE_AFTER``; only a shared ledger
keeps heartbeats, a file ledger cannot tell and takes it as gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import queue
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from importer import ledger_sqlite
from importer.errors import AbortedError, ConfigError
from importer.identity import Identity, differing

SCHEMA_VERSION = ledger_sqlite.SCHEMA_VERSION


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


#: What the ledger says about an activity before it is sent (see Claim).
Decision = Literal["send", "already_created", "uncertain", "in_progress", "duplicate"]
#: The writer task's operations: record a claim, record a creation, forget a claim, or flush.
OpKind = Literal["claim", "created", "forget", "flush"]


@dataclass(frozen=True)
class Claim:
    """What the ledger says about one activity before it is sent.

    ``decision`` is ``send``, ``already_created``, ``uncertain``, ``in_progress`` (another
    live run is sending the same activity right now) or ``duplicate`` (this run already has).
    """

    decision: Decision
    activity_id: str = ""
    source: str = ""
    #: already_created: the fields (name, campaignId, fieldValues...) that differ from what
    #: was created (Eloqua cannot update them).
    differs: tuple[str, ...] = ()


def _parts(fingerprint: bytes | Identity) -> Identity:
    """A bare fingerprint (tests, library callers) is an identity without details."""
    return fingerprint if isinstance(fingerprint, Identity) else Identity(fingerprint)


#: The environment variable naming the ledger when --ledger is not given (run, watch, ui,
#: ledger adopt and the library API).
LEDGER_ENV = "ELOQUA_IMPORT_LEDGER"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class LedgerURL:
    """A ``postgresql://`` ledger. Shown (str, repr, messages) with its password masked."""

    url: str = field(repr=False)

    def __str__(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"LedgerURL({str(self)!r})"


#: Where a ledger lives: a SQLite file, or a PostgreSQL database.
LedgerLocation = Path | LedgerURL


def ledger_location(text: str | os.PathLike[str] | LedgerURL) -> LedgerLocation:
    """``--ledger``'s value: a ``postgresql://`` URL, else a file path."""
    if isinstance(text, LedgerURL | Path):
        return text
    raw = os.fspath(text)
    if raw.lower().startswith(POSTGRES_SCHEMES):
        _check_url(raw)
        return LedgerURL(raw)
    return Path(raw)


def _check_url(url: str) -> None:
    """ConfigError (the password masked) for a URL that cannot be taken apart: it would
    otherwise fail later, as an "unexpected error", after Eloqua was contacted. (The port is
    left to libpq: ``host1:5432,host2:5432`` is a valid list of servers.)"""
    try:
        urlsplit(url)
    except ValueError as exc:
        raise ConfigError(
            f"cannot read the ledger URL {mask_url(url)} ({exc}): write it as"
            " postgresql://USER@HOST:PORT/DATABASE"
        ) from None


def default_ledger(environ: Mapping[str, str] | None = None) -> LedgerLocation:
    """ELOQUA_IMPORT_LEDGER if set, else the per-user ledger file."""
    value = (os.environ if environ is None else environ).get(LEDGER_ENV, "").strip()
    return ledger_location(value) if value else default_ledger_path()


def mask_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) as ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # malformed (an unclosed '['): where its password is, is unknown
        return f"{url.partition('://')[0]}://***"
    if parts.password is None and "password=" not in parts.query.lower():
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}:***@{host}" if parts.password is not None else None
    query = "&".join(
        f"{item.partition('=')[0]}=***" if item.partition("=")[0].lower() == "password" else item
        for item in parts.query.split("&")
    )
    return parts._replace(netloc=netloc or parts.netloc, query=query).geturl()


class LedgerStore(Protocol):
    """Where the ledger's rows live: ``ledger_sqlite.SqliteStore`` or
    ``ledger_postgres.PostgresStore``. SQL is written with ``?`` placeholders and portable
    syntax; the store owns the schema, its upgrades, the write lock and liveness."""

    name: str  # for messages (a URL's password masked)
    errors: tuple[type[Exception], ...]  # what its driver raises
    heartbeat_every: float | None  # seconds between heartbeats; None: liveness by pid only
    select_chunk: int  # keys per SELECT ... IN (...)

    def write(self) -> AbstractContextManager[None]:
        """A transaction holding the ledger's write lock (one writer at a time)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...

    def scan(self, sql: str, size: int) -> Iterator[list[tuple]]:
        """A whole table, ``size`` rows at a time (``ledger copy``)."""

    def run_record(self, run_id: str) -> tuple | None:
        """(host, pid, ended_at, pid_start, seconds since its heartbeat or None)."""

    def heartbeat(self, run_id: str) -> None: ...

    def close(self) -> None: ...


def open_store(location: LedgerLocation) -> LedgerStore:
    """The store at ``location`` (created or upgraded if need be); ConfigError if unusable."""
    if isinstance(location, LedgerURL):
        try:
            # import_module, not "from importer import": the driver is looked for each time.
            ledger_postgres = importlib.import_module("importer.ledger_postgres")
        except ImportError:
            raise ConfigError(
                f"the ledger {location} is a PostgreSQL database, and the PostgreSQL driver is"
                " not installed: pip install 'eloqua-import[postgres]'"
            ) from None
        return ledger_postgres.PostgresStore(location.url, keep_advice=KEEP_THE_LEDGER)
    return ledger_sqlite.SqliteStore(location, keep_advice=KEEP_THE_LEDGER)


#: A run (or a watcher's claim) whose heartbeat is older than this (seconds) is gone: a
#: shared ledger's live runs beat every ledger_postgres.HEARTBEAT_EVERY (10 s).
STALE_AFTER = 60.0


@dataclass(slots=True)
class _Op:
    kind: OpKind
    fingerprint: bytes
    source: str = ""
    details: str = ""
    legacy: bytes | None = None
    activity_id: str = ""
    force: bool = False
    retry_uncertain: bool = False
    future: asyncio.Future[Claim] | None = None


class Ledger:
    """One run's view of the ledger. Use as ``async with Ledger(location, site) as ledger``;
    ``location`` is a file path or a ``postgresql://`` URL (see ledger_location)."""

    def __init__(self, path: LedgerLocation | str, site: str) -> None:
        self.path = ledger_location(path)
        self.site = normalise_site(site)
        self.run_id = uuid.uuid4().hex
        self._ops: list[_Op] = []
        self._wake = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the run's (a claim's futures)
        self._closing = False
        self._db: LedgerStore | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._failure: LedgerError | None = None
        self._has_legacy = False  # entries from before schema 2 for this site
        self.commits = 0
        # Measured, for the commit waiting on answers (_gather): how many requests are on the
        # wire (the sender's count, see watch), the last commit's duration, the mean interval
        # between outcomes (seconds).
        self._on_the_wire: Callable[[], int] | None = None
        self._commit_time = 0.0
        self._answer_gap = 1.0
        self._last_answer = 0.0
        #: A commit waiting for answers: set when the wire holds ``_wait_for`` or fewer.
        self._waiting: asyncio.Future[None] | None = None
        self._wait_for = 0
        self._wait_ends = 0.0

    async def __aenter__(self) -> Ledger:
        self._db = open_store(self.path)
        try:
            with self._db.write():
                self._db.execute(
                    "INSERT INTO runs (run_id, host, pid, started_at, pid_start)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        self.run_id,
                        socket.gethostname(),
                        os.getpid(),
                        time.time(),
                        process_start(os.getpid()),
                    ),
                )
            self._has_legacy = (
                self._db.execute(
                    "SELECT 1 FROM legacy_activities WHERE site = ? LIMIT 1", (self.site,)
                ).fetchone()
                is not None
            )
        except self._db.errors as exc:
            self._db.close()
            raise LedgerError(
                f"cannot write the ledger {self.path}: {self._say(exc)}; free some disk space,"
                f" then rerun the same command. Nothing was sent. {KEEP_THE_LEDGER}"
            ) from None
        _OPEN_RUNS.add(self.run_id)
        self._loop = asyncio.get_running_loop()
        self._committer = asyncio.create_task(self._commit_loop())
        if self._db.heartbeat_every is not None:
            self._heartbeat = asyncio.create_task(self._beat(self._db.heartbeat_every))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        self._wake.set()
        self._end_wait(now=True)
        if self._committer is not None:
            await self._committer
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        _OPEN_RUNS.discard(self.run_id)
        if self._db is not None:
            with contextlib.suppress(*self._db.errors), self._db.write():
                self._db.execute(
                    "UPDATE runs SET ended_at = ? WHERE run_id = ?", (time.time(), self.run_id)
                )
            self._db.close()

    async def _beat(self, every: float) -> None:
        """Keep this run's heartbeat fresh, so other machines do not take it for gone."""
        assert self._db is not None
        while True:
            await asyncio.sleep(every)
            # A missed beat is not fatal: the next one may get through, and a claim's
            # pending record is durable either way.
            with contextlib.suppress(*self._db.errors, OSError):
                await asyncio.to_thread(self._db.heartbeat, self.run_id)

    def _write_failure(self, exc: Exception) -> LedgerError:
        if isinstance(exc, OSError) or (self._db is not None and isinstance(exc, self._db.errors)):
            return LedgerError(
                f"cannot write the ledger {self.path}: {self._say(exc)}. Nothing more is"
                " sent; free some disk space, then rerun the same command."
                f" {KEEP_THE_LEDGER}"
            )
        return LedgerError(
            f"could not record in the ledger {self.path} ({type(exc).__name__}:"
            f" {self._say(exc)}). Nothing more is sent; rerun the same command."
            f" {KEEP_THE_LEDGER}"
        )

    def _say(self, exc: BaseException) -> str:
        """The driver's message, without a password that may be in it."""
        scrub = getattr(self._db, "scrub", None)
        return scrub(exc) if scrub is not None else str(exc)

    # --- the API the pipeline uses ---------------------------------------------------------

    def lookup(self, fingerprint: bytes | Identity) -> Claim:
        """Read-only: what a claim would decide (for dry runs)."""
        identity = _parts(fingerprint)
        found = self._find({identity.key}).get(identity.key)
        legacy = identity.legacy() if self._has_legacy else None
        if found is None and legacy is not None:
            found = self._find_legacy({legacy}).get(legacy)
        return self._judge(found, retry_uncertain=False, details=identity.details()) or Claim(
            "send"
        )

    def lookup_many(self, fingerprints: Sequence[bytes | Identity]) -> list[Claim]:
        """:meth:`lookup` for many activities at once, in their order, with a few queries for
        the lot (a dry run consults thousands of rows per call; one query per row would be
        its slowest part)."""
        identities = [_parts(fingerprint) for fingerprint in fingerprints]
        found = self._find({identity.key for identity in identities})
        if self._has_legacy:
            unknown = {i.legacy(): i.key for i in identities if i.key not in found}
            legacy = self._find_legacy({key for key in unknown if key is not None})
            for legacy_key, old in legacy.items():
                found.setdefault(unknown[legacy_key], old)
        send = Claim("send")
        if not found:
            return [send] * len(identities)  # the common case: none of these is recorded
        claims = []
        for identity in identities:
            claim = None
            if (entry := found.get(identity.key)) is not None:
                # The digests only matter against those recorded (to say what differs).
                details = identity.details() if entry[6] else ""
                claim = self._judge(entry, retry_uncertain=False, details=details)
            claims.append(claim or send)
        return claims

    def knows_any(self, activity_ids: list[str], source_file: str = "") -> bool:
        """Whether any of these Eloqua activity ids is recorded for this site, or (a run killed
        before its answers were committed) a pending activity from ``source_file``."""
        assert self._db is not None
        step = self._db.select_chunk
        for start in range(0, len(activity_ids), step):
            chunk = activity_ids[start : start + step]
            marks = ", ".join("?" * len(chunk))
            for table in ("activities", "legacy_activities"):
                found = self._db.execute(
                    f"SELECT 1 FROM {table} WHERE site = ? AND (activity_id IN ({marks})"
                    f" OR prior_id IN ({marks})) LIMIT 1",
                    (self.site, *chunk, *chunk),
                ).fetchone()
                if found is not None:
                    return True
        if source_file:
            pattern = source_file.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found = self._db.execute(
                "SELECT 1 FROM activities WHERE site = ? AND state = 'pending'"
                " AND source LIKE ? ESCAPE '\\' LIMIT 1",
                (self.site, pattern + " row %"),
            ).fetchone()
            return found is not None
        return False

    def adopt(self, entries: Iterable[tuple[Identity, str, str]]) -> int:
        """Record (identity, activity id, source) as created, e.g. rebuilt from a results
        file; returns how many were new to the ledger. A record already created is kept."""
        assert self._db is not None
        now = time.time()
        rows = [
            (self.site, identity.key, activity_id, self.run_id, source, now, identity.details())
            for identity, activity_id, source in entries
        ]
        try:
            with self._db.write():
                return self._db.executemany(
                    "INSERT INTO activities VALUES (?, ?, 'created', ?, ?, ?, ?, NULL, NULL, ?)"
                    " ON CONFLICT (site, fingerprint) DO UPDATE SET state = 'created',"
                    " activity_id = excluded.activity_id, source = excluded.source,"
                    " updated_at = excluded.updated_at, prior_state = NULL, prior_id = NULL,"
                    " details = COALESCE(activities.details, excluded.details)"
                    " WHERE activities.state != 'created'",
                    rows,
                )
        except self._db.errors as exc:
            raise LedgerError(
                f"cannot write the ledger {self.path}: {self._say(exc)}; free some disk space,"
                " then run the same command again"
            ) from None

    async def claim(
        self,
        fingerprint: bytes | Identity,
        source: str,
        *,
        force: bool = False,
        retry_uncertain: bool = False,
    ) -> Claim:
        """Decide whether to send; if so, the ``pending`` record is durable when this returns.

        ``force`` (--allow-duplicates) sends even if the ledger says it was created.
        """
        future: asyncio.Future[Claim] = (self._loop or asyncio.get_running_loop()).create_future()
        identity = _parts(fingerprint)
        if not source.isascii():
            # A file name that is not valid UTF-8 (os.fsdecode's surrogates) cannot be
            # stored as TEXT: keep a readable, storable form.
            source = source.encode("utf-8", "backslashreplace").decode("utf-8")
        self._push(
            _Op(
                "claim",
                identity.key,
                source,
                details=identity.details(),
                legacy=identity.legacy() if self._has_legacy else None,
                force=force,
                retry_uncertain=retry_uncertain,
                future=future,
            )
        )
        return await future

    def created(self, fingerprint: bytes | Identity, activity_id: str) -> None:
        """Eloqua created it (committed with the next batch, before the run ends)."""
        self._answered()
        self._push(_Op("created", _parts(fingerprint).key, activity_id=activity_id))

    def not_created(self, fingerprint: bytes | Identity) -> None:
        """Certainly not created (rejected, or failed before reaching Eloqua): may be resent."""
        self._answered()
        self._push(_Op("forget", _parts(fingerprint).key))

    def watch(self, on_the_wire: Callable[[], int]) -> None:
        """``on_the_wire()``: how many requests are sent and not yet answered (the sender's
        count). With it, a commit may wait for answers that come sooner than it takes."""
        self._on_the_wire = on_the_wire

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
        if self._waiting is not None:
            self._end_wait(op.kind == "flush")

    def _fail(self, ops: Iterable[_Op]) -> None:
        for op in [*ops, *self._ops]:
            if op.future is not None and not op.future.done():
                op.future.set_exception(self._failure or LedgerError("ledger failed"))
        self._ops = []

    async def _commit_loop(self) -> None:
        # One writer thread for the run: the fsync happens off the event loop, so requests
        # keep flowing meanwhile (and a thread of our own costs half of to_thread per batch).
        loop = asyncio.get_running_loop()
        requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        writer = threading.Thread(
            target=self._write_batches, args=(loop, requests), name="ledger-writer", daemon=True
        )
        writer.start()
        try:
            while True:
                if not self._ops:
                    if self._closing:
                        return
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                await self._gather()
                batch, self._ops = self._ops, []
                done: asyncio.Future[list[Claim]] = loop.create_future()
                started = time.monotonic()
                requests.put((batch, done))
                try:
                    results = await done
                    self._commit_time = time.monotonic() - started
                except Exception as exc:  # never leave a claim waiting on a dead committer
                    self._failure = self._write_failure(exc)
                    self._fail(batch)
                    return
                for op, result in zip(batch, results, strict=True):
                    if op.future is not None and not op.future.done():
                        op.future.set_result(result)
        finally:
            requests.put(None)  # the writer ends after the batch it may be writing

    async def _gather(self) -> None:
        """Let ops that are arriving back to back (answers read in one turn of the event
        loop, each followed by its worker's next claim) join this commit rather than make the
        next one: give the loop another turn while the last one brought more, a few at most.
        No timer: a turn that brings nothing starts the commit at once."""
        await self._wait_for_answers()
        seen = len(self._ops)
        for _ in range(GATHER_TURNS):
            await asyncio.sleep(0)
            if len(self._ops) == seen or self._closing:
                return
            seen = len(self._ops)

    async def _wait_for_answers(self) -> None:
        """When answers come several per commit (measured), the requests on the wire will
        answer soon, and their rows' next claims would make the next commit: wait for them
        until as few are left as answer while a commit runs (so the loop keeps working during
        this one). Each op pushed checks; a few commits' time at most (the timer is only a
        safety net for answers that stop coming: timers may wake late)."""
        commit, gap = self._commit_time, self._answer_gap
        if self._on_the_wire is None or gap * ANSWERS_PER_COMMIT > commit or self._closing:
            return
        self._wait_for = int(commit / gap)
        await asyncio.sleep(0)  # the rows just claimed go on the wire
        wire = self._on_the_wire()
        if wire <= self._wait_for or (wire - self._wait_for) * gap > commit * WAIT_COMMITS:
            return
        if self._closing or any(op.kind == "flush" for op in self._ops):  # awaited now
            return
        loop = asyncio.get_running_loop()
        self._wait_ends = time.monotonic() + commit * WAIT_COMMITS
        self._waiting = loop.create_future()
        timer = loop.call_later(commit * WAIT_COMMITS, self._end_wait, True)
        try:
            await self._waiting
        finally:
            timer.cancel()
            self._waiting = None

    def _end_wait(self, now: bool = False) -> None:
        """End the commit's wait for answers if few enough are left on the wire, or its time
        is up (or ``now``: a flush, the timer)."""
        waiting = self._waiting
        if waiting is None or waiting.done() or self._on_the_wire is None:
            return
        if (
            now
            or self._closing
            or self._on_the_wire() <= self._wait_for
            or time.monotonic() >= self._wait_ends
        ):
            waiting.set_result(None)

    def _answered(self) -> None:
        """An outcome came: update the mean interval between answers."""
        now = time.monotonic()
        gap = min(now - self._last_answer, 1.0)
        self._last_answer = now
        self._answer_gap += (gap - self._answer_gap) / 16

    def _write_batches(
        self, loop: asyncio.AbstractEventLoop, requests: queue.SimpleQueue[_Request | None]
    ) -> None:
        """The writer thread: commit each batch, hand its results (or error) to the loop."""
        while (request := requests.get()) is not None:
            batch, done = request
            try:
                outcome: list[Claim] | BaseException = self._commit(batch)
            except BaseException as exc:  # handed to the loop, which stops the ledger
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, done, outcome)

    def _commit(self, batch: list[_Op]) -> list[Claim]:
        """One transaction for the batch, its results in the batch's order.

        Ops of one kind share their statements: per-row statements would hold the GIL for
        most of their time, competing with the event loop. The batch is cut into segments
        where no fingerprint has ops of two kinds; within one, the claims (in order), then the
        created, then the forgotten are applied, which is what applying them one by one gives.
        """
        assert self._db is not None
        results = [_SENT] * len(batch)
        now = time.time()
        with self._db.write():  # one transaction, under the write lock
            for claims, created, forgets in _segments(batch):
                if claims:
                    verdicts = self._apply_claims([batch[n] for n in claims], now)
                    for n, verdict in zip(claims, verdicts, strict=True):
                        results[n] = verdict
                if created:
                    self._record_created(created, now)
                if forgets:
                    self._forget(forgets)
        self.commits += 1
        return results

    def _record_created(self, ops: list[_Op], now: float) -> None:
        assert self._db is not None
        self._db.executemany(
            "UPDATE activities SET state = 'created', activity_id = ?,"
            " updated_at = ?, prior_state = NULL, prior_id = NULL"
            " WHERE site = ? AND fingerprint = ?",
            [(op.activity_id, now, self.site, op.fingerprint) for op in ops],
        )

    def _forget(self, ops: list[_Op]) -> None:
        assert self._db is not None
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

    def _apply_claims(self, ops: list[_Op], now: float) -> list[Claim]:
        """Decide claims in order; a claim sees the ones before it in the same group."""
        assert self._db is not None
        found = self._find({op.fingerprint for op in ops})
        promoted = self._legacy_claims(ops, found, now)
        verdicts = []
        pending = []
        for op in ops:
            verdict = self._judge(
                found.get(op.fingerprint), retry_uncertain=op.retry_uncertain, details=op.details
            )
            if verdict is not None and not (op.force and verdict.decision == "already_created"):
                verdicts.append(verdict)
                continue
            found[op.fingerprint] = ("pending", None, self.run_id, op.source, None, None, None)
            pending.append((self.site, op.fingerprint, self.run_id, op.source, now, op.details))
            verdicts.append(_SENT)
        # Created legacy entries move to the identity table, so later runs find them there
        # even when a cosmetic field changed; this goes before the claims that replace them.
        if promoted:
            self._db.executemany(
                "INSERT INTO activities VALUES (?, ?, 'created', ?, ?, ?, ?, NULL, NULL, NULL)"
                " ON CONFLICT (site, fingerprint) DO NOTHING",
                promoted,
            )
        self._db.executemany(
            "INSERT INTO activities VALUES (?, ?, 'pending', NULL, ?, ?, ?, NULL, NULL, ?)"
            " ON CONFLICT (site, fingerprint) DO UPDATE SET state = 'pending',"
            " activity_id = NULL, run_id = excluded.run_id, source = excluded.source,"
            " updated_at = excluded.updated_at, details = excluded.details,"
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

    def _legacy_claims(self, ops: list[_Op], found: dict[bytes, tuple], now: float) -> list:
        """Fill ``found`` from the legacy entries of claims the identity table does not know;
        returns the rows that promote created ones to it."""
        if not self._has_legacy:
            return []
        unknown = [op for op in ops if op.fingerprint not in found and op.legacy is not None]
        legacy = self._find_legacy({op.legacy for op in unknown if op.legacy is not None})
        promoted = []
        for op in unknown:
            old = legacy.get(op.legacy) if op.legacy is not None else None
            if old is None or op.fingerprint in found:
                continue
            found[op.fingerprint] = old
            state, activity_id, run_id, source = old[:4]
            if state == "created":
                promoted.append((self.site, op.fingerprint, activity_id, run_id, source, now))
        return promoted

    def _find(self, fingerprints: set[bytes], table: str = "activities") -> dict[bytes, tuple]:
        """fingerprint -> (state, activity_id, run_id, source, prior_state, prior_id, details)."""
        assert self._db is not None
        details = "details" if table == "activities" else "NULL"
        found: dict[bytes, tuple] = {}
        keys = list(fingerprints)
        step = self._db.select_chunk
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT fingerprint, state, activity_id, run_id, source, prior_state, prior_id,"
                f" {details} FROM {table} WHERE site = ? AND fingerprint IN ({marks})",
                (self.site, *chunk),
            )
            found.update((row[0], row[1:]) for row in rows)
        return found

    def _find_legacy(self, fingerprints: set[bytes]) -> dict[bytes, tuple]:
        return self._find(fingerprints, "legacy_activities") if self._has_legacy else {}

    def _judge(
        self, found: tuple | None, *, retry_uncertain: bool, details: str = ""
    ) -> Claim | None:
        """None: nothing stands in the way of sending."""
        if found is None:
            return None
        state, activity_id, run_id, source, prior_state, prior_id, created_details = found
        if run_id == self.run_id:
            # Two rows of this run became the same activity (e.g. two emails, one contact).
            return Claim("duplicate", activity_id or "", source or "")
        if state == "created":
            differs = differing(created_details, details)
            return Claim("already_created", activity_id or "", source or "", differs)
        if self._run_alive(run_id):
            return Claim("in_progress", "", source or "")
        if prior_state == "created":
            # A deliberate resend (--allow-duplicates) got no answer: the first copy exists.
            return Claim("already_created", prior_id or "", source or "")
        return None if retry_uncertain else Claim("uncertain", "", source or "")

    def _run_alive(self, run_id: str) -> bool:
        assert self._db is not None
        run = self._db.run_record(run_id)
        if run is None or run[2] is not None:
            return False  # ended (or unknown)
        if run[0] != socket.gethostname():
            # On another machine: alive while its heartbeat is fresh. A file ledger has none
            # (None): we cannot tell, and must not block forever.
            return run[4] is not None and run[4] < STALE_AFTER
        if run[1] == os.getpid():
            return run_id in _OPEN_RUNS  # this process: alive only if that run is still open
        return not process_gone(run[1], run[3])


#: Runs open in this process (a pid alone cannot tell them from a crashed run's).
_OPEN_RUNS: set[str] = set()

#: What an outcome (created, forget) or a flush answers.
_SENT = Claim("send")
#: A batch for the writer thread, and where its results go.
_Request = tuple[list[_Op], "asyncio.Future[list[Claim]]"]
#: Loop turns a commit may wait for ops still arriving (Ledger._gather).
GATHER_TURNS = 8
#: A commit waits for answers (Ledger._wait_for_answers) when at least this many come per
#: commit's time, and for this many commits' time at most.
ANSWERS_PER_COMMIT = 2
WAIT_COMMITS = 8


def _settle(done: asyncio.Future[list[Claim]], outcome: list[Claim] | BaseException) -> None:
    if done.done():  # the commit loop was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


def _segments(batch: list[_Op]) -> Iterator[tuple[list[int], list[_Op], list[_Op]]]:
    """The batch cut where an op touches a fingerprint an op of another kind touched before
    it in the same segment: (the claims' positions, the created, the forgotten) per segment.

    Within a segment each fingerprint has ops of one kind only, so applying all claims, then
    all created, then all forgets is the same as applying the ops in order; across segments
    the order is kept. A flush has no fingerprint. (A claim and the outcome of the same row
    are never in one batch: the outcome comes after the claim was committed.)
    """
    kinds: dict[bytes, str] = {}
    claims: list[int] = []
    created: list[_Op] = []
    forgets: list[_Op] = []
    for position, op in enumerate(batch):
        kind = op.kind
        if kind == "flush":
            continue
        seen = kinds.setdefault(op.fingerprint, kind)
        if seen != kind:
            yield claims, created, forgets
            kinds = {op.fingerprint: kind}
            claims, created, forgets = [], [], []
        if kind == "claim":
            claims.append(position)
        elif kind == "created":
            created.append(op)
        else:
            forgets.append(op)
    if claims or created or forgets:
        yield claims, created, forgets


def process_gone(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` of this machine, which started at ``started``, is gone: not
    running, or its pid now names another process (a reused pid)."""
    now = process_start(pid)
    if now is not None and started is not None and now != started:
        return True
    return not _pid_alive(pid)


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: clock ticks since boot), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


#: Appended to every message about a ledger that cannot be used: a new, empty ledger would
#: send again every activity already created.
KEEP_THE_LEDGER = (
    "Do not start a new ledger: it would not know what was already created, and every row"
    " would be sent again. If the file is damaged or lost, restore it from a backup, or rebuild"
    " it from the results files with: eloqua-import ledger adopt RESULTS.csv --mapping MAPPING"
)


def check_ledger(location: LedgerLocation | str) -> None:
    """Open (creating if need be) the ledger at ``location``; ConfigError if it is unusable."""
    open_store(ledger_location(location)).close()


def ledger_site(base_url: str, company: str) -> str:
    """The ledger's name for an Eloqua instance: the pod's host and the company.

    Many companies share a pod, so the company is part of it; Basic auth and a token for the
    same company give the same name (the token's company comes from /id).
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if host == "localhost":
        host = "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}/{company.strip().casefold()}"


def normalise_site(site: str) -> str:
    """One key per Eloqua instance: ``HOST[:PORT]/company`` with the host lower-cased, without
    a trailing dot or a default port (80, 443: Eloqua answers on one of them, and the scheme
    never named another instance), and localhost as 127.0.0.1."""
    host, slash, company = site.partition("/")
    host = host.lower()
    name, colon, port = host.rpartition(":")
    if colon and name and not name.endswith(":") and port in ("80", "443"):
        host = name
    host = host.rstrip(".")
    if host == "localhost":
        host = "127.0.0.1"
    return f"{host}{slash}{company}"


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
