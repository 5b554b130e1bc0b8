"""Exports as marketing ops receive them, end to end: the real CLI against the sandbox, checking
the exact activities Eloqua received and the row numbers in the results file."""

from __future__ import annotations

import csv
import datetime as dt
import textwrap
import zoneinfo
from pathlib import Path
from typing import Any

import openpyxl
from results_csv import read_results

from importer.cli import main

# Activity properties the sandbox adds to what it was sent.
ADDED_BY_ELOQUA = ("id", "type", "depth")


def epoch(zone: str, *when: int) -> str:
    local = dt.datetime(*when, tzinfo=zoneinfo.ZoneInfo(zone))
    return str(int(local.timestamp()))


def write_mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(tmp_path: Path, data: Path, mapping: Path) -> int:
    results = str(tmp_path / "results.csv")
    errors = str(tmp_path / "errors.csv")
    args = ["run", str(data), "--mapping", str(mapping), "--quiet"]
    return main([*args, "--results", results, "--errors", errors])


def results(tmp_path: Path) -> dict[int, dict[str, str]]:
    return read_results(tmp_path / "results.csv")


def received(sandbox) -> dict[str, dict[str, Any]]:
    """What Eloqua stored, by activity id, without the properties it adds itself."""
    return {
        a["id"]: {k: v for k, v in a.items() if k not in ADDED_BY_ELOQUA}
        for a in sandbox.state.activities
    }


def created(tmp_path: Path, sandbox) -> dict[int, dict[str, Any]]:
    """Row number -> the activity Eloqua holds for it (via the id in the results file)."""
    stored = received(sandbox)
    rows = results(tmp_path)
    made = {n: stored[r["activity_id"]] for n, r in rows.items() if r["status"] == "created"}
    assert len(made) == len(stored), "every activity Eloqua holds is in the results file"
    return made


# --- a Windows export: cp1252, semicolons, day-first dates, padded headers ---------------------

WINDOWS_EXPORT = (
    " Nom ; Prénom ;  ID Contact ;Salon;Action ; Date du scan ;Stand\r\n"
    "Müller;Zoë;2001;Salon Paris;visite;07/03/2026 09:05;B12\r\n"
    "Núñez;José;2002;Salon Paris;démo;12/03/2026 17:45;B14\r\n"
    ";;;;;;\r\n"
    "Dubois;François;2003;Salon Paris;visite;29/03/2026 02:30;B12\r\n"
    "Østergaard;Søren;2004;Salon Paris;visite;03/04/2026;€ stand\r\n"
    "Wróbel;Łukasz;2005;Salon Paris;visite;2026-04-03 10:00;B12\r\n"
)

WINDOWS_MAPPING = """\
    version: 1
    activity:
      name: "{Salon} - {Stand}"
      assetName: {column: Salon}
      assetType: Tradeshow
      activityType:
        column: Action
        map: {visite: Visited Booth, démo: Viewed a Demo}
      activityDate:
        column: Date du scan
        format: ["%d/%m/%Y %H:%M", "%d/%m/%Y"]
        timezone: Europe/Paris
      contactId: {column: ID Contact}
      campaignId: 37
      fieldValues:
        - {id: "12", column: Stand}
"""


def windows_export(tmp_path: Path) -> Path:
    path = tmp_path / "salon.csv"
    # Łukasz is not in cp1252: Excel writes "?" for it, as here.
    path.write_bytes(WINDOWS_EXPORT.replace("Ł", "?").encode("cp1252"))
    return path


