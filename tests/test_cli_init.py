"""`eloqua-import init` end to end: every sample export -> a mapping written with only the four
flags the file cannot answer -> `run` against the sandbox, checking every payload Eloqua received
against ground truth read from the file here, independently of the importer."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shlex
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from results_csv import read_results

from importer.cli import main
from importer.sandbox.seed import CONTACTS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ID_BY_EMAIL = {email.casefold(): cid for cid, _, _, email in CONTACTS}
ADDED_BY_ELOQUA = ("id", "type", "depth")


@dataclass
class Export:
    """A sample file, the flags a user gives, and how to read the truth out of it."""

    file: str
    asset_type: str
    activity_type: str
    asset_name: str
    timezone: str
    header_row: int
    date_column: str
    date_format: str | None  # None: Excel date cells
    keep: Callable[[dict[str, Any]], bool] = lambda row: True
    sheet: str | None = None
    encoding: str = "utf-8-sig"
    delimiter: str = ","

    def flags(self) -> list[str]:
        return [
            "--asset-type", self.asset_type, "--activity-type", self.activity_type,
            "--asset-name", self.asset_name, "--timezone", self.timezone,
        ]  # fmt: skip


EXPORTS = [
    Export("attendees.csv", "Tradeshow", "Visited Booth", "Spring Expo 2026", "America/New_York",
           1, "Scan Time", "%m/%d/%Y %H:%M"),
    Export("webinar.xlsx", "Webinar", "Attended", "Data Privacy in 2026", "Europe/London",
           3, "Joined At", None, keep=lambda r: r["Attended"] == "Yes", sheet="Attendees"),
    Export("webinar-report.csv", "Webinar", "Attended", "Scaling Marketing Ops",
           "America/Chicago", 6, "Join Time", "%b %d, %Y %I:%M %p"),
    Export("zoom-attendees.csv", "Webinar", "Attended", "Spring Product Launch",
           "America/New_York", 12, "Join Time", "%b %d, %Y %I:%M:%S %p",
           keep=lambda r: r["Attended"] == "Yes"),
    Export("eventbrite-attendees.xlsx", "Conference", "Registered", "Customer Summit 2026",
           "America/Los_Angeles", 1, "Order Date", None,
           keep=lambda r: r["Attendee Status"] not in ("Refunded", "Not Attending")),
    Export("badge-scans.csv", "Tradeshow", "Visited Booth", "Spring Expo 2026", "Europe/Paris",
           1, "Scan Date", "%d/%m/%Y %H:%M", encoding="cp1252", delimiter=";"),
]  # fmt: skip


def table_rows(export: Export) -> dict[int, dict[str, Any]]:
    """Row number -> cells by column name, read straight from the file."""
    path = SAMPLES / export.file
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, data_only=True)
        sheet = book[export.sheet] if export.sheet else book.worksheets[0]
        raw = [list(r) for r in sheet.iter_rows(values_only=True)]
    else:
        with path.open(encoding=export.encoding, newline="") as file:
            raw = list(csv.reader(file, delimiter=export.delimiter))
    header = [str(c).strip() for c in raw[export.header_row - 1] if c not in (None, "")]
    rows = {}
    for number, cells in enumerate(raw[export.header_row :], start=export.header_row + 1):
        if not any(c not in (None, "") for c in cells):
            continue
        rows[number] = dict(zip(header, cells, strict=False))
    return rows


def expected_payload(export: Export, row: dict[str, Any]) -> dict[str, Any]:
    when = row[export.date_column]
    if export.date_format is not None:
        when = dt.datetime.strptime(when.strip(), export.date_format)
    stamp = int(when.replace(tzinfo=zoneinfo.ZoneInfo(export.timezone)).timestamp())
    payload: dict[str, Any] = {
        "name": export.asset_name,
        "assetName": export.asset_name,
        "assetType": export.asset_type,
        "activityType": export.activity_type,
        "activityDate": str(stamp),
    }
    if "Contact ID" in row:
        payload["contactId"] = int(row["Contact ID"])
    else:
        email = row.get("Email") or row.get("E-mail")
        payload["contactId"] = ID_BY_EMAIL[email.strip().casefold()]
    if row.get("Campaign ID"):
        payload["campaignId"] = int(row["Campaign ID"])
    return payload


def init(export: Export, *extra: str) -> Path:
    assert main(["init", str(SAMPLES / export.file), *export.flags(), *extra]) == 0
    return Path.cwd() / f"{Path(export.file).stem}.yaml"


@pytest.mark.parametrize("export", EXPORTS, ids=[e.file for e in EXPORTS])
def test_init_mapping_imports_every_sample_with_exact_payloads(export, sandbox, capsys):
    mapping = init(export)
    assert f"Wrote {mapping.name}\n" in capsys.readouterr().out  # in the current folder
    document = yaml.safe_load(mapping.read_text(encoding="utf-8"))
    assert document["source"]["header_row"] == export.header_row
    data = str(SAMPLES / export.file)

    assert main(["run", data, "--mapping", str(mapping), "--quiet", "--dry-run"]) == 0
    dry = read_results(Path(f"{Path(export.file).stem}.dry-run.results.csv"))
    assert {r["status"] for r in dry.values()} <= {"valid", "skipped", "duplicate"}
    assert main(["run", data, "--mapping", str(mapping), "--quiet", "--results", "r.csv"]) == 0

    truth = table_rows(export)
    results = read_results(Path("r.csv"))
    assert set(results) == set(truth), "one results line per data row"
    stored = {
        a["id"]: {k: v for k, v in a.items() if k not in ADDED_BY_ELOQUA}
        for a in sandbox.state.activities
    }
    expected: dict[int, dict[str, Any]] = {}
    seen: dict[tuple[Any, ...], int] = {}
    for number, row in truth.items():
        result = results[number]
        if not export.keep(row):
            assert result["status"] == "skipped", (number, result["error"])
            assert result["error"].startswith("skip_if: ")
            continue
        payload = expected_payload(export, row)
        key = (payload["contactId"], payload["activityDate"])
        if key in seen:  # the same person twice at the same moment (two tickets, one order)
            assert result["status"] == "duplicate"
            continue
        seen[key] = number
        assert result["status"] == "created", (number, result["error"])
        expected[number] = payload
    got = {n: stored[results[n]["activity_id"]] for n in expected}
    assert got == expected
    assert len(stored) == len(expected), "nothing else reached Eloqua"


def test_zoom_report_mapping_reads_placeholders_as_blank_and_skips_no_shows(sandbox, capsys):
    export = EXPORTS[3]
    document = yaml.safe_load(init(export).read_text(encoding="utf-8"))
    assert document["blank_values"] == ["--"]
    assert document["skip_if"] == [{"column": "Attended", "equals": "No"}]
    assert document["activity"]["activityDate"] == {
        "column": "Join Time",
        "format": "%b %d, %Y %I:%M:%S %p",
        "timezone": "America/New_York",
    }
    assert document["activity"]["contactId"] == {"lookup": "contact", "column": "Email"}


def test_skipped_rows_are_counted_and_never_reach_the_errors_file(sandbox, capsys):
    export = EXPORTS[3]
    mapping = init(export)
    capsys.readouterr()
    args = ["run", str(SAMPLES / export.file), "--mapping", str(mapping), "--quiet"]
    assert main([*args, "--results", "r.csv", "--errors", "e.csv"]) == 0
    out = capsys.readouterr().out
    assert "skipped                3" in out
    assert not Path("e.csv").exists()
    skipped = [r for r in read_results(Path("r.csv")).values() if r["status"] == "skipped"]
    assert [r["error"] for r in skipped] == ['skip_if: Attended is "No"'] * 3


def test_without_flags_placeholders_stop_run_before_anything_is_sent(sandbox, capsys):
    assert main(["init", str(SAMPLES / "badge-scans.csv")]) == 0
    out = capsys.readouterr().out
    assert "Still to fill in before importing: assetName, assetType, activityType" in out
    text = Path("badge-scans.yaml").read_text(encoding="utf-8")
    # The catalog of the Eloqua the credentials reach is listed beside the placeholder.
    assert "# Eloqua has: Tradeshow, Webinar, Conference" in text
    args = ["run", str(SAMPLES / "badge-scans.csv"), "--mapping", "badge-scans.yaml", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "activity.assetName is still the placeholder '<FILL IN: the event" in err
    assert "Nothing was sent" in err
    assert sandbox.state.activities == []


def test_init_never_overwrites_without_force(tmp_path, capsys):
    Path("badge-scans.yaml").write_text("mine", encoding="utf-8")
    assert main(["init", str(SAMPLES / "badge-scans.csv")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert Path("badge-scans.yaml").read_text(encoding="utf-8") == "mine"
    assert main(["init", str(SAMPLES / "badge-scans.csv"), "--force", "-o", "b.yaml"]) == 0
    assert main(["init", str(SAMPLES / "badge-scans.csv"), "--force"]) == 0
    assert Path("badge-scans.yaml").read_text(encoding="utf-8").startswith("# Mapping for")


def test_init_refuses_an_asset_type_eloqua_does_not_have(capsys):
    args = ["init", str(SAMPLES / "badge-scans.csv"), "--sandbox", "--asset-type", "Trade show"]
    assert main(args) == 2
    assert "'Trade show' is not set up in Eloqua" in capsys.readouterr().err
    assert not Path("badge-scans.yaml").exists()


def test_init_refuses_an_unknown_time_zone(capsys):
    assert main(["init", str(SAMPLES / "badge-scans.csv"), "--timezone", "Europe/Pari"]) == 2
    assert "did you mean Europe/Paris" in capsys.readouterr().err


def test_run_names_the_header_row_holding_the_mapped_columns(sandbox, capsys):
    export = EXPORTS[3]
    mapping = init(export)
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace("header_row: 12", "header_row: 1"),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["run", str(SAMPLES / export.file), "--mapping", str(mapping), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "add `header_row: 12` under `source:`" in err
    assert "(or run with --header-row 12)" in err


def test_run_names_the_date_format_the_values_do_match(sandbox, capsys):
    export = EXPORTS[5]
    mapping = init(export)
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace("%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M"),
        encoding="utf-8",
    )
    args = ["run", str(SAMPLES / export.file), "--mapping", str(mapping), "--quiet"]
    assert main([*args, "--results", "r.csv"]) == 1
    errors = {r["error"] for r in read_results(Path("r.csv")).values() if r["status"] == "invalid"}
    assert any(
        'does not match the format "%m/%d/%Y %H:%M"' in e and 'it matches "%d/%m/%Y %H:%M"' in e
        for e in errors
    ), errors


# --- what init says about its choices (the usability trial's findings) -----------------------

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def no_credentials(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("ELOQUA_")]:
        monkeypatch.delenv(name)


def test_dry_run_of_an_init_mapping_with_emails_needs_credentials_or_sandbox(
    no_credentials, capsys
):
    """As the README says: a mapping that looks emails up is never checked offline."""
    assert "needs Eloqua even for a dry run" in " ".join(README.split())
    assert "Without credentials the dry run works offline" not in " ".join(README.split())
    data = str(SAMPLES / "zoom-attendees.csv")
    assert main(["init", data, *EXPORTS[3].flags()]) == 0
    dry_run = ["run", data, "--mapping", "zoom-attendees.yaml", "--dry-run", "--quiet"]
    assert main(dry_run) == 2
    err = capsys.readouterr().err
    assert "so even a dry run needs credentials" in err and "or add --sandbox" in err
    assert main([*dry_run, "--sandbox"]) == 0
    # A mapping that looks nothing up (contact ids in a column) is checked offline.
    attendees = str(SAMPLES / "attendees.csv")
    assert main(["init", attendees, *EXPORTS[0].flags()]) == 0
    assert main(["run", attendees, "--mapping", "attendees.yaml", "--dry-run", "--quiet"]) == 0
    assert "Checked offline (no credentials)" in capsys.readouterr().out


def test_mapping_from_init_shows_the_exact_next_command_it_printed(capsys):
    data = Path("exports") / "zoom attendees.csv"
    data.parent.mkdir()
    data.write_bytes((SAMPLES / "zoom-attendees.csv").read_bytes())
    assert main(["init", str(data), "--sandbox", *EXPORTS[3].flags()]) == 0
    out = capsys.readouterr().out
    next_line = next(line for line in out.splitlines() if line.startswith("Next: "))
    command = next_line.removeprefix("Next: ")
    assert command == (
        "eloqua-import run 'exports/zoom attendees.csv' --mapping 'zoom attendees.yaml'"
        " --dry-run --sandbox"
    )
    mapping = Path("zoom attendees.yaml").read_text(encoding="utf-8")
    assert f"# Try it without sending anything:  {command}\n" in mapping
    assert main([*shlex.split(command)[1:], "--quiet"]) == 0  # and it runs as printed


def eventbrite_init(activity_type: str, capsys) -> tuple[str, str]:
    export = EXPORTS[4]
    flags = [*export.flags()[:2], "--activity-type", activity_type, *export.flags()[4:]]
    assert main(["init", str(SAMPLES / export.file), "--sandbox", *flags]) == 0
    return capsys.readouterr().out, Path("eventbrite-attendees.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("activity_type", ["Attended", "Spoke"])
def test_init_warns_when_an_attendance_would_be_dated_by_its_order(activity_type, capsys):
    out, mapping = eventbrite_init(activity_type, capsys)
    warning = next(line for line in out.splitlines() if line.startswith("Warning: "))
    assert "activityDate reads 'Order Date', which looks like when the ticket was ordered" in (
        warning
    )
    # No check-in time in this export: the way out is the asset type's registration type.
    assert "run init again with --activity-type Registered" in warning
    assert "every row would count" not in warning  # the status says who checked in
    head = " ".join(line.lstrip("# ") for line in mapping.split("\n\n", 1)[0].splitlines())
    assert "WARNING: activityDate reads 'Order Date'" in head
    assert "(WARNING: see the top of this file)" in mapping


def test_init_for_an_attendance_keeps_only_the_checked_in_rows_and_the_run_agrees(sandbox, capsys):
    out, mapping = eventbrite_init("Attended", capsys)
    assert "  skip rows where Attendee Status is not 'Checked In'\n" in out
    rules = yaml.safe_load(mapping)["skip_if"]
    assert rules == [
        {"column": "Attendee Status", "in": ["Refunded", "Not Attending"]},
        {"column": "Attendee Status", "not_in": ["Checked In"]},
    ]
    data = str(SAMPLES / "eventbrite-attendees.xlsx")
    run = ["run", data, "--mapping", "eventbrite-attendees.yaml", "--quiet", "--results", "r.csv"]
    assert main(run) == 0
    truth = table_rows(EXPORTS[4])
    results = read_results(Path("r.csv"))
    created = {n for n, r in results.items() if r["status"] == "created"}
    assert created == {n for n, row in truth.items() if row["Attendee Status"] == "Checked In"}
    assert {results[n]["error"] for n in set(results) - created} == {
        'skip_if: Attendee Status is "Refunded"',
        'skip_if: Attendee Status is "Not Attending"',
        'skip_if: Attendee Status is "Attending", not "Checked In"',
    }
    assert len(sandbox.state.activities) == len(created)


def test_init_for_registrations_neither_warns_nor_drops_the_unchecked(capsys):
    out, mapping = eventbrite_init("Registered", capsys)
    assert "Warning" not in out and "WARNING" not in mapping
    assert "not_in" not in mapping


def test_init_names_a_check_in_time_column_that_is_not_all_dates(tmp_path, capsys):
    data = tmp_path / "tickets.csv"
    data.write_text(
        "Email,Order Date,Check-In Time\n"
        "jose.nunez@example.com,2026-03-01 10:00,2026-03-14 09:02\n"
        "zoe.muller+events@example.org,2026-03-02 11:00,not checked in\n",
        encoding="utf-8",
    )
    flags = ["--activity-type", "Checked In", "--asset-type", "Conference", "--timezone", "UTC"]
    assert main(["init", str(data), *flags]) == 0
    warning = next(line for line in capsys.readouterr().out.splitlines() if "Warning" in line)
    assert "If 'Check-In Time' holds when they came, use it" in warning
    assert "nothing in the file says who came, so every row would count" in warning
