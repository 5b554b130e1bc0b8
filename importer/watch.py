"""The inbox loop: import every file dropped into a folder, once, and file it away.

Layout (created on start)::

    INBOX/              drop *.csv, *.xlsx, *.xlsm, *.xls, *.ods here (names starting with "."
                        or "~$" are ignored, so "upload as .name.csv, then rename" is a safe
                        way to drop)
    INBOX/processing/   files being imported; each has <name>.lock, flock'ed while it is worked on
                        (with a PostgreSQL ledger, a row in its claims table instead);
                        created writable by this user only, so no dropper can swap a file there
    INBOX/done/         every row created, already_created, duplicate or skipped; results beside it
    INBOX/failed/       anything else; results, errors file or <name>.error.txt beside the file

The claim protocol (which file is ready, how it is claimed and locked, where it goes) is
``inbox.py``'s; this module runs the pipeline on each claimed file, files it in done/ or
failed/ with its results, logs every step (text or JSON lines), and stops cleanly on SIGTERM
or Ctrl-C.

For a scheduler or a health check: ``--status-file PATH`` keeps a small JSON file up to date
(``WatchState``: state, last pass, files done/failed, rows by status, last error, the OAuth2
access token's expiry), replaced atomically (temp file, fsync, rename) so a reader never sees
half of it; JSON log lines for files and passes carry the same fields under ``totals``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import signal
import stat
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from importer.config import Connection
from importer.eloqua import Timeouts
from importer.errors import (
    AbortedError,
    AuthError,
    ConfigError,
    ExitStatus,
    InputError,
    Interrupted,
    MappingError,
    SetupError,
)
from importer.inbox import (
    ERRORS,
    NOTE,
    RESULTS,
    Claimed,
    ClaimLocks,
    DatabaseLocks,
    FileLocks,
    Inbox,
    identity,
    refusal,
)
from importer.ledger import (
    STALE_AFTER,
    LedgerLocation,
    LedgerURL,
    check_ledger,
    default_ledger,
    open_store,
)
from importer.mapping import load_mapping
from importer.pipeline import RunOptions, run_import
from importer.report import STATUSES, Summary
from importer.signals import SignalHandlers

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class WatchOptions:
    inbox: Path
    mapping_path: Path
    once: bool = False
    interval: float = 60.0  # seconds between passes (long-running mode)
    settle: float = 5.0  # a file must stay unchanged this long before it is picked up
    ledger_path: LedgerLocation | None = None  # None: ELOQUA_IMPORT_LEDGER, else the per-user file
    concurrency: int = 8
    timeouts: Timeouts = field(default_factory=Timeouts)
    handle_signals: bool = False  # SIGTERM / SIGINT stop cleanly (the CLI sets it)
    status_file: Path | None = None  # kept up to date for a monitor (see WatchState)


#: Seconds a CSV whose last line has no line break must hold still before it is taken.
UNTERMINATED_SETTLE = 60.0


def _ends_with_line_break(path: Path) -> bool:
    """Whether the file's last byte ends a line (an unreadable one counts as complete: its
    import then says what is wrong with it). Opened without following links."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except OSError:
        return True
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return False
        os.lseek(fd, size - 1, os.SEEK_SET)
        return os.read(fd, 1) in (b"\n", b"\r")
    except OSError:
        return True
    finally:
        os.close(fd)


