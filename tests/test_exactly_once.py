"""Never twice, never lost: reruns, faults, kill -9 and graceful stops, against the real sandbox.

The invariant checked everywhere: every input row has exactly one results line; no activity
exists twice in the sandbox; a row reported created/already_created exists exactly once with
that id; only rows reported uncertain may be missing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from results_csv import read_results

from importer.cli import main

MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")
HEADER = "First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign"


def scans(path: Path, count: int) -> Path:
    lines = [HEADER] + [
        f"P{n},{2001 + n % 120},Spring Expo,visited,"
        f"03/{10 + n // 600:02d}/2026 {8 + n // 60 % 10:02d}:{n % 60:02d},B{n % 30},37"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def key(activity: dict) -> tuple:
    return (activity["contactId"], activity["activityDate"])


def row_key(line: dict[str, str]) -> int:
    return int(line["Contact ID"])


def assert_exactly_once(sandbox, results: dict[int, dict[str, str]], rows: int) -> Counter:
    assert sorted(results) == list(range(2, rows + 2)), "every row has a results line"
    created = Counter(key(a) for a in sandbox.state.activities)
    assert max(created.values(), default=1) == 1, "an activity was created twice"
    ids = {a["id"] for a in sandbox.state.activities}
    statuses = Counter(line["status"] for line in results.values())
    for line in results.values():
        if line["status"] in ("created", "already_created"):
            assert line["activity_id"] in ids
    done = statuses["created"] + statuses["already_created"]
    assert done <= len(ids) <= done + statuses["uncertain"]
    return statuses


def run(tmp_path: Path, data: Path, *args: str) -> int:
    return main(
        [
            "run",
            str(data),
            "--mapping",
            str(tmp_path / "map.yaml"),
            "--quiet",
            "--results",
            str(tmp_path / "results.csv"),
            *args,
        ]
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_at(request, tmp_path: Path) -> str:
    """Both ledger backends: a file, and a database of the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite3")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_rerun_of_a_finished_import_sends_nothing(
    tmp_path, mapping, sandbox, ledger_at, monkeypatch
):
    monkeypatch.setenv("ELOQUA_IMPORT_LEDGER", ledger_at)  # as a CronJob's container is told
    data = scans(tmp_path / "a.csv", 30)
    assert run(tmp_path, data) == 0
    first = read_results(tmp_path / "results.csv")
    posts = sandbox.state.request_counts["activity_post"]
    assert run(tmp_path, data) == 0
    again = read_results(tmp_path / "results.csv")
    assert {line["status"] for line in again.values()} == {"already_created"}
    assert {n: line["activity_id"] for n, line in again.items()} == {
        n: line["activity_id"] for n, line in first.items()
    }
    assert sandbox.state.request_counts["activity_post"] == posts
    assert "created by an earlier run (a.csv row 2)" in again[2]["error"]


def test_same_rows_in_another_file_are_not_created_again(tmp_path, mapping, sandbox):
    data = scans(tmp_path / "monday.csv", 10)
    assert run(tmp_path, data) == 0
    redropped = tmp_path / "monday (1).csv"
    redropped.write_bytes(data.read_bytes())
    assert run(tmp_path, redropped) == 0
    assert len(sandbox.state.activities) == 10


def test_uncertain_rows_are_only_resent_when_asked(tmp_path, mapping, sandbox_factory):
    sandbox = sandbox_factory(rate_drop=1.0)
    data = scans(tmp_path / "a.csv", 5)
    assert run(tmp_path, data) == 1
    assert {line["status"] for line in read_results(tmp_path / "results.csv").values()} == {
        "uncertain"
    }
    assert run(tmp_path, data) == 1  # a plain rerun leaves them alone
    again = read_results(tmp_path / "results.csv")
    assert {line["status"] for line in again.values()} == {"uncertain"}
    assert "--retry-uncertain" in again[2]["error"]
    assert sandbox.state.request_counts["activity_post"] == 5
    assert len(sandbox.state.activities) == 5


def test_retry_uncertain_resends_them(tmp_path, mapping, sandbox_factory, no_backoff):
    sandbox = sandbox_factory(rate_drop=0.5, seed=3)
    data = scans(tmp_path / "a.csv", 20)
    run(tmp_path, data)
    uncertain = [
        n
        for n, line in read_results(tmp_path / "results.csv").items()
        if line["status"] == "uncertain"
    ]
    assert uncertain
    run(tmp_path, data, "--retry-uncertain")
    again = read_results(tmp_path / "results.csv")
    for n in uncertain:
        assert again[n]["status"] in ("created", "uncertain")
    # Dropped-but-created rows resent on request exist twice: that is what the flag risks.
    assert sandbox.state.request_counts["activity_post"] >= 20 + len(uncertain)


