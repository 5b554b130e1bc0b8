"""The inbox's folders and the claim protocol: which file is ready, how exactly one watcher
claims it, and where it is filed afterwards (used by ``watch.py``).

Why it is safe to run twice at once (a cron job firing while the last one still works):

- A file is picked up only when its size, mtime and inode did not change across two looks.
- ``os.rename`` into processing/ is the claim: of two watchers racing for one file exactly one
  rename succeeds, the other gets FileNotFoundError and skips it. The per-file lock is taken
  *before* the rename, so no other watcher ever sees the file in processing/ unlocked.
- A file in processing/ whose lock nobody holds was left by a crash, a clean stop, or a change
  during its import: the next pass imports it again once it holds still for the settle time,
  and the ledger turns the rows already created into already_created.
- Names in processing/, done/ and failed/ are chosen under one short inbox-wide lock
  (processing/.watch.lock), so an earlier file of the same name is never overwritten.

Only regular files with one name are read (checked with lstat, never through a link): a
symbolic link, a pipe, a device or a hard link is moved to failed/ unread, with a note. A file
is checked again in processing/ before its import (it may have been swapped between the look and
the rename) and after it: if its size, mtime or inode changed while it was imported (a writer
that paused longer than the settle time), it stays in processing/ and the next pass imports it
whole again; it never reaches done/ with rows unread.

Derived names (``<name>.results.csv.part``, ``<name>.lock``, time-stamped names) must fit in
255 bytes: a longer name is cut and given a hash of the whole name (``_fit``). A file whose
name, claim or move fails is logged and left; the pass goes on with the others.

Files written here (notes, results moved out of processing/) get the inbox folder's
read bits at most and never group/other write (``Inbox.file_mode``). (``watch.py``'s text log
lines escape control characters, so a file name cannot forge a log line.)

Who owns a file is decided by the inbox's locks (``ClaimLocks``): POSIX ``flock`` by default
(``FileLocks``: the watchers of one inbox on one machine, as one user), or, with a PostgreSQL
ledger, the database (``DatabaseLocks``: a ``claims`` row per file with its owner and a
heartbeat, and an advisory lock for the inbox-wide lock), so watchers on several machines can
share one inbox. The renames stay the same either way; a crashed machine's claim expires once
its heartbeat is older than ``STALE_AFTER`` (at once if its process is gone on this machine),
and another watcher finishes the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import socket
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from importer.errors import AbortedError, ConfigError

SUFFIXES = frozenset({".csv", ".xlsx", ".xlsm", ".xls", ".ods"})
RESULTS = ".results.csv"
ERRORS = ".errors.csv"
NOTE = ".error.txt"
PART = ".part"  # results being written in processing/; not a data suffix, so never picked up
LOCK = ".lock"
NAME_MAX = 255  # bytes in one file name on ext4, APFS, NTFS
ROOM = NAME_MAX - len(RESULTS + PART)  # a name in the folders leaves room for any suffix
STAMP_ROOM = 24  # what _candidates adds: ".YYYYmmdd-HHMMSS-NNNNNN"


@dataclass
class Claimed:
    """A file in processing/ whose lock this process holds."""

    path: Path
    unlock: Callable[[], None]
    picked_up_as: str  # its name in the inbox (for a resumed file: its name in processing/)
    seen: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) when its import began

    @property
    def results_part(self) -> Path:
        return self.path.with_name(_fit(self.path.name, ROOM) + RESULTS + PART)

    @property
    def errors_part(self) -> Path:
        return self.path.with_name(_fit(self.path.name, ROOM) + ERRORS + PART)

    def release(self) -> None:
        self.unlock()


class ClaimLocks(Protocol):
    """Who owns which file in processing/, and the inbox-wide lock."""

    def exclusive(self) -> AbstractContextManager[None]:
        """The inbox-wide lock, held briefly: around choosing a free name and renaming."""

    def try_lock(self, name: str) -> Callable[[], None] | None:
        """Own processing/``name``: the function that gives it up, or None if it is owned."""

    def close(self) -> None: ...


class FileLocks:
    """flock: ``processing/<name>.lock`` per file, ``processing/.watch.lock`` for the inbox."""

    def __init__(self, processing: Path) -> None:
        self.processing = processing

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        fd = os.open(self.processing / ".watch.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def try_lock(self, name: str) -> Callable[[], None] | None:
        lock_path = self.processing / (_fit(name, ROOM) + LOCK)
        fd = _try_lock(lock_path)
        if fd is None:
            return None

        def unlock() -> None:
            # Unlink before unlocking: a process that opened the old lock file finds, once it
            # gets the lock, that the path no longer names it, and backs off (see _try_lock).
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
            os.close(fd)

        return unlock

    def close(self) -> None:
        pass


class ClaimsDatabase(Protocol):
    """What DatabaseLocks needs of the ledger's store (``ledger_postgres.PostgresStore``,
    which holds the SQL)."""

    name: str  # for messages (its password masked)
    errors: tuple[type[Exception], ...]

    def scrub(self, exc: BaseException | str) -> str: ...

    def claim_file(self, inbox: str, name: str, owner: tuple) -> bool: ...

    def claim_holder(self, inbox: str, name: str) -> tuple | None: ...

    def take_over(self, inbox: str, name: str, stale_owner: str, owner: tuple) -> bool: ...

    def release_file(self, inbox: str, name: str, owner: str) -> None: ...

    def beat_claims(self, inbox: str, owner: str, names: list[str]) -> None: ...

    def inbox_lock(self, inbox: str) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


class DatabaseLocks:
    """Claims in the ledger's database, for watchers on several machines sharing one inbox.

    A file is owned by the watcher whose row in ``claims`` (inbox, name) it is; a thread keeps
    the rows it holds fresh every ``heartbeat_every`` seconds. A row is taken over when its
    heartbeat is older than ``stale_after`` (its machine is gone) or, on this machine, when
    its process is gone. The inbox is named by an id kept in ``processing/.inbox-id`` (the
    same folder on every machine, wherever each mounts it).
    """

    def __init__(
        self,
        database: ClaimsDatabase,
        processing: Path,
        *,
        heartbeat_every: float = 10.0,
        stale_after: float = 60.0,
        host: str | None = None,
    ) -> None:
        from importer.ledger import process_start

        self.db = database
        self.inbox = _inbox_id(processing)
        self.owner = uuid.uuid4().hex
        self.host = host or socket.gethostname()
        self.me = (self.owner, self.host, os.getpid(), process_start(os.getpid()))
        self.stale_after = stale_after
        self._held: set[str] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeats, args=(heartbeat_every,), daemon=True, name="claims"
        )
        self._beat.start()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._trouble("lock the inbox"), self.db.inbox_lock(self.inbox):
            yield

    @contextlib.contextmanager
    def _trouble(self, doing: str) -> Iterator[None]:
        """The database unreachable: stop the pass (exit 3); files stay for the next run."""
        try:
            yield
        except self.db.errors as exc:
            raise AbortedError(
                f"cannot {doing} in the ledger database {self.db.name}: {self.db.scrub(exc)}."
                " Files stay where they are; the next run takes them up again"
            ) from None

    def try_lock(self, name: str) -> Callable[[], None] | None:
        with self._trouble(f"claim {name}"):
            if not (self.db.claim_file(self.inbox, name, self.me) or self._take_over(name)):
                return None
        with self._guard:
            self._held.add(name)

        def unlock() -> None:
            with self._guard:
                self._held.discard(name)
            # Not released (the database is gone): the claim expires with its heartbeat.
            with contextlib.suppress(*self.db.errors):
                self.db.release_file(self.inbox, name, self.owner)

        return unlock

    def _take_over(self, name: str) -> bool:
        """Take the claim of a watcher that is gone; False while its owner lives."""
        from importer.ledger import process_gone

        holder = self.db.claim_holder(self.inbox, name)
        if holder is None:
            return False  # released meanwhile: the next pass tries again
        owner, host, pid, started, age = holder
        gone = age >= self.stale_after or (host == self.host and process_gone(pid, started))
        return gone and self.db.take_over(self.inbox, name, owner, self.me)

    def _heartbeats(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._guard:
                held = sorted(self._held)
            # A missed beat is not fatal: the claim lasts stale_after, many beats.
            if held:
                with contextlib.suppress(*self.db.errors):
                    self.db.beat_claims(self.inbox, self.owner, held)

    def close(self) -> None:
        self._stop.set()
        self._beat.join(timeout=60)
        self.db.close()


def _inbox_id(processing: Path) -> str:
    """The id in processing/.inbox-id, written once (O_EXCL: two first watchers agree)."""
    path = processing / ".inbox-id"
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "w", encoding="ascii") as file:
            file.write(uuid.uuid4().hex + "\n")
            file.flush()
            os.fsync(file.fileno())
    for _ in range(100):  # another watcher created it a moment ago and is still writing
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
        threading.Event().wait(0.05)
    raise OSError(f"{path} is empty: remove it, and every watcher of this inbox will agree anew")


class Inbox:
    def __init__(
        self, root: Path, now: Callable[[], dt.datetime], locks: ClaimLocks | None = None
    ) -> None:
        self.root = root
        self.processing = root / "processing"
        self.done = root / "done"
        self.failed = root / "failed"
        self.now = now
        self.file_mode = 0o600  # set by prepare() from the inbox's own mode
        self.locks: ClaimLocks = locks or FileLocks(self.processing)

    def prepare(self) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"inbox folder {self.root} not found; create it or fix the path")
        inbox_mode = stat.S_IMODE(os.stat(self.root).st_mode)
        # What we write is never more readable than the inbox, nor writable by others.
        self.file_mode = inbox_mode & 0o644
        try:
            # processing/ holds the files being read: droppers must not be able to swap them.
            self.processing.mkdir(mode=inbox_mode & 0o755, exist_ok=True)
            for folder in (self.done, self.failed):
                folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {exc.filename}: {exc.strerror}; check the inbox permissions"
            ) from None

    def look(self, folder: Path | None = None) -> dict[str, tuple[int, int, int]]:
        """Regular data files in the folder: name -> (size, mtime_ns, inode)."""
        return self.scan(folder)[0]

    def scan(
        self, folder: Path | None = None
    ) -> tuple[dict[str, tuple[int, int, int]], dict[str, str]]:
        """Data files in the folder, by lstat: the regular ones as name -> identity, and the
        ones never to be opened (links, pipes, devices) as name -> what they are."""
        found, refused = {}, {}
        with os.scandir(folder or self.root) as entries:
            for entry in entries:
                if not is_data_file(entry.name):
                    continue
                with contextlib.suppress(FileNotFoundError):  # claimed meanwhile
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        continue  # a folder named like a file: not ours to move
                    why = refusal(st)
                    if why:
                        refused[entry.name] = why
                    else:
                        found[entry.name] = identity(st)
        return found, refused

    def claim(self, name: str) -> Claimed | None:
        """Move INBOX/name into processing/, locked. None: another watcher took it first."""
        with self.exclusive():
            for target in self._candidates(name):
                if any(
                    (self.processing / (target + extra)).exists()
                    for extra in ("", RESULTS + PART, ERRORS + PART)
                ):
                    continue
                claimed = self._lock(target, name)
                if claimed is None:
                    continue
                try:
                    os.rename(self.root / name, claimed.path)
                except FileNotFoundError:  # the rename is the claim: another watcher won
                    claimed.release()
                    return None
                except OSError:
                    claimed.release()
                    raise
                return claimed
        raise AssertionError("unreachable: the candidate names never run out")

    def resume(self, name: str) -> Claimed | None:
        """Lock a file left in processing/. None: a live watcher holds it, or just filed it."""
        claimed = self._lock(name, name)
        if claimed is not None and not os.path.lexists(claimed.path):
            claimed.release()
            return None
        return claimed

    def file_away(self, claimed: Claimed, folder: Path, note: str = "") -> dict[str, Path]:
        """Move the file and its results into done/ or failed/ under a name not yet used there."""
        with self.exclusive():
            target = self._free_name(folder, claimed.path.name)
            placed = {}
            # The data file moves last: while it is in processing/, the job is not finished.
            for part, extra in ((claimed.results_part, RESULTS), (claimed.errors_part, ERRORS)):
                if part.exists():
                    self._narrow_mode(part)
                    os.rename(part, folder / (target + extra))
                    placed[extra] = folder / (target + extra)
            if note:
                self._write_note(folder / (target + NOTE), note)
                placed[NOTE] = folder / (target + NOTE)
            os.rename(claimed.path, folder / target)
            placed[""] = folder / target
        return placed

    def set_aside(self, source: Path, note: str) -> dict[str, Path] | None:
        """Move a link, pipe or device into failed/ (the rename moves the entry itself and
        never opens it), with a note. None: another watcher moved it first."""
        with self.exclusive():
            target = self._free_name(self.failed, source.name)
            try:
                os.rename(source, self.failed / target)
            except FileNotFoundError:
                return None
            self._write_note(self.failed / (target + NOTE), note)
        return {"": self.failed / target, NOTE: self.failed / (target + NOTE)}

    def _free_name(self, folder: Path, name: str) -> str:
        # lexists: a dangling link planted under the name we want counts as taken.
        return next(
            t
            for t in self._candidates(name)
            if not any(
                os.path.lexists(folder / (t + extra)) for extra in ("", RESULTS, ERRORS, NOTE)
            )
        )

    def _narrow_mode(self, path: Path) -> None:
        # Best effort: some network shares refuse chmod, and a file must still be filed away.
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & self.file_mode)

    def _write_note(self, path: Path, note: str) -> None:
        # O_EXCL never follows a link; the mode keeps the note as private as the inbox.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, self.file_mode)
        with open(fd, "w", encoding="utf-8", errors="backslashreplace") as file:
            file.write(note + "\n")

    def _candidates(self, name: str) -> Iterator[str]:
        """``name``, then ``stem.YYYYmmdd-HHMMSS.ext``, then with ``-2``, ``-3``...; each short
        enough to take any suffix (see _fit)."""
        yield _fit(name, ROOM)
        stem, ext = os.path.splitext(_fit(name, ROOM - STAMP_ROOM))
        stamp = self.now().strftime("%Y%m%d-%H%M%S")
        yield f"{stem}.{stamp}{ext}"
        n = 2
        while True:
            yield f"{stem}.{stamp}-{n}{ext}"
            n += 1

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The inbox-wide lock, held briefly: around choosing a free name and renaming into it."""
        with self.locks.exclusive():
            yield

    def _lock(self, target: str, picked_up_as: str) -> Claimed | None:
        unlock = self.locks.try_lock(target)
        if unlock is None:
            return None
        return Claimed(self.processing / target, unlock, picked_up_as)


