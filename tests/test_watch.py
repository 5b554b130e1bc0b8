"""`eloqua-import watch`: dropped files are imported once, then filed in done/ or failed/.

Against the real sandbox. No test waits on the clock: `--settle 0` (files are complete when
dropped), or an injected sleep that plays the part of a writer or of time passing.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from importer.cli import main
from importer.config import connection_from_env
from importer.errors import ExitStatus
from importer.inbox import Inbox
from importer.watch import EventLog, Watcher, WatchOptions

ROOT = Path(__file__).resolve().parent.parent
MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")
HEADER = "First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign"


def scans(path: Path, count: int, first: int = 0, action: str = "visited") -> Path:
    """Booth scans numbered first..first+count-1: different numbers, different activities."""
    lines = [HEADER] + [
        f"P{n},{2001 + n % 120},Spring Expo,{action},"
        f"03/{10 + n // 600:02d}/2026 {8 + n // 60 % 10:02d}:{n % 60:02d},B{n % 30},37"
        for n in range(first, first + count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def statuses(path: Path) -> Counter:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return Counter(line["status"] for line in csv.DictReader(file))


def created_twice(sandbox) -> list:
    keys = Counter((a["contactId"], a["activityDate"]) for a in sandbox.state.activities)
    return [key for key, n in keys.items() if n > 1]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


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


def watch_once(inbox: Path, mapping: Path, *args: str) -> int:
    return main(
        [
            "watch",
            str(inbox),
            "--mapping",
            str(mapping),
            "--once",
            "--settle",
            "0",
            "--ledger",
            str(inbox.parent / "ledger.sqlite3"),
            *args,
        ]
    )


def watcher(inbox: Path, mapping: Path, sleep, *, once: bool = True) -> Watcher:
    options = WatchOptions(
        inbox=inbox, mapping_path=mapping, once=once, ledger_path=inbox.parent / "ledger.sqlite3"
    )
    return Watcher(options, connection_from_env(), EventLog("json"), sleep=sleep)


async def no_wait(seconds: float) -> None:
    pass


# --- where files end up -----------------------------------------------------------------------


def test_clean_file_goes_to_done_and_file_with_invalid_rows_to_failed(inbox, mapping, sandbox):
    scans(inbox / "clean.csv", 10)
    bad = scans(inbox / "bad.csv", 5, first=100)
    bad.write_text(
        bad.read_text() + "Ann,2003,Spring Expo,danced,03/09/2026 10:00,B12,\n", encoding="utf-8"
    )

    assert watch_once(inbox, mapping) == 1

    assert listing(inbox) == ["done", "failed", "processing"]
    assert listing(inbox / "processing") == []
    assert listing(inbox / "done") == ["clean.csv", "clean.csv.results.csv"]
    assert statuses(inbox / "done" / "clean.csv.results.csv") == {"created": 10}
    assert listing(inbox / "failed") == ["bad.csv", "bad.csv.errors.csv", "bad.csv.results.csv"]
    assert statuses(inbox / "failed" / "bad.csv.results.csv") == {"created": 5, "invalid": 1}
    assert "danced" in (inbox / "failed" / "bad.csv.errors.csv").read_text(encoding="utf-8-sig")
    assert len(sandbox.state.activities) == 15


def test_nothing_to_do_exits_0(inbox, mapping, sandbox):
    assert watch_once(inbox, mapping) == 0
    assert listing(inbox) == ["done", "failed", "processing"]


def test_redropped_file_creates_nothing_twice_and_overwrites_nothing(inbox, mapping, sandbox):
    data = scans(inbox / "monday.csv", 12).read_bytes()
    assert watch_once(inbox, mapping) == 0
    first_results = (inbox / "done" / "monday.csv.results.csv").read_bytes()

    (inbox / "monday.csv").write_bytes(data)  # the same name again
    (inbox / "monday (1).csv").write_bytes(data)  # and a copy
    assert watch_once(inbox, mapping) == 0

    done = listing(inbox / "done")
    assert len(done) == 6 and "monday (1).csv" in done and "monday.csv" in done
    again = next(n for n in done if n.startswith("monday.2") and n.endswith(".csv.results.csv"))
    assert statuses(inbox / "done" / again) == {"already_created": 12}
    assert statuses(inbox / "done" / "monday (1).csv.results.csv") == {"already_created": 12}
    assert (inbox / "done" / "monday.csv.results.csv").read_bytes() == first_results
    assert len(sandbox.state.activities) == 12


def test_redropped_file_with_the_ledger_lost_is_refused_before_sending(
    inbox, mapping, sandbox, capsys
):
    data = scans(inbox / "monday.csv", 12).read_bytes()
    assert watch_once(inbox, mapping) == 0
    (inbox.parent / "ledger.sqlite3").unlink()  # a new disk, another user: the ledger is gone

    (inbox / "monday.csv").write_bytes(data)
    assert watch_once(inbox, mapping) == 2

    err = capsys.readouterr().err
    assert "knows none of them" in err and "ledger adopt" in err
    assert listing(inbox / "processing") == ["monday.csv"]  # kept for the next run
    assert len(sandbox.state.activities) == 12  # nothing created twice

    results = inbox / "done" / "monday.csv.results.csv"
    assert main(["ledger", "adopt", str(results), "--mapping", str(mapping),
                 "--ledger", str(inbox.parent / "ledger.sqlite3")]) == 0  # fmt: skip
    assert watch_once(inbox, mapping) == 0
    again = next(n for n in listing(inbox / "done") if n.startswith("monday.2"))
    assert statuses(inbox / "done" / f"{again}.results.csv") == {"already_created": 12}
    assert len(sandbox.state.activities) == 12


def test_unreadable_file_goes_to_failed_with_a_message(inbox, mapping, sandbox, capsys):
    (inbox / "broken.xlsx").write_bytes(b"PK\x03\x04 this is not really a workbook")
    scans(inbox / "ok.csv", 3)

    assert watch_once(inbox, mapping) == 1

    assert listing(inbox / "failed") == ["broken.xlsx", "broken.xlsx.error.txt"]
    note = (inbox / "failed" / "broken.xlsx.error.txt").read_text(encoding="utf-8")
    assert "broken.xlsx" in note
    assert "broken.xlsx -> failed/broken.xlsx" in capsys.readouterr().err
    assert listing(inbox / "done") == ["ok.csv", "ok.csv.results.csv"]


def test_file_without_the_mapped_columns_goes_to_failed(inbox, mapping, sandbox):
    (inbox / "other.csv").write_text("Email,When\na@b.com,2026-03-01\n", encoding="utf-8")
    assert watch_once(inbox, mapping) == 1
    note = (inbox / "failed" / "other.csv.error.txt").read_text(encoding="utf-8")
    assert "Contact ID" in note
    assert sandbox.state.activities == []


def test_other_files_are_left_in_the_inbox(inbox, mapping, sandbox):
    for name in ("notes.txt", ".upload.csv", "~$book.xlsx"):
        (inbox / name).write_text("x", encoding="utf-8")
    assert watch_once(inbox, mapping) == 0
    assert listing(inbox) == ["done", "failed", "notes.txt", "processing", "~$book.xlsx"]
    assert (inbox / ".upload.csv").exists()


# --- stability --------------------------------------------------------------------------------


def test_file_still_being_written_is_not_picked_up(inbox, mapping, sandbox):
    growing = scans(inbox / "growing.csv", 5)

    async def writer_appends(seconds: float) -> None:  # the settle wait: the writer goes on
        with growing.open("a", encoding="utf-8") as file:
            file.write("P9,2050,Spring Expo,visited,03/10/2026 08:09,B1,37\n")

    log = watcher(inbox, mapping, writer_appends)
    assert asyncio.run(log.run()) == ExitStatus.OK
    assert growing.exists() and listing(inbox / "done") == []
    assert sandbox.state.activities == []

    # Once it stops changing across two looks, it is taken.
    assert asyncio.run(watcher(inbox, mapping, no_wait).run()) == ExitStatus.OK
    assert statuses(inbox / "done" / "growing.csv.results.csv") == {"created": 6}


def test_long_running_mode_takes_later_drops_and_stops_cleanly(inbox, mapping, sandbox):
    waits: list[float] = []
    watch = None

    async def time_passes(seconds: float) -> None:
        waits.append(seconds)
        intervals = waits.count(60.0)
        if seconds == 60.0 and intervals == 1:
            scans(inbox / "later.csv", 4)  # dropped while we wait
        if intervals == 3:
            watch._request_stop("test")

    watch = watcher(inbox, mapping, time_passes, once=False)
    assert asyncio.run(watch.run()) == ExitStatus.OK
    assert statuses(inbox / "done" / "later.csv.results.csv") == {"created": 4}
    # A file seen unchanged at the previous pass needs no second settle wait.
    assert waits == [60.0, 5.0, 60.0, 60.0]


# --- overlapping runs and crashes -------------------------------------------------------------


def test_claim_is_won_by_exactly_one_watcher(inbox, mapping):
    scans(inbox / "a.csv", 1)
    first, second = (Inbox(inbox, now=dt.datetime.now) for _ in range(2))
    first.prepare()
    claimed = first.claim("a.csv")
    assert claimed is not None
    assert second.claim("a.csv") is None  # the file is gone: FileNotFoundError, skipped
    assert second.resume("a.csv") is None  # and its lock is held
    claimed.release()
    assert second.resume("a.csv") is not None  # the holder died: it may be finished


def test_file_left_in_processing_by_a_crash_is_finished_on_next_start(
    inbox, mapping, sandbox, tmp_path
):
    # A crashed run had created the first 4 rows, then died with the file in processing/.
    assert (
        main(
            [
                "run",
                str(scans(tmp_path / "part.csv", 4)),
                "--mapping",
                str(mapping),
                "--quiet",
                "--ledger",
                str(tmp_path / "ledger.sqlite3"),
            ]
        )
        == 0
    )
    (inbox / "processing").mkdir()
    scans(inbox / "processing" / "big.csv", 10)

    assert watch_once(inbox, mapping) == 0

    assert statuses(inbox / "done" / "big.csv.results.csv") == {
        "already_created": 4,
        "created": 6,
    }
    assert listing(inbox / "processing") == []
    assert len(sandbox.state.activities) == 10 and not created_twice(sandbox)


def test_file_a_live_watcher_is_importing_is_left_alone(inbox, mapping, sandbox):
    (inbox / "processing").mkdir()
    scans(inbox / "processing" / "busy.csv", 3)
    fd = os.open(inbox / "processing" / "busy.csv.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a live watcher holds it
        assert watch_once(inbox, mapping) == 0
        assert listing(inbox / "processing") == ["busy.csv", "busy.csv.lock"]
        assert sandbox.state.activities == []
    finally:
        os.close(fd)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start_watch(tmp_path: Path, inbox: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "watch",
            str(inbox),
            "--mapping",
            str(tmp_path / "map.yaml"),
            "--ledger",
            str(tmp_path / "ledger.sqlite3"),
            "--settle",
            "0",
            "--log-format",
            "json",
            *args,
        ],
        env=child_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_overlapping_once_runs_import_every_file_exactly_once(
    tmp_path, inbox, mapping, sandbox_factory
):
    sandbox = sandbox_factory(latency=0.005)
    names = []
    for n in range(6):
        names.append(scans(inbox / f"drop{n}.csv", 15, first=15 * n).name)
    data = (inbox / "drop0.csv").read_bytes()
    for copy in ("drop0 (1).csv", "drop0 (2).csv"):  # re-dropped copies of the same file
        (inbox / copy).write_bytes(data)
        names.append(copy)

    procs = [start_watch(tmp_path, inbox, "--once") for _ in range(2)]
    logs = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        logs += events(err)

    taken = Counter(e["file"] for e in logs if e["event"] in ("file_picked_up", "file_resumed"))
    assert taken == Counter(names), "every file taken exactly once"
    finished = [e for e in logs if e["event"] == "file_finished"]
    assert sorted(e["file"] for e in finished) == sorted(names)
    assert {e["destination"] for e in finished} == {"done"}
    assert listing(inbox) == ["done", "failed", "processing"]
    assert listing(inbox / "processing") == []
    assert sorted(n for n in listing(inbox / "done") if not n.endswith(".results.csv")) == sorted(
        names
    )
    assert len(sandbox.state.activities) == 90 and not created_twice(sandbox)


def test_json_log_lines_parse_and_carry_the_counts(inbox, mapping, sandbox, capsys):
    scans(inbox / "a.csv", 7)
    assert watch_once(inbox, mapping, "--log-format", "json") == 0
    logged = events(capsys.readouterr().err)  # every line is JSON
    assert [e["event"] for e in logged] == [
        "watch_started",
        "file_picked_up",
        "file_finished",
        "watch_stopped",
    ]
    finished = logged[2]
    assert finished["file"] == "a.csv" and finished["destination"] == "done"
    assert finished["counts"] == {"created": 7} and finished["rows"] == 7
    assert finished["results"] == str(inbox / "done" / "a.csv.results.csv")
    assert all({"time", "level", "message"} <= e.keys() for e in logged)


def test_the_watch_log_names_the_ledger_in_use(inbox, mapping, sandbox, capsys):
    assert watch_once(inbox, mapping, "--log-format", "json") == 0
    started = events(capsys.readouterr().err)[0]
    assert started["event"] == "watch_started"
    assert started["ledger"] == str(inbox.parent / "ledger.sqlite3")
    assert f"ledger {inbox.parent / 'ledger.sqlite3'}" in started["message"]


def test_refused_credentials_leave_the_file_for_the_next_run(
    inbox, mapping, sandbox, monkeypatch, capsys
):
    scans(inbox / "a.csv", 3)
    monkeypatch.setenv("ELOQUA_PASSWORD", "hunter2-not-it")
    assert watch_once(inbox, mapping, "--log-format", "json") == 3
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert any(e["level"] == "error" and "credentials" in e["message"] for e in events(err))
    assert listing(inbox / "processing") == ["a.csv"]
    assert sandbox.state.activities == []

    monkeypatch.setenv("ELOQUA_PASSWORD", "sandbox")
    assert watch_once(inbox, mapping) == 0
    assert statuses(inbox / "done" / "a.csv.results.csv") == {"created": 3}


@pytest.mark.slow
def test_sigterm_stops_a_long_running_watch_and_the_next_start_finishes_the_file(
    tmp_path, inbox, mapping, sandbox_factory
):
    sandbox = sandbox_factory(latency=0.01)
    scans(inbox / "big.csv", 160)
    proc = start_watch(tmp_path, inbox, "--interval", "3600")
    deadline = time.monotonic() + 300  # generous: this machine's timers wake late
    while len(sandbox.state.activities) < 20 and proc.poll() is None:
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    # The pipeline's "SIGTERM: stopping..." notice is an event too: every line is JSON.
    assert [line for line in err.splitlines() if not line.startswith("{")] == []
    logged = events(err)
    assert {"stopping", "file_interrupted"} <= {e.get("event") for e in logged}
    assert any("Waiting for the requests in flight" in e["message"] for e in logged)
    # Left in processing/ with its partial results, unlocked.
    assert [n for n in listing(inbox / "processing") if not n.endswith(".part")] == ["big.csv"]
    assert len(sandbox.state.activities) < 160

    proc = start_watch(tmp_path, inbox, "--once")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    results = statuses(inbox / "done" / "big.csv.results.csv")
    assert results["created"] + results["already_created"] == 160
    assert len(sandbox.state.activities) == 160 and not created_twice(sandbox)


def test_an_outage_mid_file_leaves_it_for_the_next_run(inbox, mapping, sandbox_factory, no_backoff):
    sandbox = sandbox_factory(rate_503=1.0)  # Eloqua answers 503 to every creation
    scans(inbox / "monday.csv", 40)
    assert watch_once(inbox, mapping) == 3
    assert "monday.csv" in listing(inbox / "processing")
    assert listing(inbox / "failed") == [] and listing(inbox / "done") == []
    assert sandbox.state.activities == []


# --- a file that changes while it is imported (issue 10 #2) -----------------------------------


def test_file_that_grows_during_its_import_is_not_filed_away_and_no_row_is_lost(
    inbox, mapping, sandbox, monkeypatch
):
    import importer.watch as watch_module

    growing = scans(inbox / "growing.csv", 5)
    real_import = watch_module.run_import
    appended = []

    async def writer_resumes_during_the_import(options, connection):
        summary = await real_import(options, connection)
        if not appended:  # the writer paused longer than --settle, then went on
            with options.input_path.open("a", encoding="utf-8") as file:
                file.write("P9,2050,Spring Expo,visited,03/10/2026 08:09,B1,37\n")
            appended.append(options.input_path)
        return summary

    monkeypatch.setattr(watch_module, "run_import", writer_resumes_during_the_import)
    first = watcher(inbox, mapping, no_wait)
    assert asyncio.run(first.run()) == ExitStatus.OK
    assert not growing.exists() and listing(inbox / "done") == []
    assert "growing.csv" in listing(inbox / "processing")
    assert len(sandbox.state.activities) == 5

    # The next pass imports the whole file again: the rows sent come back already_created.
    assert asyncio.run(watcher(inbox, mapping, no_wait).run()) == ExitStatus.OK
    assert statuses(inbox / "done" / "growing.csv.results.csv") == {
        "already_created": 5,
        "created": 1,
    }
    assert len(sandbox.state.activities) == 6 and not created_twice(sandbox)
    assert [n for n in listing(inbox / "processing") if not n.endswith(".part")] == []


def test_a_csv_cut_mid_row_is_not_taken_until_its_last_line_ends(inbox, mapping, sandbox, capsys):
    whole = scans(inbox / "scans.csv", 5).read_text(encoding="utf-8")
    cut = whole[: whole.rindex(":") + 2]  # the writer paused mid-row: "... 08:04" is "... 08:0"
    (inbox / "scans.csv").write_text(cut, encoding="utf-8")

    assert watch_once(inbox, mapping) == 0
    assert "no line break yet" in capsys.readouterr().err
    assert "scans.csv" in listing(inbox) and sandbox.state.activities == []  # 08:00 never sent

    (inbox / "scans.csv").write_text(whole, encoding="utf-8")  # the writer finished the row
    assert watch_once(inbox, mapping) == 0
    assert statuses(inbox / "done" / "scans.csv.results.csv") == {"created": 5}
    assert len(sandbox.state.activities) == 5  # no cut-short twin at 08:00


def test_a_csv_without_a_final_line_break_is_taken_once_it_held_still_long_enough(
    inbox, mapping, sandbox
):
    exported = scans(inbox / "sheets.csv", 3)  # some exporters end without a line break
    exported.write_text(exported.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    an_hour_ago = time.time() - 3600
    os.utime(exported, (an_hour_ago, an_hour_ago))

    assert watch_once(inbox, mapping) == 0
    assert statuses(inbox / "done" / "sheets.csv.results.csv") == {"created": 3}


def test_file_left_in_processing_is_resumed_only_once_it_holds_still(inbox, mapping, sandbox):
    (inbox / "processing").mkdir()
    growing = scans(inbox / "processing" / "growing.csv", 3)

    async def writer_appends(seconds: float) -> None:  # the settle wait: the writer goes on
        with growing.open("a", encoding="utf-8") as file:
            file.write("P9,2050,Spring Expo,visited,03/10/2026 08:09,B1,37\n")

    assert asyncio.run(watcher(inbox, mapping, writer_appends).run()) == ExitStatus.OK
    assert sandbox.state.activities == [] and listing(inbox / "done") == []

    assert asyncio.run(watcher(inbox, mapping, no_wait).run()) == ExitStatus.OK
    assert statuses(inbox / "done" / "growing.csv.results.csv") == {"created": 4}


def test_file_changed_during_its_import_is_logged(inbox, mapping, sandbox, monkeypatch, capsys):
    import importer.watch as watch_module

    scans(inbox / "a.csv", 2)
    real_import = watch_module.run_import

    async def writer_rewrites(options, connection):
        summary = await real_import(options, connection)
        scans(options.input_path, 3, first=50)  # rewritten in place: same inode
        return summary

    monkeypatch.setattr(watch_module, "run_import", writer_rewrites)
    assert watch_once(inbox, mapping, "--log-format", "json") == 0
    changed = [e for e in events(capsys.readouterr().err) if e["event"] == "file_changed"]
    assert len(changed) == 1 and changed[0]["file"] == "a.csv"
    assert listing(inbox / "done") == [] and listing(inbox / "failed") == []


# --- only regular files are read (issue 10 #10) ------------------------------------------------

SECRET = "fake-secret-4f1c9a"


def every_file_in(folder: Path) -> list[Path]:
    """Regular files under ``folder``, never through a link."""
    found = []
    for top, _, names in os.walk(folder):
        for name in names:
            path = Path(top) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def test_symlinks_and_pipes_in_the_inbox_are_refused_and_never_read(
    tmp_path, inbox, mapping, sandbox, capsys
):
    environ = tmp_path / "environ"
    environ.write_bytes(f"HOME=/root\0ELOQUA_PASSWORD={SECRET}\0LANG=C\0".encode())
    (inbox / "x.csv").symlink_to(environ)
    (inbox / "real.csv").symlink_to(scans(tmp_path / "elsewhere.csv", 4))
    os.mkfifo(inbox / "pipe.csv")
    scans(inbox / "ok.csv", 2)

    assert watch_once(inbox, mapping, "--log-format", "json") == 1

    err = capsys.readouterr().err
    assert SECRET not in err
    for path in every_file_in(inbox):
        assert SECRET.encode() not in path.read_bytes(), path
    assert len(sandbox.state.activities) == 2  # only ok.csv's rows
    failed = inbox / "failed"
    assert (failed / "x.csv").is_symlink() and (failed / "real.csv").is_symlink()
    assert "symbolic link" in (failed / "x.csv.error.txt").read_text(encoding="utf-8")
    assert (failed / "pipe.csv.error.txt").exists()
    refused = {e["file"] for e in events(err) if e["event"] == "file_refused"}
    assert refused == {"x.csv", "real.csv", "pipe.csv"}
    assert listing(inbox / "done") == ["ok.csv", "ok.csv.results.csv"]


def test_symlink_left_in_processing_is_refused_too(tmp_path, inbox, mapping, sandbox):
    (inbox / "processing").mkdir()
    (inbox / "processing" / "real.csv").symlink_to(scans(tmp_path / "elsewhere.csv", 4))
    assert watch_once(inbox, mapping) == 1
    assert sandbox.state.activities == []
    assert (inbox / "failed" / "real.csv").is_symlink()


def test_hard_link_to_another_file_is_refused(tmp_path, inbox, mapping, sandbox):
    os.link(scans(tmp_path / "elsewhere.csv", 3), inbox / "linked.csv")
    assert watch_once(inbox, mapping) == 1
    assert sandbox.state.activities == []
    assert "hard link" in (inbox / "failed" / "linked.csv.error.txt").read_text(encoding="utf-8")


def test_file_swapped_for_a_symlink_after_it_was_seen_is_never_read(
    tmp_path, inbox, mapping, sandbox, monkeypatch
):
    scans(inbox / "a.csv", 3)
    elsewhere = scans(tmp_path / "elsewhere.csv", 4, first=10)
    real_claim = Inbox.claim

    def swapped_before_the_claim(self, name):
        (inbox / name).unlink()
        (inbox / name).symlink_to(elsewhere)
        return real_claim(self, name)

    monkeypatch.setattr(Inbox, "claim", swapped_before_the_claim)
    assert watch_once(inbox, mapping) == 1
    assert sandbox.state.activities == []
    assert (inbox / "failed" / "a.csv").is_symlink()


def test_missing_column_message_shows_a_short_escaped_excerpt_of_the_header(
    inbox, mapping, sandbox, capsys
):
    columns = [f"Column number {n} " + "x" * 60 for n in range(200)] + ["Contact  ID\x1b[2J"]
    (inbox / "wide.csv").write_text(",".join(columns) + "\n" + "1," * 200 + "2\n", "utf-8")

    assert watch_once(inbox, mapping, "--log-format", "json") == 1

    note = (inbox / "failed" / "wide.csv.error.txt").read_text(encoding="utf-8")
    err = capsys.readouterr().err
    for text in (note, err):
        assert "\x1b" not in text and "x" * 60 not in text and "Column number 150" not in text
    assert len(note) < 8000  # the header alone is 16 KB, listed once per missing column
    # The hint still points at the column that was meant.
    assert "closest existing column: 'Contact  ID\\x1b[2J'" in note


def test_files_the_watcher_writes_are_never_wider_than_the_inbox(inbox, mapping, sandbox):
    old = os.umask(0o002)
    try:
        inbox.chmod(0o750)
        bad = scans(inbox / "bad.csv", 2)
        bad.write_text(bad.read_text() + "Ann,2003,Spring Expo,danced,03/09/2026 10:00,B1,\n")
        (inbox / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
        scans(inbox / "ok.csv", 1, first=40)
        assert watch_once(inbox, mapping) == 1
    finally:
        os.umask(old)
    written = [
        inbox / "failed" / "broken.xlsx.error.txt",
        inbox / "failed" / "bad.csv.results.csv",
        inbox / "failed" / "bad.csv.errors.csv",
        inbox / "done" / "ok.csv.results.csv",
    ]
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o640, path
    # Droppers cannot swap a file in processing/ for a link while it is imported.
    assert (inbox / "processing").stat().st_mode & 0o022 == 0


def test_a_processing_folder_others_may_write_to_is_warned_about(inbox, mapping, sandbox, capsys):
    (inbox / "processing").mkdir()
    (inbox / "processing").chmod(0o777)
    assert watch_once(inbox, mapping) == 0
    assert "chmod go-w" in capsys.readouterr().err


# --- names: control characters (#12) and length (#13) -------------------------------------------


def test_newline_in_a_file_name_cannot_forge_a_text_log_line(inbox, mapping, sandbox, capsys):
    forged = "a.csv\n2026-03-14 09:05:01 picked up \x1b[8mz.csv"
    scans(inbox / forged, 2)
    assert watch_once(inbox, mapping) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4, "started, picked up, finished, stopped: one line each"
    assert not any(line.startswith("2026-03-14 09:05:01") for line in lines)
    assert "a.csv\\n2026-03-14 09:05:01 picked up \\x1b[8mz.csv" in lines[1]
    assert all("\x1b" not in line for line in lines)


def test_event_log_escapes_control_characters_in_text_and_line_separators_in_json():
    from io import StringIO

    text, as_json = StringIO(), StringIO()
    EventLog("text", text)("e", "one\r\ntwo\u2028three\x85")
    EventLog("json", as_json)("e", "one\u2028two", file="x\u2029.csv")
    assert len(text.getvalue().splitlines()) == 1
    assert "one\\r\\ntwo\\u2028three\\x85" in text.getvalue()
    assert len(as_json.getvalue().splitlines()) == 1
    assert json.loads(as_json.getvalue())["file"] == "x\u2029.csv"


@pytest.mark.parametrize("stem", ["a" * 251, "é" * 125, "名" * 83], ids=["ascii", "latin", "cjk"])
def test_a_very_long_file_name_is_imported_and_blocks_nothing(inbox, mapping, sandbox, stem):
    long_name = stem + ".csv"
    assert len(long_name.encode()) > 238
    scans(inbox / long_name, 3)
    scans(inbox / "b.csv", 2, first=10)
    scans(inbox / (stem[:-1] + "b.csv"), 1, first=20)  # the same first bytes: a distinct name

    assert watch_once(inbox, mapping) == 0

    done = listing(inbox / "done")
    assert len(done) == 6 and "b.csv" in done
    assert all(len(name.encode()) <= 255 for name in done)
    results = [inbox / "done" / n for n in done if n.endswith(".results.csv")]
    assert sorted(sum(statuses(p).values()) for p in results) == [1, 2, 3]
    assert len(sandbox.state.activities) == 6


def test_a_file_that_cannot_be_claimed_does_not_block_the_others(
    inbox, mapping, sandbox, monkeypatch, capsys
):
    import errno

    scans(inbox / "a.csv", 1)
    scans(inbox / "b.csv", 2, first=10)
    real_claim = Inbox.claim

    def claim(self, name):
        if name == "a.csv":
            raise OSError(errno.ENAMETOOLONG, "File name too long", str(inbox / name))
        return real_claim(self, name)

    monkeypatch.setattr(Inbox, "claim", claim)
    assert watch_once(inbox, mapping) == 1
    assert "a.csv" in capsys.readouterr().err
    assert listing(inbox / "done") == ["b.csv", "b.csv.results.csv"]
    assert (inbox / "a.csv").exists()


def test_a_file_name_that_is_not_utf8_is_imported_under_a_readable_name(
    inbox, mapping, sandbox, capsys
):
    scans(inbox / "x.csv", 2)
    os.rename(inbox / "x.csv", os.fsencode(inbox) + b"/caf\xe9\x1b.csv")
    Path(os.fsdecode(os.fsencode(inbox) + b"/bad\xff.csv")).write_bytes(b"Email\nx@y.z\n")

    assert watch_once(inbox, mapping) == 1

    err = capsys.readouterr().err
    assert "caf\\udce9\\x1b.csv -> done/caf\ufffd\\x1b~" in err and "\x1b" not in err
    done = listing(inbox / "done")
    assert len(done) == 2 and done[0].startswith("caf\ufffd\x1b~") and done[0].endswith(".csv")
    assert statuses(inbox / "done" / done[1]) == {"created": 2}
    note = next(p for p in (inbox / "failed").iterdir() if p.name.endswith(".error.txt"))
    assert note.name.startswith("bad\ufffd~")
    assert "Contact ID" in note.read_text(encoding="utf-8")
