"""`eloqua-import run` end to end: the real CLI against the real sandbox over loopback HTTP."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from results_csv import read_results

from importer.cli import main
from importer.sandbox.server import SANDBOX_TOKEN

ROOT = Path(__file__).resolve().parent.parent

MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")

# Row 2 and 3 straddle the US daylight-saving change (8 March 2026); row 4 has an action the
# map lacks; row 5 an unknown contact; row 6 is blank; row 7 repeats row 2.
ATTENDEES = """\
First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign
Zoë,2001,Spring Expo,visited,03/07/2026 09:05,B12,37
José,2002,Spring Expo,DEMO ,03/09/2026 09:05,B14,
Ann,2003,Spring Expo,danced,03/09/2026 10:00,B12,
Ghost,99999,Spring Expo,demo,03/09/2026 11:00,B12,
,,,,,,
Zoë,2001,Spring Expo,visited,03/07/2026 09:05,B12,37
"""


def epoch(*args: int) -> str:
    return str(int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(tmp_path: Path, *args: str) -> int:
    return main(["run", *args, "--results", str(tmp_path / "results.csv"), "--quiet"])


@pytest.fixture
def attendees(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path, "scans.csv", ATTENDEES), write(tmp_path, "map.yaml", MAPPING)


#: What `run` never needs: the other commands' modules (init's inference, the web page, watch,
#: login, ledger copy), the readers of other file kinds, the optional libraries, the progress
#: bar without a terminal, and the package metadata.
NOT_FOR_RUN = (
    "aiohttp.web",
    "importer.inbox",
    "importer.infer",
    "importer.ledger_copy",
    "importer.ledger_postgres",
    "importer.login",
    "importer.sandbox.server",
    "importer.ui",
    "importer.watch",
    "importer.xls_ods",
    "importer.xlsx",
    "importlib.metadata",
    "openpyxl",
    "pandas",
    "psycopg",
    "python_calamine",
    "tqdm",
)


@pytest.mark.slow
def test_a_run_loads_no_module_it_does_not_use(tmp_path, attendees, sandbox):
    """A short run's time is mostly its start: `python -m importer run` imports what it uses."""
    data, mapping = attendees
    argv = ["eloqua-import", "run", str(data), "--mapping", str(mapping), "--quiet"]
    code = (
        "import atexit, runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        f"atexit.register(lambda: print(sorted(set({NOT_FOR_RUN!r}) & set(sys.modules))))\n"
        "runpy.run_module('importer', run_name='__main__')\n"  # as `python -m importer`
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 1, done.stderr  # rows 4 and 5 are not created
    assert read_results(tmp_path / "scans.results.csv")[2]["status"] == "created"
    assert done.stdout.splitlines()[-1] == "[]"


def test_every_row_gets_its_status_and_eloqua_gets_exact_payloads(
    tmp_path, attendees, sandbox, capsys
):
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 1

    results = read_results(tmp_path / "results.csv")
    assert {n: r["status"] for n, r in results.items()} == {
        2: "created",
        3: "created",
        4: "invalid",
        5: "rejected",
        7: "duplicate",
    }
    assert results[4]["error"].startswith("Action: value 'danced' is not in the map")
    assert results[5]["http_status"] == "400"
    assert "contactId" in results[5]["error"] and "99999" in results[5]["error"]
    assert results[7]["error"] == "same activity as row 2; not sent again"
    assert results[3]["First Name"] == "José" and results[3]["Action"] == "DEMO "

    created = {a["id"]: a for a in sandbox.state.activities}
    assert {results[2]["activity_id"], results[3]["activity_id"]} == set(created)
    sent_2 = {k: v for k, v in created[results[2]["activity_id"]].items() if k not in ("id",)}
    assert sent_2 | {"type": None, "depth": None} == {
        "type": None,
        "depth": None,
        "name": "Spring Expo - visited",
        "assetName": "Spring Expo",
        "assetType": "Tradeshow",
        "activityType": "Visited Booth",
        "activityDate": epoch(2026, 3, 7, 14, 5),  # 09:05 EST
        "contactId": 2001,
        "campaignId": 37,
        "fieldValues": [{"type": "FieldValue", "id": "12", "value": "B12"}],
    }
    sent_3 = created[results[3]["activity_id"]]
    assert sent_3["activityDate"] == epoch(2026, 3, 9, 13, 5)  # 09:05 EDT
    assert sent_3["activityType"] == "Viewed a Demo"
    assert "campaignId" not in sent_3

    summary = capsys.readouterr().out
    assert "blank rows skipped" in summary and "created                2" in summary


def test_errors_file_holds_rows_not_created_ready_to_reimport(tmp_path, attendees, sandbox):
    data, mapping = attendees
    errors = tmp_path / "fix-me.csv"
    main(
        [
            "run",
            str(data),
            "--mapping",
            str(mapping),
            "--errors",
            str(errors),
            "--quiet",
            "--results",
            str(tmp_path / "r.csv"),
        ]
    )
    with errors.open(encoding="utf-8-sig", newline="") as file:
        lines = list(csv.DictReader(file))
    assert sorted(line["source_row"] for line in lines) == ["4", "5"]
    assert list(lines[0]) == [*ATTENDEES.splitlines()[0].split(","), "error", "source_row"]

    # Fix the bad action and import the errors file again with the same mapping.
    fixed = errors.read_text(encoding="utf-8-sig").replace("danced", "visited")
    errors.write_text(fixed, encoding="utf-8")
    before = len(sandbox.state.activities)
    main(
        [
            "run",
            str(errors),
            "--mapping",
            str(mapping),
            "--quiet",
            "--results",
            str(tmp_path / "again.csv"),
        ]
    )
    again = read_results(tmp_path / "again.csv")
    assert sorted(r["status"] for r in again.values()) == ["created", "rejected"]
    assert len(sandbox.state.activities) == before + 1


def test_dry_run_checks_every_row_and_sends_nothing(tmp_path, attendees, sandbox, capsys):
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping), "--dry-run") == 1
    results = read_results(tmp_path / "results.csv")
    assert {n: r["status"] for n, r in results.items()} == {
        2: "valid",
        3: "valid",
        4: "invalid",
        5: "valid",
        7: "duplicate",
    }
    assert sandbox.state.activities == []
    # With credentials, a dry run reads what is set up in Eloqua; it never writes.
    assert set(sandbox.state.request_counts) == {"external_types"}
    out = capsys.readouterr().out
    assert "row 2 would send" in out and "2026-03-07 14:05 UTC" in out


