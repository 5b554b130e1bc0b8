"""The idempotency ledger: durable before sending, decisions on rerun, group commits."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import subprocess
import sys

import pytest

from importer.errors import ConfigError
from importer.fields import Lookup
from importer.identity import FirstSeen, fingerprint, identify
from importer.ledger import (
    GATHER_TURNS,
    SCHEMA_VERSION,
    Ledger,
    check_ledger,
    default_ledger_path,
    ledger_site,
    normalise_site,
)

SITE = "secure.p03.eloqua.com/acme"


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path):
    """The ledger suite runs against both backends: a file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "ledger.sqlite3"
    return request.getfixturevalue("pg_url")


def sql(where, statement, params=()):
    """Run ``statement`` (``?`` placeholders) on the ledger behind the Ledger's back."""
    if isinstance(where, str):
        import psycopg

        with psycopg.connect(where, autocommit=True) as db:
            cursor = db.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(where) as db:
        return db.execute(statement, params).fetchall()


def rows(path):
    return [
        tuple(row) for row in sql(path, "SELECT fingerprint, state, activity_id FROM activities")
    ]


async def test_pending_is_committed_before_claim_returns(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2")
        assert claim.decision == "send"
        # Another connection (another process after a crash) already sees it.
        assert rows(path) == [(b"fp-1", "pending", None)]


async def test_created_activity_is_already_created_on_the_next_run(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "b.csv row 9")
    assert claim.decision == "already_created"
    assert claim.activity_id == "100001" and claim.source == "a.csv row 2"


async def test_same_payload_on_another_instance_is_independent(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, "secure.p03.eloqua.com/other-company") as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "send"


async def test_rows_certainly_not_created_may_be_sent_again(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.not_created(b"fp-1")
    assert rows(path) == []
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "send"


@pytest.mark.slow
def test_pending_left_by_a_killed_run_is_uncertain_unless_asked(where):
    path = where
    # A real process claims a row and is killed before it can record the answer.
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from importer.ledger import Ledger\n"
        "async def main():\n"
        f"    async with Ledger({str(path)!r}, {SITE!r}) as ledger:\n"
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


async def test_row_being_sent_by_a_live_run_is_not_sent_twice(where):
    path = where
    async with Ledger(path, SITE) as first, Ledger(path, SITE) as second:
        assert (await first.claim(b"fp-1", "a.csv row 2")).decision == "send"
        claim = await second.claim(b"fp-1", "copy.csv row 2", retry_uncertain=True)
        assert claim.decision == "in_progress" and claim.source == "a.csv row 2"


async def test_allow_duplicates_sends_again_and_keeps_the_newest_id(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
        ledger.created(b"fp-1", "100002")
    assert rows(path) == [(b"fp-1", "created", "100002")]


async def test_concurrent_claims_share_commits(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        claims = await asyncio.gather(
            *(ledger.claim(f"fp-{n}".encode(), f"row {n}") for n in range(200))
        )
        assert {claim.decision for claim in claims} == {"send"}
        assert ledger.commits < 200
    assert len(rows(path)) == 200


async def test_claims_arriving_in_consecutive_loop_turns_share_a_commit(tmp_path):
    # As answers read one after another, each followed by its worker's next claim.
    async with Ledger(tmp_path / "ledger.sqlite3", SITE) as ledger:

        async def after_turns(turns: int) -> str:
            for _ in range(turns):
                await asyncio.sleep(0)
            return (await ledger.claim(f"fp-{turns}".encode(), "row")).decision

        decisions = await asyncio.gather(*(after_turns(turns) for turns in range(5)))
        assert decisions == ["send"] * 5
        assert ledger.commits == 1


async def test_a_claim_is_committed_after_a_few_turns_even_while_ops_keep_arriving(tmp_path):
    async with Ledger(tmp_path / "ledger.sqlite3", SITE) as ledger:
        turns = 0

        def claim_waits() -> bool:  # not yet taken into a commit
            return any(op.kind == "claim" for op in ledger._ops)

        async def busy() -> None:  # an outcome in every turn of the loop
            nonlocal turns
            while (turns == 0 or claim_waits()) and turns < 1000:
                ledger.created(f"other-{turns}".encode(), "1")
                turns += 1
                await asyncio.sleep(0)

        claim, _ = await asyncio.gather(ledger.claim(b"fp-1", "row"), busy())
        assert claim.decision == "send"
        assert turns <= GATHER_TURNS + 2  # not held back while the others kept coming


async def test_flush_commits_outcomes(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "row 2")
        ledger.created(b"fp-1", "7")
        await ledger.flush()
        assert rows(path) == [(b"fp-1", "created", "7")]


def test_default_location_is_the_per_user_state_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert default_ledger_path() == tmp_path / "eloqua-import" / "ledger.sqlite3"


async def test_claims_in_one_commit_see_each_other_and_earlier_runs(where):
    path = where
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


async def test_outcomes_of_many_rows_commit_together(where):
    path = where
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


async def _op(ledger: Ledger, op: tuple) -> tuple | None:
    """One op as the sender makes it: an awaited claim, or an outcome recorded."""
    kind, fp = op[0], op[1]
    if kind == "claim":
        claim = await ledger.claim(fp, f"row {op[2]}", force=op[3])
        return (claim.decision, claim.activity_id, claim.source)
    if kind == "created":
        ledger.created(fp, op[2])
    else:
        ledger.not_created(fp)
    return None


async def _in_one_commit(ledger: Ledger, ops: list[tuple]) -> list[tuple | None]:
    before = ledger.commits
    *results, _ = await asyncio.gather(*(_op(ledger, op) for op in ops), ledger.flush())
    assert ledger.commits == before + 1  # the ops and the flush were one batch
    return results


async def test_a_claim_after_a_forget_of_the_same_activity_in_one_commit_sends(where):
    async with Ledger(where, SITE) as ledger:
        results = await _in_one_commit(
            ledger,
            [("claim", b"fp-1", 2, False), ("forget", b"fp-1"), ("claim", b"fp-1", 3, False)],
        )
    # Applied in order: the second claim comes after the first was given back.
    assert results == [("send", "", ""), None, ("send", "", "")]
    assert rows(where) == [(b"fp-1", "pending", None)]


async def test_a_claim_after_a_created_of_the_same_activity_in_one_commit_sees_its_id(where):
    async with Ledger(where, SITE) as ledger:
        await ledger.claim(b"fp-1", "row 2")
        results = await _in_one_commit(
            ledger,
            [
                ("claim", b"fp-2", 3, False),
                ("created", b"fp-1", "100001"),
                ("claim", b"fp-1", 4, False),
                ("forget", b"fp-2"),
                ("claim", b"fp-2", 5, False),
            ],
        )
    assert results == [
        ("send", "", ""),
        None,
        ("duplicate", "100001", "row 2"),  # after the created: its id, not a pending record
        None,
        ("send", "", ""),
    ]
    assert sorted(rows(where)) == [(b"fp-1", "created", "100001"), (b"fp-2", "pending", None)]


async def test_ops_in_one_commit_decide_as_if_applied_one_at_a_time(where):
    """Random mixes of claims, created and forgets over a few activities, one commit for the
    lot, against the same ops each committed on its own."""
    rng = random.Random(15)
    fps = [f"fp-{n}".encode() for n in range(3)]

    async def play(ops: list[tuple], together: bool) -> tuple[list, list]:
        async with Ledger(where, SITE) as ledger:  # an earlier run created fp-0
            sql(where, "DELETE FROM activities")
            await ledger.claim(fps[0], "row 1")
            ledger.created(fps[0], "100000")
        async with Ledger(where, SITE) as ledger:
            if together:
                results = await _in_one_commit(ledger, ops)
            else:
                results = []
                for op in ops:
                    results.append(await _op(ledger, op))
                    await ledger.flush()
        return results, sorted(rows(where))

    for _ in range(12):
        ops: list[tuple] = []
        for n in range(rng.randint(2, 9)):
            fp = rng.choice(fps)
            kind = rng.choice(["claim", "claim", "created", "forget"])
            if kind == "claim":
                ops.append((kind, fp, n, rng.random() < 0.3))
            elif kind == "created":
                ops.append((kind, fp, str(200 + n)))
            else:
                ops.append((kind, fp))
        assert await play(ops, together=True) == await play(ops, together=False), ops


def test_first_seen_finds_repeats_in_memory_and_after_spilling_to_disk():
    seen = FirstSeen(in_memory=10)
    try:
        firsts = [seen.first(f"fp-{n % 25}".encode(), n + 2) for n in range(100)]
    finally:
        seen.close()
    # Rows 2..26 are new; every later row repeats the row 25 rows before its first copy.
    assert firsts[:25] == list(range(2, 27))
    assert firsts[25:] == [2 + n % 25 for n in range(25, 100)]


def test_first_seen_finds_rows_spilled_far_back_before_and_after_indexing_the_spill_file():
    # identify's 16-byte keys; a repeat 250 rows later is read from the unindexed spill file
    # for the first SCANS_BEFORE_INDEX lookups, then from the database those entries move to.
    keys = [hashlib.blake2b(str(n).encode(), digest_size=16).digest() for n in range(300)]
    seen = FirstSeen(in_memory=40)
    seen.SCANS_BEFORE_INDEX = 3
    try:
        new = [seen.first(key, n + 2) for n, key in enumerate(keys)]
        again = [seen.first(keys[n], 1000 + n) for n in (0, 17, 41, 120, 250, 299, 5, 80)]
        indexed = seen._db is not None
        fresh = seen.first(hashlib.blake2b(b"new", digest_size=16).digest(), 5000)
    finally:
        seen.close()
    assert new == list(range(2, 302))
    assert again == [2, 19, 43, 122, 252, 301, 7, 82]
    assert indexed
    assert fresh == 5000


async def test_a_failed_deliberate_resend_gives_back_the_created_record(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, SITE) as ledger:  # --allow-duplicates, and Eloqua says 400
        assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
        ledger.not_created(b"fp-1")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2")
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")


def test_a_failed_retry_of_an_uncertain_row_leaves_it_uncertain(where):
    path = where

    async def crash_in_flight() -> None:
        ledger = Ledger(path, SITE)
        await ledger.__aenter__()
        await ledger.claim(b"fp-1", "a.csv row 2")
        # The process dies here: its run never ends and its pid is gone (simulated below).

    asyncio.run(crash_in_flight())
    sql(path, "UPDATE runs SET pid = 999999999")

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


async def test_a_reused_pid_does_not_keep_a_crashed_run_alive(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
    # That run crashed (never ended); its pid now belongs to another live process.
    sql(path, "UPDATE runs SET ended_at = NULL, pid = ?, pid_start = 'long ago'", (os.getppid(),))
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
        )
        # Schema 0/1 keys are whole-payload fingerprints.
        db.execute(
            "INSERT INTO activities VALUES (?, ?, 'created', '7', 'r', 's', 0)",
            (SITE, fingerprint({"assetName": "a"})),
        )
    db.close()

    async def rerun() -> str:
        async with Ledger(path, SITE) as ledger:
            return (await ledger.claim(identify({"assetName": "a"}), "s")).activity_id

    assert asyncio.run(rerun()) == "7"


async def test_an_unanswered_deliberate_resend_still_knows_the_first_copy(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    for _ in range(2):  # --allow-duplicates twice, both times without an answer
        async with Ledger(path, SITE) as ledger:
            assert (await ledger.claim(b"fp-1", "a.csv row 2", force=True)).decision == "send"
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "a.csv row 2", retry_uncertain=True)
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")


# --- activity identity (issue 10 #5) --------------------------------------------------------

PAYLOAD = {
    "name": "Spring Expo - Visited Booth",
    "assetName": "Spring Expo",
    "assetType": "Tradeshow",
    "activityType": "Visited Booth",
    "activityDate": 1773144000,
    "contactId": "2001",
    "fieldValues": [
        {"type": "FieldValue", "id": "12", "value": "B1"},
        {"type": "FieldValue", "id": "13", "value": "Hall 2"},
    ],
}


def cosmetic(payload: dict) -> dict:
    """The same activity with another name, its field values swapped and a campaign added."""
    return {
        **payload,
        "name": "Spring Expo: Visited Booth",
        "fieldValues": list(reversed(payload["fieldValues"])),
        "campaignId": "37",
    }


def test_identity_is_what_the_activity_is_not_how_it_is_dressed():
    assert identify(PAYLOAD).key == identify(cosmetic(PAYLOAD)).key
    assert identify(PAYLOAD).key == identify({**PAYLOAD, "contactId": 2001}).key
    # Type names as Eloqua compares them: without case or repeated spaces.
    spelled = {**PAYLOAD, "assetType": "TRADESHOW", "activityType": "visited  booth"}
    assert identify(PAYLOAD).key == identify(spelled).key
    for field, other in (
        ("contactId", "2002"),
        ("assetName", "Autumn Expo"),
        ("assetType", "Webinar"),
        ("activityType", "Viewed a Demo"),
        ("activityDate", 1773144060),
    ):
        assert identify(PAYLOAD).key != identify({**PAYLOAD, field: other}).key, field


def test_field_value_order_never_changes_the_details():
    swapped = {**PAYLOAD, "fieldValues": list(reversed(PAYLOAD["fieldValues"]))}
    assert identify(PAYLOAD).details() == identify(swapped).details()


def test_a_lookup_counts_by_its_normalised_key_before_resolution():
    one = {**PAYLOAD, "contactId": Lookup("contact", "Ada@Example.com")}
    other = {**PAYLOAD, "contactId": Lookup("contact", "ada@example.com"), "name": "x"}
    assert identify(one).key == identify(other).key
    assert identify(one).key != identify(PAYLOAD).key  # resolved, it is keyed by the id


async def test_a_rerun_with_other_cosmetics_is_already_created_and_names_what_differs(where):
    path = where
    async with Ledger(path, SITE) as ledger:
        assert (await ledger.claim(identify(PAYLOAD), "a.csv row 2")).decision == "send"
        ledger.created(identify(PAYLOAD), "100001")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(identify(cosmetic(PAYLOAD)), "a.csv row 2")
        same = await ledger.claim(identify(PAYLOAD), "a.csv row 2")
        assert ledger.lookup(identify(cosmetic(PAYLOAD))).differs == claim.differs
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")
    assert claim.differs == ("campaignId", "name")  # the swapped field values are no change
    assert (same.decision, same.differs) == ("already_created", ())


# --- schema versions and upgrades (issue 10 #8, #5 migration, #7) -----------------------------

#: The SCHEMA of the first release that had the ledger (commit b3ac9b8), verbatim.
FIRST_SCHEMA = """
CREATE TABLE IF NOT EXISTS activities (
    site        TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    state       TEXT NOT NULL,          -- pending | created
    activity_id TEXT,
    run_id      TEXT NOT NULL,          -- the run that wrote it last
    source      TEXT,                   -- file and row, to explain a duplicate
    updated_at  REAL NOT NULL,
    PRIMARY KEY (site, fingerprint)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL
);
"""


def first_release_ledger(path, site=SITE, payload=PAYLOAD):
    """A ledger as the first release wrote it: one created activity, one finished run."""
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
        db.execute("INSERT INTO runs VALUES ('old-run', 'elsewhere', 1, 0)")
        db.execute(
            "INSERT INTO activities VALUES (?, ?, 'created', '100001', 'old-run', 'a.csv row 2',"
            " 0)",
            (site, fingerprint(payload)),
        )
    db.close()
    return path


async def test_a_ledger_of_the_first_release_is_upgraded_in_place(tmp_path):
    path = first_release_ledger(tmp_path / "old.sqlite3")
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(identify(PAYLOAD), "a.csv row 2")
        fresh = await ledger.claim(identify({**PAYLOAD, "contactId": "2002"}), "a.csv row 3")
    assert (claim.decision, claim.activity_id, claim.source) == (
        "already_created",
        "100001",
        "a.csv row 2",
    )
    assert fresh.decision == "send"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    # Recognised once by its old fingerprint, it is now known by its identity: a later run
    # with another name (another whole-payload fingerprint) still finds it.
    async with Ledger(path, SITE) as ledger:
        claim = await ledger.claim(identify(cosmetic(PAYLOAD)), "a.csv row 2")
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")


@pytest.mark.slow
def test_processes_upgrading_one_old_ledger_at_once_all_succeed(tmp_path):
    path = first_release_ledger(tmp_path / "old.sqlite3")
    script = (
        "import asyncio, sys, pathlib\n"
        "from importer.identity import identify\nfrom importer.ledger import Ledger\n"
        f"payload = {PAYLOAD!r}\n"
        "async def main():\n"
        f"    async with Ledger(pathlib.Path(sys.argv[1]), {SITE!r}) as ledger:\n"
        "        print((await ledger.claim(identify(payload), 'x')).decision)\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert out.strip() == "already_created"


def test_a_ledger_from_a_newer_version_is_refused_not_changed(tmp_path):
    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ConfigError, match="newer version of eloqua-import"):
        check_ledger(path)


def test_one_eloqua_is_one_site_key_however_its_url_is_written():
    keys = {
        normalise_site(ledger_site(url, "Acme"))
        for url in ("http://h", "http://h:80", "https://h:443", "https://H.", "https://h.:443/")
    }
    assert keys == {"h/acme"}
    assert normalise_site(ledger_site("https://h:8443", "Acme")) == "h:8443/acme"


async def test_entries_under_a_non_normalised_site_are_found_after_the_upgrade(tmp_path):
    path = first_release_ledger(tmp_path / "old.sqlite3", site="secure.p03.eloqua.com.:443/acme")
    async with Ledger(path, "secure.p03.eloqua.com/acme") as ledger:
        claim = await ledger.claim(identify(PAYLOAD), "a.csv row 2")
    assert (claim.decision, claim.activity_id) == ("already_created", "100001")


async def test_new_entries_are_keyed_by_the_normalised_site(where):
    path = where
    async with Ledger(path, "h:443/acme") as ledger:
        await ledger.claim(b"fp-1", "a.csv row 2")
        ledger.created(b"fp-1", "100001")
    async with Ledger(path, "h./acme") as ledger:
        assert (await ledger.claim(b"fp-1", "a.csv row 2")).decision == "already_created"


def test_an_unusable_ledger_is_never_answered_with_advice_to_start_a_new_one(tmp_path):
    corrupt = tmp_path / "ledger.sqlite3"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError) as raised:
        check_ledger(corrupt)
    message = str(raised.value)
    assert "another location" not in message and "another --ledger" not in message
    assert "restore it from a backup" in message and "ledger adopt" in message


@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_malformed_ledger_url_is_a_usage_error_that_never_shows_its_password(
    tmp_path, capsys, monkeypatch, how
):
    from importer.cli import main

    url = "postgresql://alice:s3cretPW@[::1/ledger"  # an unclosed '[': urlsplit cannot read it
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    mapping = os.path.join(os.path.dirname(__file__), "fixtures", "booth_scans.yaml")
    args = ["watch", str(inbox), "--mapping", mapping, "--once"]
    if how == "option":
        with pytest.raises(SystemExit) as exited:
            main([*args, "--ledger", url])
        status = exited.value.code
    else:
        for name, value in (("COMPANY", "Acme"), ("USERNAME", "u"), ("PASSWORD", "p")):
            monkeypatch.setenv(f"ELOQUA_{name}", value)
        monkeypatch.setenv("ELOQUA_BASE_URL", "http://127.0.0.1:9")  # never reached
        monkeypatch.setenv("ELOQUA_IMPORT_LEDGER", url)
        status = main(args)
    err = capsys.readouterr().err
    assert status == 2
    assert "s3cretPW" not in err and "unexpected error" not in err
    assert "postgresql://USER@HOST:PORT/DATABASE" in err


async def _measured_fast_answers(ledger: Ledger, wire: list[int]) -> None:
    """Two rows claimed, answers measured as coming ten per commit, ``wire[0]`` on the wire."""
    await ledger.claim(b"fp-a", "row 2")
    await ledger.claim(b"fp-b", "row 3")
    ledger.watch(lambda: wire[0])
    ledger._commit_time, ledger._answer_gap = 1.0, 0.1  # what a fast Eloqua's run measures


async def test_a_commit_waits_for_answers_that_come_faster_than_commits(tmp_path):
    async with Ledger(tmp_path / "ledger.sqlite3", SITE) as ledger:
        wire = [12]  # 10 answer while a commit runs: the commit waits until 10 are left
        await _measured_fast_answers(ledger, wire)
        before = ledger.commits
        claim = asyncio.ensure_future(ledger.claim(b"fp-c", "row 4"))
        await asyncio.sleep(0.05)
        wire[0] = 11
        ledger.created(b"fp-a", "1")
        await asyncio.sleep(0.05)
        assert not claim.done() and ledger.commits == before  # answers still coming
        wire[0] = 10
        ledger.created(b"fp-b", "2")
        assert (await claim).decision == "send"
        assert ledger.commits == before + 1  # the claim and both answers: one commit
    assert sorted(rows(tmp_path / "ledger.sqlite3")) == [
        (b"fp-a", "created", "1"),
        (b"fp-b", "created", "2"),
        (b"fp-c", "pending", None),
    ]


async def test_a_commit_does_not_wait_for_answers_slower_than_commits(tmp_path):
    async with Ledger(tmp_path / "ledger.sqlite3", SITE) as ledger:
        await _measured_fast_answers(ledger, [30])
        ledger._answer_gap = 0.6  # under two answers per commit: waiting would gain little
        assert (await ledger.claim(b"fp-c", "row 4")).decision == "send"


async def test_a_flush_ends_a_commit_waiting_for_answers(tmp_path):
    async with Ledger(tmp_path / "ledger.sqlite3", SITE) as ledger:
        await _measured_fast_answers(ledger, [12])
        claim = asyncio.ensure_future(ledger.claim(b"fp-c", "row 4"))
        await asyncio.sleep(0)
        await ledger.flush()
        assert claim.done() and claim.result().decision == "send"