class EventLog:
    """One line per event on stderr: readable text, or one JSON object (``fmt="json"``).

    Messages come from the importer's own exceptions, which never carry credentials.
    """

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be text or json, not {fmt!r}")
        self.fmt = fmt
        self.stream = stream

    def __call__(self, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
        now = dt.datetime.now(dt.UTC)
        if self.fmt == "json":
            record = {
                "time": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "level": level,
                "event": event,
                "message": message,
                **fields,
            }
            line = json.dumps(record, ensure_ascii=False, default=str)
            # JSON escapes C0 controls; these others still end a line for some readers.
            line = _LINE_BREAKERS.sub(lambda m: f"\\u{ord(m[0]):04x}", line)
        else:
            stamp = now.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            line = f"{stamp} {'ERROR ' if level == 'error' else ''}{escape_controls(message)}"
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


_LINE_BREAKERS = re.compile("[\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with newlines, escapes and other unprintable characters written as ``\\n``,
    ``\\x1b``..., so that whatever a file name holds, one event stays one line."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


@dataclass
class WatchState:
    """What a monitor needs to see, since this watcher started (``--status-file``)."""

    inbox: str
    state: str = "starting"  # starting | watching | stopped
    started_at: str = ""
    last_pass: str | None = None  # when the last pass over the inbox ended
    files_done: int = 0
    files_failed: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # by status, every file so far
    last_error: dict[str, str] | None = None  # {"time", "message"}
    token_expires_at: str | None = None  # OAuth2: when the access token in use expires
    exit_status: int | None = None  # once stopped

    def record(self) -> dict[str, Any]:
        return {"updated_at": _utc_now(), "pid": os.getpid(), **self.__dict__}

    def totals(self) -> dict[str, Any]:
        """The fields a JSON log line carries."""
        fields = dict(self.__dict__)
        del fields["inbox"]
        return fields


def _utc_now(when: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if when is None else dt.datetime.fromtimestamp(when, dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def write_status(path: Path, record: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never half."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "w", encoding="utf-8") as file:
        json.dump(record, file, ensure_ascii=False, indent=1, default=str)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


class _Halt(Exception):
    """Stop this pass: a problem that is not the file's (Eloqua, credentials, ledger)."""

    def __init__(self, status: ExitStatus) -> None:
        self.status = status


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    halted: ExitStatus | None = None


class Watcher:
    """Runs passes over the inbox: finish leftovers in processing/, then take stable new files.

    ``sleep`` replaces every wait (the settle time and the interval); tests pass one that
    does not wait. ``now`` gives the time used in names that would otherwise clash.
    """

    def __init__(
        self,
        options: WatchOptions,
        connection: Connection,
        log: EventLog | None = None,
        *,
        sleep: Sleep | None = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.options = options
        self.connection = connection
        self.log = log or EventLog()
        self.inbox = Inbox(options.inbox, now or (lambda: dt.datetime.now().astimezone()))
        self._sleep = sleep or self._wait
        self._stop: asyncio.Event | None = None
        self._stop_reason = ""
        self._handlers = SignalHandlers(options.handle_signals)
        self._last_look: dict[Path, dict[str, tuple[int, int, int]]] = {}
        self.state = WatchState(inbox=str(options.inbox), started_at=_utc_now())
        self._log = self.log
        self.log = self._event  # type: ignore[assignment]  # every event keeps the state

    def _event(self, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
        if level == "error":
            self.state.last_error = {"time": _utc_now(), "message": message}
        if event in _TOTALS_EVENTS:
            self._refresh_state()
            fields["totals"] = self.state.totals()
        self._log(event, message, level=level, **fields)
        if event in _TOTALS_EVENTS or level == "error":
            self._save_state()

    def _refresh_state(self) -> None:
        expires = getattr(self.connection.auth, "expires_at", None)
        self.state.token_expires_at = _utc_now(expires) if expires else None

    def _save_state(self) -> None:
        """Write the status file; a failure is logged, never fatal (the imports matter more)."""
        path = self.options.status_file
        if path is None:
            return
        try:
            write_status(path, self.state.record())
        except OSError as exc:
            self._log(
                "warning",
                f"cannot write the status file {path}: {exc.strerror or exc}",
                level="warning",
                path=str(path),
            )

    async def run(self) -> ExitStatus:
        """``--once``: 0 all went to done/, 1 some to failed/, 3 stopped (Eloqua, ledger),
        130 stopped by a signal. Long-running: runs until SIGTERM/SIGINT, then returns 0."""
        self._stop = asyncio.Event()
        self.inbox.prepare()
        load_mapping(self.options.mapping_path)  # a broken mapping stops us before any move
        self._open_ledger()
        self.inbox.locks = self._claim_locks()
        try:
            return await self._watch()
        finally:
            self.inbox.locks.close()

    async def _watch(self) -> ExitStatus:
        self._check_processing_mode()
        self.state.state = "watching"
        self._refresh_state()
        self._save_state()
        mode = "once" if self.options.once else f"every {self.options.interval:g}s"
        ledger = str(self.options.ledger_path or default_ledger())  # a URL's password masked
        self.log(
            "watch_started",
            f"watching {self.options.inbox} ({mode}) with mapping {self.options.mapping_path},"
            f" ledger {ledger}",
            inbox=str(self.options.inbox),
            mapping=str(self.options.mapping_path),
            ledger=ledger,
            once=self.options.once,
        )
        with self._signals():
            while True:
                tally = await self.run_pass()
                self.state.last_pass = _utc_now()
                if self.options.once or self.stopping:
                    break
                self.log(
                    "pass_finished",
                    f"pass finished: {tally.done} to done/, {tally.failed} to failed/",
                    done=tally.done,
                    failed=tally.failed,
                )
                await self._sleep(self.options.interval)
                if self.stopping:
                    break
        status = self._status(tally)
        self.state.state = "stopped"
        self.state.exit_status = int(status)
        reason = self._stop_reason or "every file handled"
        self.log(
            "watch_stopped",
            f"stopped: {reason}; exit status {int(status)}",
            reason=reason,
            exit_status=int(status),
        )
        return status

    def _check_processing_mode(self) -> None:
        """prepare() creates processing/ closed to others; one made earlier may not be."""
        processing = self.inbox.processing
        if stat.S_IMODE(os.stat(processing).st_mode) & 0o022:
            self.log(
                "warning",
                f"{processing} is writable by other users, who could swap a file there while it"
                f" is imported; run: chmod go-w {processing}",
                level="warning",
                path=str(processing),
            )

    def _open_ledger(self) -> None:
        """An unusable ledger stops us before any file moves."""
        check_ledger(self.options.ledger_path or default_ledger())

    def _claim_locks(self) -> ClaimLocks:
        """With a PostgreSQL ledger, its database decides who owns a file (watchers on several
        machines); else flock (one machine)."""
        location = self.options.ledger_path or default_ledger()
        if not isinstance(location, LedgerURL):
            return FileLocks(self.inbox.processing)
        from importer.ledger_postgres import HEARTBEAT_EVERY  # psycopg: here, only if used

        store = open_store(location)
        return DatabaseLocks(
            store,  # type: ignore[arg-type]  # a PostgresStore: it has side_execute, inbox_lock
            self.inbox.processing,
            heartbeat_every=HEARTBEAT_EVERY,
            stale_after=STALE_AFTER,
        )

    @property
    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _status(self, tally: _Tally) -> ExitStatus:
        if self.stopping:
            return ExitStatus.INTERRUPTED if self.options.once else ExitStatus.OK
        if tally.halted is not None:
            return tally.halted
        return ExitStatus.ROWS_NOT_CREATED if tally.failed else ExitStatus.OK

    async def run_pass(self) -> _Tally:
        tally = _Tally()
        try:
            load_mapping(self.options.mapping_path)
        except MappingError as exc:  # edited while we run: wait for a fix, move nothing
            self.log("error", f"mapping: {exc}; no file taken", level="error", error=str(exc))
            tally.halted = ExitStatus.USAGE
            return tally
        try:
            self._refuse_unreadable(self.inbox.processing, tally)
            # Left by a crash, a stop, or a writer still at work: taken once it holds still.
            for name in await self._stable_files(self.inbox.processing):
                if self.stopping:
                    return tally
                try:
                    claimed = self.inbox.resume(name)
                except OSError as exc:
                    self._trouble(name, exc, "left in processing/", tally)
                    continue
                if claimed is not None:
                    self.log(
                        "file_resumed",
                        f"resuming processing/{name} (left by an earlier run)",
                        file=name,
                    )
                    await self._process(claimed, tally)
            self._refuse_unreadable(self.inbox.root, tally)
            for name in await self._stable_files(self.inbox.root):
                if self.stopping:
                    return tally
                try:
                    claimed = self.inbox.claim(name)
                except OSError as exc:  # this file's trouble: the others still get their turn
                    self._trouble(name, exc, "left in the inbox", tally)
                    continue
                if claimed is None:
                    self.log("file_skipped", f"{name}: taken by another watcher", file=name)
                    continue
                self.log(
                    "file_picked_up",
                    f"picked up {name}",
                    file=name,
                    processing=str(claimed.path),
                )
                await self._process(claimed, tally)
        except _Halt as halt:
            tally.halted = halt.status
            self._stop_reason = self._stop_reason or "a problem with Eloqua or the mapping (above)"
        return tally

    async def _stable_files(self, folder: Path) -> list[str]:
        """Names unchanged across two looks, oldest first. A file that was already there,
        unchanged, at the previous pass needs no second look."""
        first = self.inbox.look(folder)
        last = self._last_look.get(folder, {})
        if any(last.get(name) != stat for name, stat in first.items()):
            await self._sleep(self.options.settle)
            second = self.inbox.look(folder)
        else:
            second = first
        self._last_look[folder] = second
        ready = sorted(
            (name for name, stat in second.items() if first.get(name) == stat),
            key=lambda name: (second[name][1], name),
        )
        where = "" if folder == self.inbox.root else f"{folder.name}/"
        for name in sorted(second.keys() - set(ready)):
            self.log(
                "file_waiting",
                f"{where}{name}: still changing, left for the next look",
                file=name,
            )
        return [name for name in ready if not self._cut_short(folder, name, second[name], where)]

    def _cut_short(self, folder: Path, name: str, seen: tuple[int, int, int], where: str) -> bool:
        """A CSV whose last line has no line break yet, written to recently: its writer may
        have paused mid-row (buffers are flushed in blocks, not rows). Importing it now would
        send that row cut short, with a wrong value (a contact id, a time), that no later
        pass can take back. Some exporters end without a line break: those are taken once
        unchanged for UNTERMINATED_SETTLE seconds."""
        wait = max(self.options.settle, UNTERMINATED_SETTLE)
        if not name.lower().endswith(".csv") or time.time() - seen[1] / 1e9 >= wait:
            return False
        if _ends_with_line_break(folder / name):
            return False
        self.log(
            "file_waiting",
            f"{where}{name}: its last line has no line break yet (still being written?); it is"
            f" taken once unchanged for {wait:.0f} s",
            file=name,
        )
        return True

    def _refuse_unreadable(self, folder: Path, tally: _Tally) -> None:
        """Move links, pipes and devices named like data files to failed/, unread."""
        for name, what in sorted(self.inbox.scan(folder)[1].items()):
            note = _not_plain(name, what)
            try:
                placed = self.inbox.set_aside(folder / name, note)
            except OSError as exc:
                self._trouble(name, exc, f"left in {folder.name}/", tally)
                continue
            if placed is None:  # another watcher moved it
                continue
            tally.failed += 1
            self.state.files_failed += 1
            self.log(
                "file_refused",
                f"{name} -> failed/{placed[''].name}: {note}",
                level="error",
                file=name,
                destination="failed",
                path=str(placed[""]),
                note=str(placed[NOTE]),
                error=note,
            )

    def _trouble(self, name: str, exc: OSError, where: str, tally: _Tally) -> None:
        tally.failed += 1
        error = f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc)
        self.log(
            "file_error",
            f"{name}: {error}; {where}, the other files go on",
            level="error",
            file=name,
            error=error,
        )

    async def _process(self, claimed: Claimed, tally: _Tally) -> None:
        """Import one claimed file and file it away; the lock is held until it has moved."""
        try:
            await self._import_and_file(claimed, tally)
        except OSError as exc:  # a move or a check failed: the next run tries again
            self._trouble(claimed.picked_up_as, exc, "left in processing/", tally)
        finally:
            claimed.release()

    async def _import_and_file(self, claimed: Claimed, tally: _Tally) -> None:
        name = claimed.picked_up_as
        st = os.lstat(claimed.path)
        what = refusal(st)
        if what:  # swapped for a link between our look and the rename: never read it
            self._failed(claimed, _not_plain(name, what), tally)
            return
        claimed.seen = identity(st)
        outcome = await self._import(claimed)
        if not isinstance(outcome, str) and (outcome.interrupted or outcome.stop_cause == "eloqua"):
            self._stopped(name, outcome)
            return
        if self._changed(claimed):
            self.log(
                "file_changed",
                f"{name}: changed while it was imported (still being written?); left in"
                " processing/, the next pass imports it again (rows already sent come back"
                " already_created)",
                file=name,
                counts=None if isinstance(outcome, str) else _counts(outcome),
            )
            return
        if isinstance(outcome, str):
            self._failed(claimed, outcome, tally)
            return
        ok = outcome.exit_status() == ExitStatus.OK
        folder = self.inbox.done if ok else self.inbox.failed
        self._finished(name, folder, self.inbox.file_away(claimed, folder), outcome, tally)

    def _changed(self, claimed: Claimed) -> bool:
        try:
            st = os.lstat(claimed.path)
        except FileNotFoundError:
            return True
        return bool(refusal(st)) or identity(st) != claimed.seen

    def _stopped(self, name: str, outcome: Summary) -> None:
        """The import stopped part-way (a signal, Eloqua): the file stays in processing/."""
        if outcome.interrupted:
            self._request_stop("interrupted by a signal")
            self.log(
                "file_interrupted",
                f"{name}: interrupted; left in processing/, the next run finishes it",
                file=name,
                counts=_counts(outcome),
            )
            return
        # 401, an outage: not the file's fault
        self.log(
            "error",
            f"{name}: stopped: {outcome.stopped_reason}. The file stays in processing/"
            " and the next run finishes it (rows already created are not sent again).",
            level="error",
            file=name,
            counts=_counts(outcome),
            error=outcome.stopped_reason,
        )
        raise _Halt(ExitStatus.ABORTED)

    def _earlier_results(self, claimed: Claimed) -> Path | None:
        """The results of a file of this name imported before (done/ first, then failed/):
        with a lost ledger, they are what stops a re-dropped file being created again."""
        for folder in (self.inbox.done, self.inbox.failed):
            path = folder / (claimed.path.name + RESULTS)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):  # never read through a link
                    return path
        return None

    async def _import(self, claimed: Claimed) -> Summary | str:
        """The summary, or why the file itself cannot be imported. Raises _Halt for problems
        that are not the file's: it then stays in processing/ for the next run."""
        for part in (claimed.results_part, claimed.errors_part):
            part.unlink(missing_ok=True)  # from an interrupted attempt
        options = RunOptions(
            input_path=claimed.path,
            mapping_path=self.options.mapping_path,
            results_path=claimed.results_part,
            errors_path=claimed.errors_part,
            earlier_results=self._earlier_results(claimed),
            concurrency=self.options.concurrency,
            ledger_path=self.options.ledger_path,
            timeouts=self.options.timeouts,
            handle_signals=self.options.handle_signals,
            on_notice=lambda text: self.log("stopping", text),  # never plain text on stderr
        )
        try:
            return await run_import(options, self.connection)
        except Interrupted:  # a signal before any row was sent
            self._request_stop("interrupted by a signal")
            self.log(
                "file_interrupted",
                f"{claimed.picked_up_as}: interrupted before anything was sent; left in"
                " processing/, the next run imports it",
                file=claimed.picked_up_as,
            )
            raise _Halt(ExitStatus.INTERRUPTED) from None
        except SetupError as exc:  # the mapping names what Eloqua lacks: every file would fail
            self.log(
                "error",
                f"{claimed.picked_up_as}: {exc} Fix the mapping or Eloqua; the file stays in"
                " processing/.",
                level="error",
                file=claimed.picked_up_as,
                error=str(exc),
            )
            raise _Halt(exc.exit_status) from None
        except (InputError, MappingError) as exc:  # unreadable, wrong columns: nothing sent
            return str(exc)
        except (AuthError, AbortedError, ConfigError) as exc:
            self.log(
                "error",
                f"{claimed.picked_up_as}: {exc} The file stays in processing/ and is tried"
                " again on the next run.",
                level="error",
                file=claimed.picked_up_as,
                error=str(exc),
            )
            raise _Halt(exc.exit_status) from None
        except Exception as exc:  # a bug: file it as failed rather than retry it forever
            return f"unexpected error: {type(exc).__name__}: {exc}"
        finally:
            self._reinstall_signals()  # the pipeline removes its own handlers on the way out

    def _finished(
        self, name: str, folder: Path, placed: dict[str, Path], summary: Summary, tally: _Tally
    ) -> None:
        ok = folder == self.inbox.done
        if ok:
            tally.done += 1
            self.state.files_done += 1
        else:
            tally.failed += 1
            self.state.files_failed += 1
        counts = _counts(summary)
        for status, n in counts.items():
            self.state.rows[status] = self.state.rows.get(status, 0) + n
        shown = ", ".join(f"{n} {status}" for status, n in counts.items()) or "no rows"
        message = f"{name} -> {folder.name}/{placed[''].name}: {shown}"
        if summary.stopped_reason:
            message += f"; stopped early: {summary.stopped_reason}"
        self.log(
            "file_finished",
            message,
            level="info" if ok else "error",
            file=name,
            destination=folder.name,
            path=str(placed[""]),
            results=str(placed[RESULTS]) if RESULTS in placed else None,
            errors=str(placed[ERRORS]) if ERRORS in placed else None,
            rows=summary.rows,
            counts=counts,
            exit_status=int(summary.exit_status()),
            stopped_reason=summary.stopped_reason or None,
        )

    def _failed(self, claimed: Claimed, error: str, tally: _Tally) -> None:
        tally.failed += 1
        self.state.files_failed += 1
        placed = self.inbox.file_away(claimed, self.inbox.failed, note=error)
        name = claimed.picked_up_as
        self.log(
            "file_failed",
            f"{name} -> failed/{placed[''].name}: {error}",
            level="error",
            file=name,
            destination="failed",
            path=str(placed[""]),
            note=str(placed[NOTE]),
            error=error,
        )

    # --- stopping ------------------------------------------------------------------------------

    async def _wait(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _request_stop(self, reason: str) -> None:
        if self._stop is not None and not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._request_stop(f"{sig.name} received")
        self.log("stopping", f"{sig.name}: stopping after the current step", signal=sig.name)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        with self._handlers:
            self._reinstall_signals()
            yield

    def _reinstall_signals(self) -> None:
        # Not after a stop: a second signal then quits at once, as in the pipeline.
        if not self.stopping:
            self._handlers.on_stop_signals(self._on_signal)


#: Events whose JSON lines carry the totals (and after which the status file is written).
_TOTALS_EVENTS = frozenset(
    {"file_finished", "file_failed", "file_refused", "pass_finished", "watch_stopped"}
)


def _not_plain(name: str, what: str) -> str:
    return f"{name} is {what}, not a plain file: it was not read. Drop a plain copy of the file."


def _counts(summary: Summary) -> dict[str, int]:
    return {status: summary.counts[status] for status in STATUSES if summary.counts[status]}


async def watch(
    options: WatchOptions,
    connection: Connection,
    log: EventLog | None = None,
    *,
    sleep: Sleep | None = None,
) -> ExitStatus:
    """Watch ``options.inbox`` (see the module docstring); return the exit status."""
    return await Watcher(options, connection, log, sleep=sleep).run()