def test_clean_file_exits_zero(tmp_path, sandbox):
    data = write(tmp_path, "ok.csv", "\n".join(ATTENDEES.splitlines()[:3]) + "\n")
    mapping = write(tmp_path, "map.yaml", MAPPING)
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 0
    assert len(sandbox.state.activities) == 2


def test_wrong_password_stops_before_sending_with_exit_3(
    tmp_path, attendees, sandbox, monkeypatch, capsys
):
    monkeypatch.setenv("ELOQUA_PASSWORD", "hunter2-wrong")
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 3
    err = capsys.readouterr().err
    assert "did not accept the credentials" in err and "Sandbox\\api.user" in err
    assert "hunter2" not in err
    assert sandbox.state.request_counts.get("activity_post", 0) == 0
    assert sum(sandbox.state.request_counts.values()) <= 1


def test_base_url_is_discovered_from_login_id(tmp_path, attendees, sandbox, monkeypatch):
    monkeypatch.delenv("ELOQUA_BASE_URL")
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 1
    assert len(sandbox.state.activities) == 2
    assert sandbox.state.request_counts["id"] == 1


def test_discovery_with_wrong_password_says_not_authenticated(
    tmp_path, attendees, sandbox, monkeypatch, capsys
):
    monkeypatch.delenv("ELOQUA_BASE_URL")
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)
    monkeypatch.setenv("ELOQUA_PASSWORD", "nope")
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 3
    assert "Not authenticated." in capsys.readouterr().err
    assert sandbox.state.activities == []