def test_windows_cp1252_semicolon_export_with_day_first_dates(tmp_path, sandbox, capsys):
    data, mapping = windows_export(tmp_path), write_mapping(tmp_path, WINDOWS_MAPPING)
    assert run(tmp_path, data, mapping) == 1
    rows = results(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {
        2: "created",
        3: "created",
        5: "invalid",
        6: "created",
        7: "invalid",
    }
    assert rows[5]["error"] == (
        "Date du scan: '29/03/2026 02:30' does not exist in Europe/Paris (clocks go forward);"
        " check the time, or add a UTC offset to the value (e.g. -05:00)"
    )
    assert rows[7]["error"] == (
        "Date du scan: '2026-04-03 10:00' does not match the format \"%d/%m/%Y %H:%M\" or"
        ' "%d/%m/%Y"; it matches "%Y-%m-%d %H:%M": fix the format (or the value)'
    )
    assert rows[3]["Prénom"] == "José" and rows[6]["Stand"] == "€ stand"
    base = {"assetName": "Salon Paris", "assetType": "Tradeshow", "campaignId": 37}
    assert created(tmp_path, sandbox) == {
        2: {
            **base,
            "name": "Salon Paris - B12",
            "activityType": "Visited Booth",
            "activityDate": epoch("Europe/Paris", 2026, 3, 7, 9, 5),
            "contactId": 2001,
            "fieldValues": [{"type": "FieldValue", "id": "12", "value": "B12"}],
        },
        3: {
            **base,
            "name": "Salon Paris - B14",
            "activityType": "Viewed a Demo",
            "activityDate": epoch("Europe/Paris", 2026, 3, 12, 17, 45),
            "contactId": 2002,
            "fieldValues": [{"type": "FieldValue", "id": "12", "value": "B14"}],
        },
        6: {
            **base,
            "name": "Salon Paris - € stand",
            "activityType": "Visited Booth",
            "activityDate": epoch("Europe/Paris", 2026, 4, 3),  # 3 April, not 4 March
            "contactId": 2004,
            "fieldValues": [{"type": "FieldValue", "id": "12", "value": "€ stand"}],
        },
    }
    assert "blank rows skipped     1" in capsys.readouterr().out


# --- a workbook: summary sheet first, title rows, datetime and numeric cells --------------------

WORKBOOK_MAPPING = """\
    version: 1
    source: {sheet: Attendees, header_row: 4}
    activity:
      assetName: Data Privacy in 2026
      assetType: Webinar
      activityType:
        column: Status
        map: {attended: Attended, registered: Registered, on demand: Watched Recording}
      activityDate: {column: Joined, timezone: America/New_York}
      contactId: {column: Contact ID}
      campaignId: {column: Campaign, required: false}
      fieldValues:
        - {id: "31", column: Minutes, required: false}
"""


def webinar_workbook(tmp_path: Path) -> Path:
    book = openpyxl.Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["Registrants", 4])
    summary.append(["Attended", 2])
    sheet = book.create_sheet("Attendees")
    sheet.append(["Data Privacy in 2026 - attendee report"])
    sheet.append(["Generated", dt.datetime(2026, 3, 13, 8, 0)])
    sheet.append([])
    sheet.append(["Contact ID", "Email", "Status", "Joined", "Minutes", "Campaign", None])
    sheet.append(
        [2006.0, "hanako.sato@example.jp", "Attended", dt.datetime(2026, 3, 12, 10, 2), 58.0, 38]
    )
    sheet.append([2007, "conor.o'brien@example.ie", "Registered", dt.date(2026, 3, 1), None, 38.0])
    sheet.append([None] * 6)
    sheet.append([2008, "maria.garcia@example.net", "On Demand", 46094.75, 12.5])  # a serial
    sheet.append([2009, "james.smith@example.co.uk", "Attended", "12/03/2026", 30, 38])
    for column in range(1, 9):  # formatted, empty rows below the data
        sheet.cell(row=12, column=column).number_format = "0.00"
    path = tmp_path / "webinar.xlsx"
    book.save(path)
    return path


