"""`eloqua-import ledger copy SRC DST`: a ledger moves between a file and PostgreSQL, either
way, without losing or overwriting anything; a rerun adds nothing."""

from __future__ import annotations

import asyncio

from importer.cli import main
from importer.ledger import Ledger

SITE = "secure.p03.eloqua.com/acme"


async def fill(where, created: dict[bytes, str], pending: tuple[bytes, ...] = ()) -> None:
    async with Ledger(where, SITE) as ledger:
        for fp, activity_id in created.items():
            await ledger.claim(fp, f"a.csv row {activity_id}")
            ledger.created(fp, activity_id)
        for fp in pending:
            await ledger.claim(fp, "a.csv row 99")  # answer never recorded


async def decisions(where, *fingerprints: bytes) -> list[tuple[str, str]]:
    async with Ledger(where, SITE) as ledger:
        return [(c.decision, c.activity_id) for c in map(ledger.lookup, fingerprints)]


def test_a_file_ledger_copied_into_postgres_stops_the_same_rows_there(tmp_path, pg_url, capsys):
    source = tmp_path / "ledger.sqlite3"
    asyncio.run(fill(source, {b"fp-1": "101", b"fp-2": "102"}))

    assert main(["ledger", "copy", str(source), pg_url]) == 0
    assert "2 read, 2 new or updated" in capsys.readouterr().out

    assert asyncio.run(decisions(pg_url, b"fp-1", b"fp-2", b"fp-3")) == [
        ("already_created", "101"),
        ("already_created", "102"),
        ("send", ""),
    ]
    # Idempotent: again, nothing new, and not refused.
    assert main(["ledger", "copy", str(source), pg_url]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_postgres_copied_back_to_a_file_keeps_pending_rows_uncertain(tmp_path, pg_url):
    asyncio.run(fill(pg_url, {b"fp-1": "101"}, pending=(b"fp-2",)))
    target = tmp_path / "back.sqlite3"

    assert main(["ledger", "copy", pg_url, str(target)]) == 0

    assert asyncio.run(decisions(target, b"fp-1", b"fp-2")) == [
        ("already_created", "101"),
        ("uncertain", ""),  # the run that sent it ended without its answer
    ]


def test_a_target_with_entries_of_its_own_is_refused_unless_merge(tmp_path, pg_url, capsys):
    source = tmp_path / "ledger.sqlite3"
    asyncio.run(fill(source, {b"fp-1": "101"}))
    asyncio.run(fill(pg_url, {b"fp-9": "909"}))

    assert main(["ledger", "copy", str(source), pg_url]) == 2
    err = capsys.readouterr().err
    assert "already holds entries" in err and "--merge" in err
    assert asyncio.run(decisions(pg_url, b"fp-1")) == [("send", "")]  # nothing copied

    assert main(["ledger", "copy", str(source), pg_url, "--merge"]) == 0
    assert asyncio.run(decisions(pg_url, b"fp-1", b"fp-9")) == [
        ("already_created", "101"),
        ("already_created", "909"),
    ]


def test_a_created_entry_in_the_target_is_never_overwritten(tmp_path, pg_url):
    source = tmp_path / "ledger.sqlite3"
    asyncio.run(fill(source, {b"fp-1": "101"}, pending=(b"fp-2",)))
    asyncio.run(fill(pg_url, {b"fp-1": "555", b"fp-2": "202"}))

    assert main(["ledger", "copy", str(source), pg_url, "--merge"]) == 0

    assert asyncio.run(decisions(pg_url, b"fp-1", b"fp-2")) == [
        ("already_created", "555"),
        ("already_created", "202"),  # a pending copy never undoes a created entry
    ]


def test_copying_a_ledger_onto_itself_is_refused(tmp_path, capsys):
    source = tmp_path / "ledger.sqlite3"
    assert main(["ledger", "copy", str(source), str(source)]) == 2
    assert "onto itself" in capsys.readouterr().err


async def fill_many(where, count: int) -> None:
    async with Ledger(where, SITE) as ledger:
        fingerprints = [f"fp-{n}".encode() for n in range(count)]
        await asyncio.gather(*(ledger.claim(fp, "a.csv row 2") for fp in fingerprints))
        for n, fp in enumerate(fingerprints):
            ledger.created(fp, str(n))


def test_a_ledger_larger_than_one_batch_goes_there_and_back_whole(tmp_path, pg_url, capsys):
    source, back = tmp_path / "ledger.sqlite3", tmp_path / "back.sqlite3"
    asyncio.run(fill_many(source, 2500))  # more than two batches of BATCH rows

    assert main(["ledger", "copy", str(source), pg_url]) == 0
    assert main(["ledger", "copy", pg_url, str(back)]) == 0
    out = capsys.readouterr().out
    assert out.count("2500 read, 2500 new or updated") == 2

    assert asyncio.run(decisions(back, b"fp-0", b"fp-2499")) == [
        ("already_created", "0"),
        ("already_created", "2499"),
    ]


def test_a_source_file_that_does_not_exist_is_refused_and_not_created(tmp_path, capsys):
    missing, target = tmp_path / "ledgr.sqlite3", tmp_path / "copy.sqlite3"

    assert main(["ledger", "copy", str(missing), str(target)]) == 2

    assert "there is no ledger at" in capsys.readouterr().err
    assert not missing.exists() and not target.exists()
