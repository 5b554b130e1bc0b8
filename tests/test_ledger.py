"""The idempotency ledger: durable before sending, decisions on rerun, group commits."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys

from importer.ledger import FirstSeen, Ledger, default_ledger_path

SITE = "secure.p03.eloqua.com/acme"


def rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT fingerprint, state, activity_id FROM activities").fetchall()


async def test_pending_is_committed_before_claim_returns(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2")
        assert claim.decision == "send"
        # Another connection (another process after a crash) already sees it.
        assert rows(path) == [(b"fp-1", "pending", None)]


async def test_created_activity_is_already_created_on_the_next_run(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "b.csv row 9")
    assert claim.decision == "already_created"
    assert claim.activity_id == "100001" and claim.source == "a.csv row 2"


async def test_same_payload_on_another_instance_is_independent(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, "secure.p03.eloqua.com/other-company") as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "send"


async def test_rows_certainly_not_created_may_be_sent_again(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.not_created(b"fp-1")
    assert rows(path) == []
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "send"


def test_pending_left_by_a_killed_run_is_uncertain_unless_asked(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    # A real process claims a row and is killed before it can record the answer.
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from importer.ledger import Ledger\n"
        "async def main():\n"
        f"    async with Ledger(Path({str(path)!r}), {SITE!r}) as ledger:\n"
        "        await ledger.claim(b'fp-1', 'a.csv row 2')\n"
        "        os._exit(9)\n"
        "asyncio.run(main())\n"
    )
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 9
    assert rows(path) == [(b"fp-1", "pending", None)]

    async def rerun(retry_uncertain: bool) -> str:
        async with Ledger(path, SITE) as ledger:
            assert ledger.lookup(b"fp-1").decision == "uncertain"
            claim = await ledger.claim(b"fp-1", "a.csv row 2", retry_uncertain=retry_uncertain)
            return claim.decision

    assert asyncio.run(rerun(False)) == "uncertain"
    assert asyncio.run(rerun(True)) == "send"


async def test_row_being_sent_by_a_live_run_is_not_sent_twice(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as first, Ledger(path, SITE) as second:
        assert (await first.claim(b"fp-1", "a.csv row 2")).decision == "send"
        claim = await second.claim(b"fp-1", "copy.csv row 2", retry_uncertain=True)
        assert claim.decision == "in_progress" and claim.source == "a.csv row 2"


async def test_allow_duplicates_sends_again_and_keeps_the_newest_id(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
        ledger.created(b"fp-1", "100002")
    assert rows(path) == [(b"fp-1", "created", "100002")]


async def test_concurrent_claims_share_commits(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        claims = await asyncio.gather(
            *(ledger.claim(f"fp-{n}".encode(), f"row {n}") for n in range(200))
        )
        assert {claim.decision for claim in claims} == {"send"}
        assert ledger.commits < 200
    assert len(rows(path)) == 200


async def test_flush_commits_outcomes(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "row 2")
        ledger.created(b"fp-1", "7")
        await ledger.flush()
        assert rows(path) == [(b"fp-1", "created", "7")]


def test_default_location_is_the_per_user_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert default_ledger_path() == tmp_path / "eloqua-import" / "ledger.sqlite3"


async def test_claims_in_one_commit_see_each_other_and_earlier_runs(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"old", "a.csv row 2")
        ledger.created(b"old", "100001")
    async with Ledger(path, SITE) as ledger:
        # Gathered claims land in one batch: decided in order, as if one at a time.
        claims = await asyncio.gather(
            ledger.claim(b"new", "b.csv row 2"),
            ledger.claim(b"old", "b.csv row 3"),
            ledger.claim(b"new", "b.csv row 4"),
        )
        assert ledger.commits == 1
    assert [claim.decision for claim in claims] == ["send", "already_created", "duplicate"]
    assert claims[2].source == "b.csv row 2"
    assert sorted(rows(path)) == [(b"new", "pending", None), (b"old", "created", "100001")]


async def test_outcomes_of_many_rows_commit_together(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        fingerprints = [f"fp-{n}".encode() for n in range(1200)]  # more than one SELECT chunk
        await asyncio.gather(*(ledger.claim(fp, "row") for fp in fingerprints))
        for n, fp in enumerate(fingerprints):
            if n % 2:
                ledger.created(fp, str(n))
            else:
                ledger.not_created(fp)
        await ledger.flush()
        assert ledger.commits <= 4
    assert len(rows(path)) == 600
    assert {state for _, state, _ in rows(path)} == {"created"}


def test_first_seen_finds_repeats_in_memory_and_after_spilling_to_disk():
    seen = FirstSeen(in_memory=10)
    try:
        firsts = [seen.first(f"fp-{n % 25}".encode(), n + 2) for n in range(100)]
    finally:
        seen.close()
    # Rows 2..26 are new; every later row repeats the row 25 rows before its first copy.
    assert firsts[:25] == list(range(2, 27))
    assert firsts[25:] == [2 + n % 25 for n in range(25, 100)]


async def test_a_failed_deliberate_resend_gives_back_the_created_record(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:  # --allow-duplicates, and Eloqua says 400
        assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
        ledger.not_created(b"fp-1")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2")
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")


def test_a_failed_retry_of_an_uncertain_row_leaves_it_uncertain(tmp_path):
    path = tmp_path / "ledger.sqlite3"

    async def crash_in_flight() -> None:
        ledger = Ledger(path, SITE)
        await ledger.__aenter__()
        await ledger.claim(b"fp-1", "a.csv row 2")
        # The process dies here: its run never ends and its pid is gone (simulated below).

    asyncio.run(crash_in_flight())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET pid = 999999999")

    async def retry_then_fail() -> None:
        async with Ledger(path, SITE) as ledger:
            claim = await ledger.claim(b"fp-1", "a.csv row 2", retry_uncertain=True)
            assert claim.decision == "send"
            ledger.not_created(b"fp-1")  # 5xx until retries ran out

    asyncio.run(retry_then_fail())

    async def plain_rerun() -> str:
        async with Ledger(path, SITE) as ledger:
            return (await ledger.claim(b"fp-1", "a.csv row 2")).decision

    assert asyncio.run(plain_rerun()) == "uncertain"


async def test_a_reused_pid_does_not_keep_a_crashed_run_alive(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
    # That run crashed (never ended); its pid now belongs to another live process.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET ended_at = NULL, pid = ?, pid_start = 'long ago'",
                   (os.getppid(),))  # fmt: skip
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "uncertain"


def test_ledgers_from_before_the_newer_columns_are_upgraded(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE activities (site TEXT NOT NULL, fingerprint BLOB NOT NULL,"
            " state TEXT NOT NULL, activity_id TEXT, run_id TEXT NOT NULL, source TEXT,"
            " updated_at REAL NOT NULL, PRIMARY KEY (site, fingerprint)) WITHOUT ROWID;"
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT"
            " NULL, started_at REAL NOT NULL, ended_at REAL);"
            f"INSERT INTO activities VALUES ('{SITE}', x'01', 'created', '7', 'r', 's', 0);"
        )

    async def rerun() -> str:
        async with Ledger(path, SITE) as ledger:
            return (await ledger.claim(b"\x01", "s")).activity_id

    assert asyncio.run(rerun()) == "7"


async def test_an_unanswered_deliberate_resend_still_knows_the_first_copy(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    for _ in range(2):  # --allow-duplicates twice, both times without an answer
        async with Ledger(path, SITE) as ledger:
            assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2", retry_uncertain=True)
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")