def test_allow_duplicates_creates_again(tmp_path, mapping, sandbox):
    data = scans(tmp_path / "a.csv", 3)
    assert run(tmp_path, data) == 0
    assert run(tmp_path, data, "--allow-duplicates") == 0
    assert len(sandbox.state.activities) == 6
    assert {line["status"] for line in read_results(tmp_path / "results.csv").values()} == {
        "created"
    }


def test_sandbox_runs_use_a_ledger_of_their_own(tmp_path, mapping):
    data = scans(tmp_path / "a.csv", 4)
    for _ in range(2):  # each --sandbox run starts a fresh sandbox: all rows are new there
        assert run(tmp_path, data, "--sandbox") == 0
        statuses = {line["status"] for line in read_results(tmp_path / "results.csv").values()}
        assert statuses == {"created"}
    assert not (tmp_path / "state").exists(), "the real per-user ledger was touched"


def test_fault_matrix_then_rerun_creates_each_activity_once(
    tmp_path, mapping, sandbox_factory, no_backoff
):
    sandbox = sandbox_factory(rate_500=0.10, rate_429=0.05, rate_503=0.05, rate_drop=0.03, seed=11)
    rows = 300
    data = scans(tmp_path / "a.csv", rows)
    run(tmp_path, data, "--concurrency", "8")
    first = assert_exactly_once(sandbox, read_results(tmp_path / "results.csv"), rows)
    assert first["uncertain"] > 0 and first["created"] > 250

    posts = sandbox.state.request_counts["activity_post"]
    run(tmp_path, data, "--concurrency", "8")
    second = assert_exactly_once(sandbox, read_results(tmp_path / "results.csv"), rows)
    assert second["already_created"] == first["created"]
    assert second["uncertain"] == first["uncertain"]
    # Only rows that had failed (never created) were sent again.
    assert second["created"] + second["failed"] == first["failed"]
    assert sandbox.state.request_counts["activity_post"] - posts >= first["failed"]


# --- real processes: kill -9 and SIGTERM ------------------------------------------------------


def start(
    tmp_path: Path, data: Path, env: dict[str, str], ledger: str | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(data),
            "--mapping",
            str(tmp_path / "map.yaml"),
            "--results",
            str(tmp_path / "results.csv"),
            "--ledger",
            ledger or str(tmp_path / "ledger.sqlite3"),
            "--quiet",
            "--concurrency",
            "8",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_creations(sandbox, at_least: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300  # generous: this machine's timers wake late
    while len(sandbox.state.activities) < at_least and proc.poll() is None:
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.01)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


@pytest.mark.slow
def test_kill_9_at_random_moments_then_rerun_creates_each_row_once(
    tmp_path, mapping, sandbox_factory, ledger_at
):
    sandbox = sandbox_factory(latency=0.01)
    rows = 160
    data = scans(tmp_path / "a.csv", rows)
    env = child_env()
    uncertain_bound = 0
    for moment in sorted(random.Random(5).sample(range(5, rows - 20), 3)):
        proc = start(tmp_path, data, env, ledger_at)
        wait_for_creations(sandbox, moment, proc)
        proc.kill()
        proc.wait(timeout=120)
        uncertain_bound += 16  # in flight (8) + answers not yet committed (one batch)
        assert max(Counter(key(a) for a in sandbox.state.activities).values()) == 1
    proc = start(tmp_path, data, env, ledger_at)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1), err
    statuses = assert_exactly_once(sandbox, read_results(tmp_path / "results.csv"), rows)
    assert statuses["uncertain"] <= uncertain_bound
    assert statuses["created"] + statuses["already_created"] + statuses["uncertain"] == rows


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_rerun_finishes(tmp_path, mapping, sandbox_factory):
    sandbox = sandbox_factory(latency=0.01)
    rows = 160
    data = scans(tmp_path / "a.csv", rows)
    proc = start(tmp_path, data, child_env())
    wait_for_creations(sandbox, 20, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "SIGTERM: stopping" in err and "Rerun the same command" in out
    results = read_results(tmp_path / "results.csv")
    statuses = assert_exactly_once(sandbox, results, rows)
    assert set(statuses) <= {"created", "failed"} and statuses["failed"] > 0
    assert all(
        "interrupted by SIGTERM" in line["error"]
        for line in results.values()
        if line["status"] == "failed"
    )

    proc = start(tmp_path, data, child_env())
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    statuses = assert_exactly_once(sandbox, read_results(tmp_path / "results.csv"), rows)
    assert statuses["created"] + statuses["already_created"] == rows
    assert len(sandbox.state.activities) == rows


def test_basic_then_token_for_one_company_share_the_ledger(tmp_path, mapping, sandbox, monkeypatch):
    data = scans(tmp_path / "a.csv", 4)
    assert run(tmp_path, data) == 0
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ELOQUA_ACCESS_TOKEN", "sandbox-token")
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)  # /id names the token's company
    monkeypatch.setenv("ELOQUA_BASE_URL", sandbox.base_url.replace("127.0.0.1", "localhost"))
    assert run(tmp_path, data) == 0
    statuses = {line["status"] for line in read_results(tmp_path / "results.csv").values()}
    assert statuses == {"already_created"}
    assert len(sandbox.state.activities) == 4