def test_bearer_token_is_used_instead_of_basic(tmp_path, attendees, sandbox, monkeypatch):
    for name in ("ELOQUA_USERNAME", "ELOQUA_PASSWORD"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ELOQUA_ACCESS_TOKEN", SANDBOX_TOKEN)  # ELOQUA_COMPANY names the ledger
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 1
    assert len(sandbox.state.activities) == 2


def test_token_whose_company_is_unknown_is_refused_before_sending(
    tmp_path, attendees, sandbox, monkeypatch, capsys
):
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ELOQUA_ACCESS_TOKEN", SANDBOX_TOKEN)
    monkeypatch.setenv("ELOQUA_LOGIN_URL", "http://127.0.0.1:9")  # /id does not answer
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 2
    assert "set ELOQUA_COMPANY" in capsys.readouterr().err
    assert sandbox.state.activities == []


def test_plain_http_to_a_remote_host_is_refused(tmp_path, attendees, monkeypatch, capsys):
    monkeypatch.setenv("ELOQUA_BASE_URL", "http://secure.p03.eloqua.com")
    for name, value in (
        ("ELOQUA_COMPANY", "A"),
        ("ELOQUA_USERNAME", "u"),
        ("ELOQUA_PASSWORD", "p"),
    ):
        monkeypatch.setenv(name, value)
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 2
    assert "plain http" in capsys.readouterr().err


def test_missing_credentials_say_which_variables_to_set(tmp_path, attendees, monkeypatch, capsys):
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD", "ELOQUA_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 2
    err = capsys.readouterr().err
    assert "ELOQUA_PASSWORD" in err and "--sandbox" in err and "Traceback" not in err


def test_missing_column_is_exit_2_with_closest_name_and_nothing_sent(
    tmp_path, attendees, sandbox, capsys
):
    data, _ = attendees
    mapping = write(tmp_path, "bad.yaml", MAPPING.replace("column: Booth", "column: booth no"))
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 2
    err = capsys.readouterr().err
    assert "'booth no' is not in the file" in err and "'Booth'" in err
    assert sum(sandbox.state.request_counts.values()) == 0
    assert not (tmp_path / "results.csv").exists()


def test_server_errors_are_retried_and_a_rerun_finishes_without_duplicates(
    tmp_path, sandbox_factory, no_backoff
):
    sandbox = sandbox_factory(rate_500=0.3, rate_429=0.1, retry_after=2, seed=7)
    rows = ["First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign"] + [
        f"P{n},{2001 + n},Spring Expo,visited,03/14/2026 {9 + n // 60:02d}:{n % 60:02d},B1,37"
        for n in range(40)
    ]
    data = write(tmp_path, "many.csv", "\n".join(rows) + "\n")
    mapping = write(tmp_path, "map.yaml", MAPPING)
    first = run(tmp_path, str(data), "--mapping", str(mapping), "--concurrency", "4")
    results = read_results(tmp_path / "results.csv")
    assert len(results) == 40
    assert {r["status"] for r in results.values()} <= {"created", "failed"}
    assert first == (0 if all(r["status"] == "created" for r in results.values()) else 1)
    assert any(int(r["attempts"]) > 1 for r in results.values())
    assert 2.0 in no_backoff.waits  # Retry-After honoured

    # The rerun sends only what is missing; the ledger fills in the ids of the rest.
    assert run(tmp_path, str(data), "--mapping", str(mapping), "--concurrency", "4") == 0
    again = read_results(tmp_path / "results.csv")
    for number, line in again.items():
        expected = "already_created" if results[number]["status"] == "created" else "created"
        assert line["status"] == expected
        if expected == "already_created":
            assert line["activity_id"] == results[number]["activity_id"]
    contacts = [a["contactId"] for a in sandbox.state.activities]
    assert sorted(contacts) == [2001 + n for n in range(40)]


def test_dropped_connections_are_uncertain_not_resent(tmp_path, sandbox_factory, no_backoff):
    sandbox = sandbox_factory(rate_drop=1.0)
    data = write(tmp_path, "ok.csv", "\n".join(ATTENDEES.splitlines()[:3]) + "\n")
    mapping = write(tmp_path, "map.yaml", MAPPING)
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 1
    results = read_results(tmp_path / "results.csv")
    assert {r["status"] for r in results.values()} == {"uncertain"}
    assert len(sandbox.state.activities) == 2  # created once each, never resent


@pytest.mark.slow
def test_quick_start_sample_import_runs_as_a_real_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELOQUA_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(ROOT / "samples" / "attendees.csv"),
            "--mapping",
            str(ROOT / "mappings" / "attendees.yaml"),
            "--sandbox",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "created" in done.stdout
    results = read_results(tmp_path / "attendees.results.csv")
    assert len(results) >= 50
    assert {r["status"] for r in results.values()} == {"created"}
    assert len({r["activity_id"] for r in results.values()}) == len(results)


def test_webinar_workbook_sample_sends_london_times_and_whole_ids(tmp_path, sandbox):
    from zoneinfo import ZoneInfo

    import openpyxl

    workbook = ROOT / "samples" / "webinar.xlsx"
    mapping = ROOT / "mappings" / "webinar.yaml"
    assert run(tmp_path, str(workbook), "--mapping", str(mapping)) == 0

    sheet = openpyxl.load_workbook(workbook, read_only=True)["Attendees"]
    expected = {}
    for number, cells in enumerate(sheet.iter_rows(min_row=4, values_only=True), start=4):
        if cells[0] is None:
            continue
        contact, joined, minutes, attended = cells[0], cells[4], cells[5], cells[6]
        when = joined.replace(tzinfo=ZoneInfo("Europe/London"))
        expected[number] = {
            "contactId": int(contact),
            "activityDate": str(int(when.timestamp())),
            "activityType": "Attended" if attended == "Yes" else "Registered",
            "fieldValues": [{"type": "FieldValue", "id": "31", "value": str(int(minutes))}],
        }
    results = read_results(tmp_path / "results.csv")
    assert set(results) == set(expected) and len(expected) == 55
    for number, result in results.items():
        sent = sandbox.state.activity(result["activity_id"])
        assert sent is not None
        assert {key: sent[key] for key in expected[number]} == expected[number]
        assert sent["assetType"] == "Webinar" and sent["campaignId"] == 38


def test_progress_bar_counts_to_the_rows_of_the_file(tmp_path, attendees, capsys):
    import asyncio

    from importer.cli import ProgressBar
    from importer.pipeline import RunOptions, run_import

    data, mapping = attendees
    bar = ProgressBar(enabled=True)
    options = RunOptions(
        input_path=data, mapping_path=mapping, dry_run=True, on_progress=bar,
        results_path=tmp_path / "r.csv",
    )  # fmt: skip
    summary = asyncio.run(run_import(options, None))
    bar.close()
    assert summary.rows == 5
    bar = capsys.readouterr().err
    # 7 lines counted up front (a blank one among them), 5 rows: the bar still ends at 100%.
    assert "5/5" in bar and "100%" in bar


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://secure.p03.eloqua.com\n.evil.test", "control character"),
        ("https://secure.p03.eloqua.com /x", "space"),
        ("https://[::1", "not a URL"),
        ("https://secure.p03.eloqua.com:99999", "Port out of range"),
        ("https://secure.p03.eloqua.com:4x3", "Port could not"),
        ("https://api.user:hunter2@secure.p03.eloqua.com", "user name or password"),
        ("https://secure.p03.eloqua.com/?site=a#b", "query"),
    ],
    ids=["newline", "space", "broken-ipv6", "port-range", "port-text", "userinfo", "query"],
)
def test_a_malformed_base_url_is_a_configuration_error_naming_the_variable(
    tmp_path, attendees, monkeypatch, capsys, url, says
):
    monkeypatch.setenv("ELOQUA_BASE_URL", url)
    monkeypatch.setenv("ELOQUA_COMPANY", "A")
    monkeypatch.setenv("ELOQUA_USERNAME", "u")
    monkeypatch.setenv("ELOQUA_PASSWORD", "p")
    data, mapping = attendees
    assert run(tmp_path, str(data), "--mapping", str(mapping)) == 2
    err = capsys.readouterr().err
    assert "ELOQUA_BASE_URL" in err and says in err and "unexpected error" not in err
    assert "hunter2" not in err
