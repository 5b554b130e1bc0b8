"""The broken-input corpus (tests/fixtures/broken/) through the real CLI.

Each file either stops the run before anything is sent (exit 2, a message on stderr naming the
file and the problem, no traceback) or imports with the right per-row results.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import openpyxl
import pytest
from results_csv import read_results

from importer.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken"
MAPPING = FIXTURES / "booth_scans.yaml"
GOOD_CSV = BROKEN / "csv_named.xlsx"  # a well-formed booth-scan CSV, whatever its name

# (input, mapping, what stderr must say)
REFUSED = [
    ("empty.csv", MAPPING, "empty.csv is empty: no header row found at row 1"),
    ("garbage.csv", MAPPING, "garbage.csv is not a CSV or Excel file: it holds binary data"),
    ("truncated.xlsx", MAPPING, "truncated.xlsx is not a valid Excel workbook"),
    ("password_protected.xlsx", MAPPING, "password_protected.xlsx looks password-protected"),
    ("old_excel.xls", MAPPING, "old_excel.xls is not a valid Excel 97-2003 (.xls) workbook"),
    ("truncated.xls", MAPPING, "truncated.xls is not a valid Excel 97-2003 (.xls) workbook"),
    ("password_protected.xls", MAPPING, "password_protected.xls looks password-protected"),
    ("web_page.xls", MAPPING, "web_page.xls is a web page or XML file, not a spreadsheet"),
    (
        GOOD_CSV,
        BROKEN / "broken_yaml.yaml",
        "broken_yaml.yaml: line 5, column 15: expected ',' or '}'",
    ),
    (GOOD_CSV, BROKEN / "missing_column.yaml", "column 'Scan Date' is not in the file"),
    (GOOD_CSV, BROKEN / "wrong_types.yaml", "source.header_row must be a row number"),
]

IDS = [Path(name).name if name != GOOD_CSV else Path(m).stem for name, m, _ in REFUSED]


def run(tmp_path: Path, data: Path, mapping: Path, *extra: str) -> int:
    args = ["run", str(data), "--mapping", str(mapping), "--quiet", *extra]
    return main([*args, "--results", str(tmp_path / "r.csv"), "--errors", str(tmp_path / "e.csv")])


def results(tmp_path: Path) -> dict[int, dict[str, str]]:
    return read_results(tmp_path / "r.csv")


def nothing_sent(sandbox) -> bool:
    return sandbox.state.activities == [] and not sandbox.state.request_counts["create_activity"]


@pytest.mark.parametrize(("name", "mapping", "message"), REFUSED, ids=IDS)
def test_refused_input_is_exit_2_naming_file_and_problem_in_dry_run(
    tmp_path, capsys, name, mapping, message
):
    assert run(tmp_path, BROKEN / name, mapping, "--dry-run") == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "e.csv").exists()


@pytest.mark.parametrize(("name", "mapping", "message"), REFUSED, ids=IDS)
def test_refused_input_sends_nothing_to_eloqua(tmp_path, sandbox, capsys, name, mapping, message):
    assert run(tmp_path, BROKEN / name, mapping) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert sum(sandbox.state.request_counts.values()) == 0
    assert sandbox.state.activities == []


def test_every_refusal_says_how_to_fix_it(tmp_path, capsys):
    fixes = ("export", "Save As", "remove the password", "re-export", "check", "Fix", "must be")
    for name, mapping, _ in REFUSED:
        run(tmp_path, BROKEN / name, mapping, "--dry-run")
        err = capsys.readouterr().err
        assert any(fix in err for fix in fixes), err


def test_header_only_file_is_zero_rows_exit_0_said_plainly(tmp_path, sandbox, capsys):
    assert run(tmp_path, BROKEN / "header_only.csv", MAPPING) == 0
    assert "The file has a header but no data rows: nothing to import." in capsys.readouterr().out
    assert results(tmp_path) == {}
    assert sandbox.state.activities == []


def sent(sandbox) -> list[tuple[int, str, str]]:
    return sorted(
        (a["contactId"], a["activityType"], a["activityDate"]) for a in sandbox.state.activities
    )


EXPECTED = [(2001, "Visited Booth", "1772892300"), (2002, "Viewed a Demo", "1773061500")]


def test_nul_bytes_are_dropped_and_rows_keep_their_numbers(tmp_path, sandbox, capsys):
    assert run(tmp_path, BROKEN / "nul_bytes.csv", MAPPING) == 0
    assert {n: r["status"] for n, r in results(tmp_path).items()} == {2: "created", 4: "created"}
    assert results(tmp_path)[2]["Event"] == "Spring Expo"
    assert sent(sandbox) == EXPECTED
    assert "blank rows skipped" in capsys.readouterr().out


def test_ragged_rows_are_invalid_with_the_reason_and_the_rest_import(tmp_path, sandbox):
    assert run(tmp_path, BROKEN / "ragged.csv", MAPPING) == 1
    rows = results(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {
        2: "created",
        3: "invalid",
        4: "invalid",
        5: "created",
    }
    assert rows[3]["error"].startswith("row has 5 cells but the header has 7 columns")
    assert rows[4]["error"].startswith("row has 8 cells but the header has 7 columns")
    assert sent(sandbox) == EXPECTED
    with (tmp_path / "e.csv").open(encoding="utf-8-sig", newline="") as file:
        assert [line["source_row"] for line in csv.DictReader(file)] == ["3", "4"]


def test_unclosed_quote_is_one_invalid_row_and_later_rows_still_import(tmp_path, sandbox):
    assert run(tmp_path, BROKEN / "unclosed_quote.csv", MAPPING) == 1
    rows = results(tmp_path)
    assert {n: r["status"] for n, r in rows.items()} == {2: "created", 3: "invalid", 4: "created"}
    assert 'opens a quote (") that is never closed' in rows[3]["error"]
    assert sent(sandbox) == EXPECTED


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("csv_named.xlsx", "note: the file is named .xlsx but holds CSV text; read as CSV"),
        ("xlsx_named.csv", "note: the file is named .csv but is an Excel workbook; read as Excel"),
    ],
)
def test_a_file_whose_extension_lies_is_read_by_its_content(tmp_path, sandbox, capsys, name, note):
    assert run(tmp_path, BROKEN / name, MAPPING) == 0
    assert note in capsys.readouterr().out
    assert [r["status"] for r in results(tmp_path).values()] == ["created", "created"]
    assert sent(sandbox) == EXPECTED


def test_duplicate_and_blank_header_names_are_reported_in_the_summary(tmp_path, capsys):
    data = tmp_path / "dupes.csv"
    header = "First Name,Contact ID,Event,Action,Scan Time,Booth,Campaign,,Booth"
    data.write_text(f"{header}\nZoë,2001,Spring Expo,visited,03/07/2026 09:05,B12,37,x,B13\n")
    assert run(tmp_path, data, MAPPING, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "note: column 8 has no name; it is called 'Column 8'" in out
    assert "note: column 9 repeats the name 'Booth'; it is called 'Booth (2)'" in out
    assert list(results(tmp_path)[2])[-2:] == ["Column 8", "Booth (2)"]


def test_uncalculated_formula_in_a_mapped_column_is_a_row_error(tmp_path, sandbox):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["First Name", "Contact ID", "Event", "Action", "Scan Time", "Booth", "Notes"])
    sheet.append(["Zoë", "=1000+1001", "Spring Expo", "visited", "03/07/2026 09:05", "B12"])
    sheet.append(["José", 2002, "Spring Expo", "demo", "03/09/2026 09:05", "B14", '=F3&"!"'])
    path = tmp_path / "formulas.xlsx"
    workbook.save(path)  # openpyxl, like many scripts, saves formulas without their values
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        MAPPING.read_text().replace("  campaignId: {column: Campaign, required: false}\n", "")
    )
    assert run(tmp_path, path, mapping) == 1
    rows = results(tmp_path)
    assert rows[2]["status"] == "invalid"
    assert rows[2]["error"] == (
        "Contact ID: the cell holds a formula that was never calculated, so it has no value to"
        " import; open the file in Excel and save it (Excel then calculates the formulas), and"
        " import it again"
    )
    assert (rows[3]["status"], rows[3]["Notes"]) == ("created", "")  # unused column: passed on
    assert sent(sandbox) == [EXPECTED[1]]


def test_corpus_files_are_unchanged_by_a_run(tmp_path, sandbox):
    copy = shutil.copy(BROKEN / "ragged.csv", tmp_path / "ragged.csv")
    before = Path(copy).read_bytes()
    run(tmp_path, Path(copy), MAPPING)
    assert Path(copy).read_bytes() == before
