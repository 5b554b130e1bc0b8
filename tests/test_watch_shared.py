"""`watch` on several machines over one inbox, with one PostgreSQL ledger: the database, not
flock, decides which watcher owns a file; a crashed watcher's claim expires and another
finishes the file; nothing is created twice.

Against the real sandbox and a real PostgreSQL server (tests/postgres_server.py). "Another
machine" is a claim whose host is not this one: only its heartbeat says whether it lives.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from importer.cli import main
from importer.errors import AbortedError
from importer.inbox import DatabaseLocks, Inbox
from importer.ledger import LedgerURL, open_store

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed: pip install -e '.[test]'"
)

ROOT = Path(__file__).resolve().parent.parent
MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")
HEADER = "First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign"


def scans(path: Path, count: int, first: int = 0) -> Path:
    lines = [HEADER] + [
        f"P{n},{2001 + n % 120},Spring Expo,visited,"
        f"03/{10 + n // 600:02d}/2026 {8 + n // 60 % 10:02d}:{n % 60:02d},B{n % 30},37"
        for n in range(first, first + count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def created_twice(sandbox) -> list:
    keys = Counter((a["contactId"], a["activityDate"]) for a in sandbox.state.activities)
    return [key for key, n in keys.items() if n > 1]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


def watch_once(inbox: Path, mapping: Path, ledger: str) -> int:
    return main(
        ["watch", str(inbox), "--mapping", str(mapping), "--once", "--settle", "0",
         "--ledger", ledger]
    )  # fmt: skip


def db_inbox(inbox: Path, url: str, host: str | None = None) -> Inbox:
    box = Inbox(inbox, now=dt.datetime.now)
    box.prepare()
    box.locks = DatabaseLocks(open_store(LedgerURL(url)), box.processing, host=host)
    return box


def test_claim_is_won_by_exactly_one_watcher_through_the_database(inbox, pg_url):
    scans(inbox / "a.csv", 1)
    first, second = db_inbox(inbox, pg_url), db_inbox(inbox, pg_url)
    try:
        claimed = first.claim("a.csv")
        assert claimed is not None
        assert second.claim("a.csv") is None  # the file is gone: another watcher renamed it
        assert second.resume("a.csv") is None  # and the database says it is owned
        assert not (inbox / "processing" / "a.csv.lock").exists()  # no flock files
        claimed.release()
        assert second.resume("a.csv") is not None  # released: it may be finished
    finally:
        first.locks.close()
        second.locks.close()


def test_a_file_a_live_watcher_on_another_machine_owns_is_left_alone(
    inbox, mapping, sandbox, pg_url
):
    (inbox / "processing").mkdir()
    scans(inbox / "processing" / "busy.csv", 3)
    other = db_inbox(inbox, pg_url, host="elsewhere")
    try:
        assert other.resume("busy.csv") is not None  # its heartbeat thread keeps it fresh
        assert watch_once(inbox, mapping, pg_url) == 0
        assert listing(inbox / "processing") == ["busy.csv"]
        assert sandbox.state.activities == []
    finally:
        other.locks.close()


def test_a_crashed_machine_s_claim_expires_and_another_watcher_finishes_the_file(
    inbox, mapping, sandbox, pg_url
):
    (inbox / "processing").mkdir()
    scans(inbox / "processing" / "left.csv", 3)
    other = db_inbox(inbox, pg_url, host="elsewhere")
    assert other.resume("left.csv") is not None
    other.locks.close()  # that machine stops beating (crashed) ...
    sql(pg_url, "UPDATE claims SET heartbeat_at = heartbeat_at - 600")  # ... long ago

    assert watch_once(inbox, mapping, pg_url) == 0

    assert listing(inbox / "done") == ["left.csv", "left.csv.results.csv"]
    assert len(sandbox.state.activities) == 3
    assert sql(pg_url, "SELECT count(*) FROM claims") == [(0,)]


def test_watch_with_a_postgres_ledger_from_the_environment(
    inbox, mapping, sandbox, pg_url, monkeypatch
):
    monkeypatch.setenv("ELOQUA_IMPORT_LEDGER", pg_url)
    scans(inbox / "a.csv", 5)
    assert main(["watch", str(inbox), "--mapping", str(mapping), "--once", "--settle", "0"]) == 0
    assert listing(inbox / "done") == ["a.csv", "a.csv.results.csv"]
    assert sql(pg_url, "SELECT count(*) FROM activities WHERE state = 'created'") == [(5,)]
    assert not (tmp := Path("state")).exists() or not any(tmp.rglob("ledger.sqlite3"))


# --- the "done when": two machines, one ledger, one inbox, kill -9 at random -----------


def start_watch(workdir: Path, inbox: Path, mapping: Path, ledger: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "importer", "watch", str(inbox), "--mapping", str(mapping),
         "--ledger", ledger, "--settle", "0", "--once", "--concurrency", "2"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(workdir / "state")},
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def results_statuses(folder: Path) -> Counter:
    import csv

    counts: Counter = Counter()
    for path in folder.glob("*.results.csv"):
        with path.open(encoding="utf-8-sig", newline="") as file:
            counts.update(line["status"] for line in csv.DictReader(file))
    return counts


@pytest.mark.slow
def test_two_watchers_sharing_a_postgres_ledger_killed_at_random_import_each_file_once(
    tmp_path, inbox, mapping, sandbox_factory, pg_url
):
    sandbox = sandbox_factory(latency=0.1)  # slow answers: the kills land mid-file
    names = [scans(inbox / f"drop{n}.csv", 15, first=15 * n).name for n in range(6)]
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]  # separate working folders
    for folder in machines:
        folder.mkdir()
    chance = random.Random(14)
    kills = 0
    for _ in range(4):  # rounds: both start; one or both are killed at a random moment
        procs = [start_watch(folder, inbox, mapping, pg_url) for folder in machines]
        moment = len(sandbox.state.activities) + chance.randint(1, 10)
        deadline = time.monotonic() + 300  # generous: timers here wake late
        while len(sandbox.state.activities) < moment and any(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "the watchers made no progress"
            time.sleep(0.005)
        for proc in chance.sample(procs, chance.randint(1, 2)):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        for proc in procs:
            proc.communicate(timeout=300)
        assert not created_twice(sandbox)
    assert kills >= 2, "the watchers were killed while they worked"
    procs = [start_watch(folder, inbox, mapping, pg_url) for folder in machines]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, 1), err

    assert listing(inbox) == ["done", "failed", "processing"]
    assert listing(inbox / "processing") == []
    done = [n for n in listing(inbox / "done") if not n.endswith(".results.csv")]
    assert not [n for n in listing(inbox / "failed") if n.endswith(".error.txt")]
    failed = [
        n for n in listing(inbox / "failed") if not n.endswith((".results.csv", ".errors.csv"))
    ]
    assert sorted(done + failed) == sorted(names), "every file filed exactly once"
    assert not created_twice(sandbox)
    # A file reaches failed/ only when a kill left some of its rows uncertain (sent, no
    # answer recorded): never resent on a guess, and never created twice.
    assert set(results_statuses(inbox / "failed")) <= {"created", "already_created", "uncertain"}
    assert set(results_statuses(inbox / "done")) <= {"created", "already_created"}
    ids = {a["id"] for a in sandbox.state.activities}
    statuses = results_statuses(inbox / "done") + results_statuses(inbox / "failed")
    assert statuses["created"] + statuses["already_created"] + statuses["uncertain"] == 90
    assert len(ids) >= statuses["created"] + statuses["already_created"]


def test_a_database_that_fails_stops_the_pass_and_leaves_the_file(
    inbox, mapping, sandbox, pg_url, capsys
):
    scans(inbox / "a.csv", 2)
    box = db_inbox(inbox, pg_url)
    try:
        sql(pg_url, "DROP TABLE claims")  # as if the database went away mid-pass
        with pytest.raises(AbortedError, match=r"cannot claim a\.csv in the ledger database"):
            box.claim("a.csv")
    finally:
        box.locks.close()
    assert (inbox / "a.csv").exists() and listing(inbox / "processing") == []


def test_the_library_api_takes_a_postgres_ledger(pg_url, sandbox):
    import importer

    records = [{"First Name": "P1", "Contact ID": "2001", "Event": "Spring Expo",
                "Action": "visited", "Scan Time": "03/10/2026 08:00", "Booth": "B1",
                "Campaign": "37"}]  # fmt: skip
    mapping = Path(__file__).parent / "fixtures" / "booth_scans.yaml"
    first = importer.import_records(records, mapping=mapping, ledger=pg_url)
    again = importer.import_records(records, mapping=mapping, ledger=pg_url)
    assert [o.status for o in first.outcomes] == ["created"]
    assert [o.status for o in again.outcomes] == ["already_created"]