def is_data_file(name: str) -> bool:
    return not name.startswith((".", "~$")) and os.path.splitext(name)[1].lower() in SUFFIXES


def identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def refusal(st: os.stat_result) -> str:
    """Why a file must not be read ("" for a regular file with a single name). A link could
    point anywhere the watcher may read (/proc/self/environ); a pipe would block the pass."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_nlink > 1:
        return "a hard link (the file has other names)"
    return ""


def _fit(name: str, room: int) -> str:
    """``name`` if it is UTF-8 and fits in ``room`` bytes. Else its stem, cut short and with
    undecodable bytes replaced, ``~`` and a hash of the whole name, then its extension: distinct
    names stay distinct, it is still a data file, and the ledger and results can store it."""
    raw = os.fsencode(name)
    readable = raw.decode("utf-8", "replace")
    if readable == name and len(raw) <= room:
        return name
    stem, ext = os.path.splitext(readable)
    tag = "~" + hashlib.sha256(raw).hexdigest()[:10]
    budget = room - len(tag) - len(ext.encode())
    while len(stem.encode()) > budget:  # by characters: never half a UTF-8 sequence
        stem = stem[:-1]
    return stem + tag + ext


def _try_lock(path: Path) -> int | None:
    """An exclusive, non-blocking flock on ``path`` (created if missing), or None if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The holder may have removed the file between our open and our lock.
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(fd)
    return None