@pytest.mark.slow
def test_sigterm_before_sending_exits_130_with_nothing_sent(tmp_path, mapping, sandbox_factory):
    sandbox = sandbox_factory(latency=30)  # the preflight read hangs until we stop the run
    data = scans(tmp_path / "a.csv", 10)
    proc = start(tmp_path, data, child_env())
    deadline = time.monotonic() + 300
    while not sandbox.state.request_counts.get("external_types") and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never reached Eloqua"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted by SIGTERM before any row was sent" in err and "Traceback" not in err
    assert sandbox.state.activities == []


@pytest.mark.slow
def test_repeated_sigterm_still_stops_cleanly(tmp_path, mapping, sandbox_factory):
    # `timeout` and service managers send SIGTERM to the process and again to its group.
    sandbox = sandbox_factory(latency=0.5)
    rows = 60
    data = scans(tmp_path / "a.csv", rows)
    proc = start(tmp_path, data, child_env())
    wait_for_creations(sandbox, 8, proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Rerun the same command" in out
    assert_exactly_once(sandbox, read_results(tmp_path / "results.csv"), rows)


def read_stderr_until(proc: subprocess.Popen, text: str) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:  # the run writes it at once; the pipe ends if the run dies
        if text in line:
            return
    raise AssertionError(f"the run ended without saying {text!r}")


def release_hung_requests(sandbox) -> None:
    """End the sandbox's handlers still waiting out their latency (the client is gone)."""

    def cancel() -> None:
        for task in asyncio.all_tasks(sandbox._loop):
            if task.get_coro().__qualname__ == "RequestHandler._handle_request":
                task.cancel()

    sandbox._loop.call_soon_threadsafe(cancel)


@pytest.mark.slow
def test_second_ctrl_c_stops_at_once_and_still_reports_every_row(
    tmp_path, mapping, sandbox_factory
):
    sandbox = sandbox_factory()
    rows = 3000
    data = scans(tmp_path / "a.csv", rows)
    proc = start(tmp_path, data, child_env())
    wait_for_creations(sandbox, 20, proc)
    sandbox._server.config.latency = 3600  # from now on Eloqua answers nothing
    deadline = time.monotonic() + 300
    while sandbox.state.in_flight < 8 and proc.poll() is None:
        assert time.monotonic() < deadline, "the requests never went out"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    read_stderr_until(proc, "Ctrl-C: stopping")
    proc.send_signal(signal.SIGINT)  # the answers would take an hour: stop at once
    out, err = proc.communicate(timeout=300)
    release_hung_requests(sandbox)
    assert proc.returncode == 130, err
    assert "Ctrl-C again: stopping at once" in err and "Traceback" not in err
    assert "Rerun the same command" in out
    results = read_results(tmp_path / "results.csv")
    statuses = assert_exactly_once(sandbox, results, rows)
    assert set(statuses) == {"created", "uncertain", "failed"}
    assert statuses["uncertain"] >= 8, "the requests in flight may have been created"
    assert statuses["failed"] > rows // 2
    unsent = [line for line in results.values() if line["status"] == "failed"]
    assert all(line["error"].startswith("not sent: the run stopped") for line in unsent)
    errors = (tmp_path / "a.errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(errors) == 1 + statuses["uncertain"] + statuses["failed"]


async def test_a_third_ctrl_c_queued_behind_the_second_quits_outright():
    # Two SIGINTs read from the loop's wakeup pipe in one turn both reach the handler that was
    # installed for the second: the repeat is the third Ctrl-C, which quits, not a second abort.
    from importer.pipeline import _Signals

    class StubSender:
        aborted = False

        def __init__(self) -> None:
            self.stats = type("Stats", (), {"stopped_reason": ""})()

        def stop(self, reason: str, *, interrupted: bool = False) -> None:
            self.stats.stopped_reason = reason

        def abort(self, reason: str) -> None:
            self.stats.stopped_reason = reason
            self.aborted = True

    notices: list[str] = []
    with _Signals(True, notices.append) as signals:
        signals.sender = StubSender()  # type: ignore[assignment]
        signals._stop(signal.SIGINT)
        signals._stop_at_once()
        with pytest.raises(KeyboardInterrupt):
            signals._stop_at_once()
    assert sum(notice.startswith("Ctrl-C again") for notice in notices) == 1
