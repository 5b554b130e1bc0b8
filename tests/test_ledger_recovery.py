"""Reruns that must create nothing: cosmetic mapping changes, a lost ledger, `ledger adopt`.

End to end through the CLI against the threaded sandbox; the ledger is the per-user default
(in the test's own XDG_STATE_HOME) unless a test names one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from results_csv import read_results
from test_exactly_once import MAPPING, assert_exactly_once, scans
from test_lookups import MAPPING as LOOKUP_MAPPING
from test_lookups import REPORT

from importer.adopt import refuse_lost_ledger
from importer.cli import main
from importer.errors import ConfigError
from importer.ledger import Ledger, default_ledger_path


def run(tmp_path: Path, data: Path, mapping: Path, *args: str) -> int:
    return main(
        ["run", str(data), "--mapping", str(mapping), "--quiet",
         "--results", str(tmp_path / "results.csv"), *args]
    )  # fmt: skip


def adopt(tmp_path: Path, mapping: Path, *args: str) -> int:
    return main(
        ["ledger", "adopt", str(tmp_path / "results.csv"), "--mapping", str(mapping), *args]
    )


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def test_a_rerun_after_cosmetic_mapping_changes_creates_nothing(tmp_path, mapping, sandbox):
    data = scans(tmp_path / "a.csv", 10)
    assert run(tmp_path, data, mapping) == 0
    first = read_results(tmp_path / "results.csv")
    posts = sandbox.state.request_counts["activity_post"]
    # A typo fixed in the name, another field value (listed first), the campaign dropped.
    mapping.write_text(
        MAPPING.replace('name: "{Event} - {Action}"', 'name: "{Event}: {Action}"')
        .replace("  campaignId: {column: Campaign, required: false}\n", "")
        .replace("  fieldValues:\n", '  fieldValues:\n    - {id: "13", value: Hall 2}\n'),
        encoding="utf-8",
    )
    assert run(tmp_path, data, mapping) == 0
    again = read_results(tmp_path / "results.csv")
    assert sandbox.state.request_counts["activity_post"] == posts
    assert {line["status"] for line in again.values()} == {"already_created"}
    assert {n: line["activity_id"] for n, line in again.items()} == {
        n: line["activity_id"] for n, line in first.items()
    }
    assert "its campaignId, fieldValues, name differ from what was created" in again[2]["error"]


def test_rows_differing_only_in_cosmetics_are_in_file_duplicates(tmp_path, mapping, sandbox):
    data = tmp_path / "a.csv"
    data.write_text(
        "First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign\n"
        "Ada,2001,Spring Expo,visited,03/10/2026 08:00,B1,37\n"
        "Ada Lovelace,2001,Spring Expo,visited,03/10/2026 08:00,B2,\n",
        encoding="utf-8",
    )
    assert run(tmp_path, data, mapping) == 0
    lines = read_results(tmp_path / "results.csv")
    assert (lines[2]["status"], lines[3]["status"]) == ("created", "duplicate")
    assert len(sandbox.state.activities) == 1


def test_the_summary_names_the_ledger_in_use(tmp_path, mapping, sandbox, capsys):
    assert run(tmp_path, scans(tmp_path / "a.csv", 2), mapping) == 0
    assert f"Ledger:  {default_ledger_path()}" in capsys.readouterr().out
    # A sandbox run's own ledger is gone once the run ends: the summary says so, no dead path.
    assert run(tmp_path, scans(tmp_path / "a.csv", 2), mapping, "--sandbox") == 0
    assert "Ledger:  a temporary one for this sandbox run" in capsys.readouterr().out


def test_a_lost_ledger_stops_the_rerun_before_sending_and_adopt_recovers_it(
    tmp_path, mapping, sandbox, capsys
):
    data = scans(tmp_path / "a.csv", 10)
    assert run(tmp_path, data, mapping) == 0
    results = (tmp_path / "results.csv").read_bytes()
    posts = sandbox.state.request_counts["activity_post"]
    default_ledger_path().unlink()  # a new laptop, another user, a container
    capsys.readouterr()

    assert run(tmp_path, data, mapping) == 2
    err = capsys.readouterr().err
    assert "knows none of them" in err and "Nothing was sent" in err
    assert f"eloqua-import ledger adopt {tmp_path / 'results.csv'} --mapping {mapping}" in err
    assert sandbox.state.request_counts["activity_post"] == posts
    assert (tmp_path / "results.csv").read_bytes() == results  # the evidence is kept

    assert adopt(tmp_path, mapping) == 0
    out = capsys.readouterr().out
    assert "newly recorded         10" in out and str(default_ledger_path()) in out
    assert run(tmp_path, data, mapping) == 0
    again = read_results(tmp_path / "results.csv")
    assert {line["status"] for line in again.values()} == {"already_created"}
    assert sandbox.state.request_counts["activity_post"] == posts
    assert_exactly_once(sandbox, again, 10)
    # Adopting again changes nothing.
    assert adopt(tmp_path, mapping) == 0
    assert "already known          10" in capsys.readouterr().out


def test_results_of_a_sandbox_trial_do_not_block_the_first_real_import(
    tmp_path, mapping, sandbox, capsys
):
    """The Quick start path: try the file on --sandbox, then import it for real. The results
    file shows rows created, the real ledger knows none of them, and this Eloqua (here the
    threaded sandbox standing in for production) has none of those ids: not a lost ledger."""
    data = scans(tmp_path / "a.csv", 6)
    assert run(tmp_path, data, mapping, "--sandbox") == 0
    capsys.readouterr()
    assert run(tmp_path, data, mapping) == 0
    out = capsys.readouterr().out
    assert "rows created in another Eloqua" in out
    lines = read_results(tmp_path / "results.csv")
    assert {line["status"] for line in lines.values()} == {"created"}
    assert_exactly_once(sandbox, lines, 6)
    # The ids were read back from this Eloqua (each answered 404) before anything was sent.
    assert sandbox.state.request_counts["activity_get"] == 3


def test_adopt_resolves_emails_as_the_run_did(tmp_path, sandbox, capsys):
    data = tmp_path / "report.csv"
    data.write_text(REPORT, encoding="utf-8")
    mapping = tmp_path / "map.yaml"
    mapping.write_text(LOOKUP_MAPPING, encoding="utf-8")
    run(tmp_path, data, mapping)
    created = {
        n for n, line in read_results(tmp_path / "results.csv").items()
        if line["status"] == "created"
    }  # fmt: skip
    assert created
    posts = sandbox.state.request_counts["activity_post"]
    default_ledger_path().unlink()

    assert adopt(tmp_path, mapping) == 0
    assert f"newly recorded   {len(created):>8}" in capsys.readouterr().out
    run(tmp_path, data, mapping)
    again = read_results(tmp_path / "results.csv")
    assert {n for n, line in again.items() if line["status"] == "already_created"} == created
    assert sandbox.state.request_counts["activity_post"] == posts


def test_a_fresh_sandbox_is_not_taken_for_a_lost_ledger(tmp_path, mapping):
    data = scans(tmp_path / "a.csv", 3)
    assert run(tmp_path, data, mapping, "--sandbox") == 0
    assert run(tmp_path, data, mapping, "--sandbox") == 0  # a fresh sandbox: sent again
    ledger = str(tmp_path / "ledger.sqlite3")
    assert run(tmp_path, data, mapping, "--sandbox", "--ledger", ledger) == 0


def test_adopt_refuses_a_file_that_is_not_a_results_file(tmp_path, mapping, sandbox, capsys):
    scans(tmp_path / "results.csv", 3)
    assert adopt(tmp_path, mapping) == 2
    assert "is not a results CSV of eloqua-import" in capsys.readouterr().err


async def test_a_ledger_that_knows_the_rows_only_as_pending_is_not_taken_for_lost(tmp_path):
    """A run killed after writing results lines but before committing their answers."""
    results = tmp_path / "a.results.csv"
    results.write_text(
        "\ufeffrow,status,activity_id,http_status,attempts,error,Email\n"
        "2,created,100001,201,1,,ada@example.com\n",
        encoding="utf-8",
    )
    path = tmp_path / "ledger.sqlite3"
    async with Ledger(path, "h/acme") as ledger:
        with pytest.raises(ConfigError, match="knows none of them"):
            await refuse_lost_ledger(ledger, results, tmp_path / "m.yaml", "a.csv")
        await ledger.claim(b"fp-1", "a.csv row 2")
    async with Ledger(path, "h/acme") as ledger:
        assert await refuse_lost_ledger(ledger, results, tmp_path / "m.yaml", "a.csv") is None
        with pytest.raises(ConfigError):  # pending rows of another file are no evidence
            await refuse_lost_ledger(ledger, results, tmp_path / "m.yaml", "b.csv")


def test_adopt_keeps_rows_whose_campaign_was_renamed_since(tmp_path, sandbox, capsys):
    data = tmp_path / "report.csv"
    data.write_text(REPORT, encoding="utf-8")
    mapping = tmp_path / "map.yaml"
    mapping.write_text(LOOKUP_MAPPING, encoding="utf-8")
    run(tmp_path, data, mapping)
    created = sum(
        line["status"] == "created" for line in read_results(tmp_path / "results.csv").values()
    )
    default_ledger_path().unlink()
    campaigns = sandbox.state.campaigns
    for cid, name in list(campaigns.items()):
        if name == "Webinar Series 2026":
            campaigns[cid] = "Webinar Series 2026 (archived)"
    assert adopt(tmp_path, mapping) == 0  # the campaign is not part of what an activity is
    assert f"newly recorded   {created:>8}" in capsys.readouterr().out


def test_a_file_name_that_is_not_utf8_is_imported_and_recorded(tmp_path, mapping, sandbox):
    """Linux file names are bytes: one saved by an old Windows tool may not be UTF-8. The
    ledger records its rows anyway (it used to hang, waiting on a commit that had failed)."""
    name = os.fsdecode(b"caf\xe9.csv")
    data = scans(tmp_path / name, 3)
    assert run(tmp_path, data, mapping) == 0
    assert run(tmp_path, data, mapping) == 0
    lines = read_results(tmp_path / "results.csv")
    assert {line["status"] for line in lines.values()} == {"already_created"}
    assert_exactly_once(sandbox, lines, 3)
