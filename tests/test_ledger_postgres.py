"""The PostgreSQL ledger's own promises: liveness across machines by heartbeat, one writer at a
time across connections, passwords never shown, a clear message without the driver.

The backend-neutral promises (durable before sending, decisions, group commits, identity) are
tests/test_ledger.py's, run against both backends."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from importer.cli import main
from importer.errors import ConfigError
from importer.ledger import Ledger, LedgerURL, check_ledger, ledger_location

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg is not installed: pip install -e '.[test]'"
)

SITE = "secure.p03.eloqua.com/acme"


def sql(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


async def left_pending_by_another_machine(url: str, heartbeat_age: float) -> None:
    ledger = Ledger(url, SITE)
    await ledger.__aenter__()
    await ledger.claim(b"fp-1", "a.csv row 2")
    # That run is on another machine: no pid to look at, only its heartbeat.
    sql(
        url,
        "UPDATE runs SET host = 'elsewhere', heartbeat_at ="
        " extract(epoch from clock_timestamp()) - %s",
        (heartbeat_age,),
    )
    ledger._closing = True  # as if the machine went away: no end recorded
    ledger._wake.set()
    assert ledger._committer is not None
    await ledger._committer
    if ledger._heartbeat is not None:
        ledger._heartbeat.cancel()


async def test_a_run_on_another_machine_with_a_fresh_heartbeat_is_in_progress(pg_url):
    await left_pending_by_another_machine(pg_url, heartbeat_age=5)
    async with Ledger(pg_url, SITE) as ledger:
        claim = await ledger.claim(b"fp-1", "b.csv row 2", retry_uncertain=True)
    assert (claim.decision, claim.source) == ("in_progress", "a.csv row 2")


async def test_a_run_on_another_machine_whose_heartbeat_stopped_left_it_uncertain(pg_url):
    await left_pending_by_another_machine(pg_url, heartbeat_age=600)
    async with Ledger(pg_url, SITE) as ledger:
        assert (await ledger.claim(b"fp-1", "b.csv row 2")).decision == "uncertain"


async def test_a_live_run_keeps_its_heartbeat_fresh(pg_url, monkeypatch):
    from importer import ledger_postgres

    monkeypatch.setattr(ledger_postgres.PostgresStore, "heartbeat_every", 0.01)
    async with Ledger(pg_url, SITE) as ledger:
        sql(pg_url, "UPDATE runs SET heartbeat_at = 0")
        deadline = time.monotonic() + 60  # generous: timers here wake late
        while sql(pg_url, "SELECT heartbeat_at FROM runs")[0][0] == 0:
            assert time.monotonic() < deadline, "no heartbeat"
            await asyncio.sleep(0.01)
        assert ledger.run_id


async def test_two_machines_claiming_the_same_activities_at_once_never_both_send(pg_url):
    fingerprints = [f"fp-{n}".encode() for n in range(300)]
    async with Ledger(pg_url, SITE) as first, Ledger(pg_url, SITE) as second:
        claims = await asyncio.gather(
            *(ledger.claim(fp, "row") for fp in fingerprints for ledger in (first, second))
        )
    decisions = [claim.decision for claim in claims]
    assert decisions.count("send") == len(fingerprints)
    assert decisions.count("in_progress") == len(fingerprints)


def test_a_password_in_the_url_is_never_shown(pg_url, tmp_path, capsys):
    url = pg_url.replace("postgres@", "postgres:s3cr%40t@")
    location = ledger_location(url)
    assert isinstance(location, LedgerURL)
    assert "s3cr" not in str(location) and "s3cr" not in repr(location)
    assert ":***@" in str(location)
    wrong_port = url.rsplit(":", 1)[0] + ":1/none"
    with pytest.raises(ConfigError) as raised:
        check_ledger(wrong_port)
    assert "s3cr" not in str(raised.value) and ":***@" in str(raised.value)


def test_a_ledger_from_a_newer_version_is_refused(pg_url):
    check_ledger(pg_url)
    sql(pg_url, "UPDATE schema_version SET version = 99")
    with pytest.raises(ConfigError, match="newer version of eloqua-import"):
        check_ledger(pg_url)


def test_without_the_driver_the_message_says_what_to_install(
    monkeypatch, capsys, tmp_path, sandbox
):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "importer.ledger_postgres", raising=False)
    monkeypatch.setenv("ELOQUA_IMPORT_LEDGER", "postgresql://u:secret@127.0.0.1:1/ledger")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    mapping = Path(__file__).parent / "fixtures" / "booth_scans.yaml"
    status = main(["watch", str(inbox), "--mapping", str(mapping), "--once"])
    err = capsys.readouterr().err
    assert status == 2
    assert "pip install 'eloqua-import[postgres]'" in err
    assert "secret" not in err and "u:***@" in err


def test_a_run_names_the_ledger_without_its_password(pg_url, tmp_path, sandbox, capsys):
    from test_exactly_once import MAPPING, scans

    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    url = pg_url.replace("postgres@", "postgres:s3cret@")  # trust auth: accepted, unchecked
    data = scans(tmp_path / "a.csv", 3)
    status = main(["run", str(data), "--mapping", str(tmp_path / "map.yaml"), "--quiet",
                   "--ledger", url])  # fmt: skip
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Ledger:  postgresql://postgres:***@" in out
    assert "s3cret" not in out + err
    assert (tmp_path / "a.results.csv").exists() and "s3cret" not in (
        tmp_path / "a.results.csv"
    ).read_text()