def test_workbook_with_summary_sheet_title_rows_and_typed_cells(tmp_path, sandbox):
    data, mapping = webinar_workbook(tmp_path), write_mapping(tmp_path, WORKBOOK_MAPPING)
    assert run(tmp_path, data, mapping) == 1
    rows = results(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {
        5: "created",
        6: "created",
        8: "created",
        9: "invalid",
    }
    assert rows[9]["error"].startswith("Joined: '12/03/2026' is ambiguous (day/month order)")
    assert (rows[5]["Contact ID"], rows[5]["Joined"]) == ("2006", "2026-03-12 10:02:00")
    base = {"name": "Data Privacy in 2026", "assetName": "Data Privacy in 2026"}
    base["assetType"] = "Webinar"
    assert created(tmp_path, sandbox) == {
        5: {
            **base,
            "activityType": "Attended",
            "activityDate": epoch("America/New_York", 2026, 3, 12, 10, 2),
            "contactId": 2006,
            "campaignId": 38,
            "fieldValues": [{"type": "FieldValue", "id": "31", "value": "58"}],
        },
        6: {
            **base,
            "activityType": "Registered",
            "activityDate": epoch("America/New_York", 2026, 3, 1),
            "contactId": 2007,
            "campaignId": 38,
        },
        8: {
            **base,
            "activityType": "Watched Recording",
            "activityDate": epoch("America/New_York", 2026, 3, 13, 18, 0),  # serial 46094.75
            "contactId": 2008,
            "fieldValues": [{"type": "FieldValue", "id": "31", "value": "12.5"}],
        },
    }


# --- a webinar platform's attendee report: a preamble above the table --------------------------

WEBINAR_REPORT = """\
Attendee Report
Webinar ID,Topic,Actual Start Time
"812 3456 7890","Data Privacy in 2026","Mar 12, 2026 10:00:00 AM"

Attendee Details
Attended,First Name,Last Name,Email,Contact ID,Join Time,Time in Session (minutes)
Yes,Wei,Zhang,wei.zhang@example.co.uk,2019,"Mar 12, 2026 09:58:41 AM",61
No,Olivia,Brown,olivia.brown@example.de,2020,"Mar 10, 2026 04:15:00 PM",
Yes,Noah,Johnson,noah.johnson@example.com,2021,"Mar 12, 2026 10:30:00 AM",29
Yes,Emma,Wilson,emma.wilson@example.org,99999,"Mar 12, 2026 10:05:00 AM",55
"""

REPORT_MAPPING = """\
    version: 1
    source: {header_row: 6}
    activity:
      name: "Data Privacy in 2026 - {Attended}"
      assetName: Data Privacy in 2026
      assetType: Webinar
      activityType: {column: Attended, map: {"yes": Attended, "no": Registered}}
      activityDate:
        column: Join Time
        format: "%b %d, %Y %I:%M:%S %p"
        timezone: America/Los_Angeles
      contactId: {column: Contact ID}
      campaignId: 38
      fieldValues:
        - {id: "31", column: "Time in Session (minutes)", required: false}
"""


def test_webinar_report_with_a_preamble(tmp_path, sandbox):
    data = tmp_path / "report.csv"
    data.write_text(WEBINAR_REPORT, encoding="utf-8-sig")
    mapping = write_mapping(tmp_path, REPORT_MAPPING)
    assert run(tmp_path, data, mapping) == 1
    rows = results(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {
        7: "created",
        8: "created",
        9: "created",
        10: "rejected",
    }
    assert rows[10]["http_status"] == "400" and "99999" in rows[10]["error"]
    base = {"assetName": "Data Privacy in 2026", "assetType": "Webinar", "campaignId": 38}
    assert created(tmp_path, sandbox) == {
        7: {
            **base,
            "name": "Data Privacy in 2026 - Yes",
            "activityType": "Attended",
            "activityDate": epoch("America/Los_Angeles", 2026, 3, 12, 9, 58, 41),
            "contactId": 2019,
            "fieldValues": [{"type": "FieldValue", "id": "31", "value": "61"}],
        },
        8: {
            **base,
            "name": "Data Privacy in 2026 - No",
            "activityType": "Registered",
            "activityDate": epoch("America/Los_Angeles", 2026, 3, 10, 16, 15),
            "contactId": 2020,
        },
        9: {
            **base,
            "name": "Data Privacy in 2026 - Yes",
            "activityType": "Attended",
            "activityDate": epoch("America/Los_Angeles", 2026, 3, 12, 10, 30),
            "contactId": 2021,
            "fieldValues": [{"type": "FieldValue", "id": "31", "value": "29"}],
        },
    }
    with (tmp_path / "errors.csv").open(encoding="utf-8-sig", newline="") as file:
        fix_me = list(csv.DictReader(file))
    assert [(line["Contact ID"], line["source_row"]) for line in fix_me] == [("99999", "10")]
