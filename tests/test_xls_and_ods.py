"""Excel 97-2003 (.xls) and OpenDocument (.ods) workbooks read like their .xlsx twins.

The twins in tests/fixtures/ hold the same cells as an .xlsx (see make_twins.py): the same
header, rows, row numbers and cell types must come out, and the same payloads reach the sandbox.
"""

from __future__ import annotations

import datetime
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from results_csv import read_results
from test_loader import make_workbook, read_all

from importer import xls_ods
from importer.cli import main
from importer.errors import InputError
from importer.loader import open_table
from importer.table import UNCALCULATED, Row

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TWINS = ["xls", "ods"]


def twin(stem: str, kind: str) -> Path:
    return FIXTURES / f"{stem}.{kind}"


# --- the loader: same rows, cells and types as the .xlsx --------------------------------------


@pytest.mark.parametrize("kind", TWINS)
def test_twin_gives_the_rows_and_cell_types_of_the_xlsx(tmp_path: Path, kind: str) -> None:
    xlsx_table, xlsx_rows = read_all(make_workbook(tmp_path / "expo.xlsx"), sheet=2, header_row=3)
    table, rows = read_all(twin("expo", kind), sheet=2, header_row=3)
    assert (table.kind, table.sheet, table.header) == (kind, "Attendees", xlsx_table.header)
    scanned = datetime.datetime(2021, 3, 4, 14, 30)
    assert rows == xlsx_rows
    assert rows == [
        Row(4, ["ana@example.com", 2405, "00123", scanned, "", ""]),
        Row(6, ["bo@example.com", 17, "02139", datetime.datetime(2021, 3, 5), 1.5, True]),
    ]
    for row, xlsx_row in zip(rows, xlsx_rows, strict=True):
        assert [type(cell) for cell in row.cells] == [type(cell) for cell in xlsx_row.cells]
    assert table.blank_rows == 1  # row 5
    assert table.estimated_rows == 3


@pytest.mark.parametrize("kind", TWINS)
def test_twin_dates_are_the_datetimes_of_the_xlsx_sample(kind: str) -> None:
    _, xlsx_rows = read_all(ROOT / "samples" / "webinar.xlsx", sheet="Attendees", header_row=3)
    _, rows = read_all(twin("webinar", kind), sheet="Attendees", header_row=3)
    assert rows == xlsx_rows and len(rows) == 55
    assert all(type(row.cells[4]) is datetime.datetime for row in rows)
    assert all(type(row.cells[0]) is int for row in rows)  # 2007.0 in the file: the ID 2007


@pytest.mark.parametrize("kind", TWINS)
@pytest.mark.parametrize("sheet", [2, "2", "Attendees", " attendees "])
def test_twin_sheet_is_chosen_by_name_or_1_based_number(kind: str, sheet: str | int) -> None:
    table, rows = read_all(twin("expo", kind), sheet=sheet, header_row=3)
    assert (table.sheet, [row.number for row in rows]) == ("Attendees", [4, 6])


@pytest.mark.parametrize("kind", TWINS)
def test_twin_default_sheet_is_the_first(kind: str) -> None:
    table, rows = read_all(twin("expo", kind))
    assert (table.sheet, table.header, rows) == ("Summary", ["Spring Expo 2021 - totals"], [])


@pytest.mark.parametrize("kind", TWINS)
@pytest.mark.parametrize("sheet", ["Booth Scans", 3, 0])
def test_twin_missing_sheet_lists_the_sheets_there_are(kind: str, sheet: str | int) -> None:
    with pytest.raises(InputError, match=r"has no sheet .*its sheets are 'Summary', 'Attendees'"):
        read_all(twin("expo", kind), sheet=sheet)


@pytest.mark.parametrize(("kind", "named"), [("xls", "expo.csv"), ("ods", "expo.xlsx")])
def test_twin_is_recognised_by_content_whatever_its_name(
    tmp_path: Path, kind: str, named: str
) -> None:
    path = Path(shutil.copy(twin("expo", kind), tmp_path / named))
    table, rows = read_all(path, sheet=2, header_row=3)
    assert (table.kind, [row.number for row in rows]) == (kind, [4, 6])
    assert table.header_notes[0].startswith(f"the file is named {path.suffix} but is an")


def ods_file(path: Path, rows_xml: str) -> Path:
    """A minimal OpenDocument spreadsheet, as the format defines it (mimetype stored first)."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Scans">'
        f"{rows_xml}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def text_cell(value: str) -> str:
    cell = '<table:table-cell office:value-type="string">'
    return f"{cell}<text:p>{value}</text:p></table:table-cell>"


def test_rows_and_columns_before_the_data_keep_excel_numbering(tmp_path: Path) -> None:
    skip = "<table:table-cell/>"
    path = ods_file(
        tmp_path / "scans.ods",
        "<table:table-row/><table:table-row/>"  # the data starts at B3
        f"<table:table-row>{skip}{text_cell('Email')}{text_cell('Name')}</table:table-row>"
        f"<table:table-row>{skip}{text_cell('a@x.com')}{text_cell('A')}</table:table-row>",
    )
    table, rows = read_all(path, header_row=3)
    assert table.header == ["Column 1", "Email", "Name"]
    assert rows == [Row(4, ["", "a@x.com", "A"])]


def test_a_cell_over_the_cap_refuses_the_file_before_any_row(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(xls_ods, "MAX_CELL_CHARS", 10)
    path = ods_file(
        tmp_path / "notes.ods",
        f"<table:table-row>{text_cell('Email')}{text_cell('Notes')}</table:table-row>"
        f"<table:table-row>{text_cell('a@x.com')}{text_cell('x' * 11)}</table:table-row>"
        f"<table:table-row>{text_cell('b@x.com')}{text_cell('short')}</table:table-row>",
    )
    with pytest.raises(InputError) as caught, open_table(path):
        pass
    assert str(caught.value) == (
        f"{path} (sheet 'Scans'): row 2, column 2 holds 11 characters, more than the 10 a cell "
        "may have; shorten that cell and save the file again"
    )


@pytest.mark.parametrize("kind", TWINS)
def test_workbook_over_the_whole_sheet_limit_is_refused_before_reading(
    kind: str, monkeypatch
) -> None:
    monkeypatch.setitem(xls_ods.MAX_WHOLE_SHEET_BYTES, kind, 1000)
    with pytest.raises(InputError, match=r"read whole into memory.*up to 0 MB.*Save As \.xlsx"):
        read_all(twin("expo", kind))


def test_truncated_ods_is_reported_as_corrupt(tmp_path: Path) -> None:
    whole = twin("webinar", "ods").read_bytes()
    path = tmp_path / "cut.ods"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError) as caught:
        read_all(path)
    assert str(caught.value).startswith(
        f"{path} is not a valid OpenDocument (.ods) workbook (it may be truncated, corrupt"
    )


def test_opendocument_text_is_not_taken_for_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "letter.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", "<x/>")
    with pytest.raises(InputError, match=r"letter\.ods is an OpenDocument file but not a spread"):
        read_all(path)


# --- the CLI end to end: the same payloads as the .xlsx ----------------------------------------


def import_into_new_sandbox(
    sandbox_factory, tmp_path: Path, workbook: Path
) -> dict[int, dict[str, Any]]:
    """Run the CLI on ``workbook`` into a fresh sandbox; the payload Eloqua got, by row."""
    sandbox = sandbox_factory()
    out = tmp_path / workbook.name
    out.mkdir()
    args = ["run", str(workbook), "--mapping", str(ROOT / "mappings" / "webinar.yaml"), "--quiet"]
    assert main([*args, "--results", str(out / "r.csv"), "--ledger", str(out / "l.db")]) == 0
    results = read_results(out / "r.csv")
    sent = {}
    for number, result in results.items():
        activity = sandbox.state.activity(result["activity_id"])
        assert activity is not None and result["status"] == "created"
        sent[number] = {key: value for key, value in activity.items() if key != "id"}
    return sent


@pytest.mark.parametrize("kind", TWINS)
def test_twin_of_the_webinar_sample_sends_the_payloads_of_the_xlsx(
    tmp_path: Path, sandbox_factory, kind: str
) -> None:
    expected = import_into_new_sandbox(sandbox_factory, tmp_path, ROOT / "samples" / "webinar.xlsx")
    assert len(expected) == 55
    assert import_into_new_sandbox(sandbox_factory, tmp_path, twin("webinar", kind)) == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("password_protected.xls", "password_protected.xls looks password-protected; open it in"),
        ("truncated.xls", "truncated.xls is not a valid Excel 97-2003 (.xls) workbook"),
    ],
)
def test_locked_or_broken_xls_is_exit_2_with_the_fix_and_nothing_sent(
    tmp_path: Path, sandbox, capsys, name: str, message: str
) -> None:
    data = FIXTURES / "broken" / name
    args = ["run", str(data), "--mapping", str(ROOT / "mappings" / "webinar.yaml"), "--quiet"]
    assert main([*args, "--results", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert "remove" in err and "password" in err
    assert sum(sandbox.state.request_counts.values()) == 0


def test_password_protected_xls_is_told_apart_whatever_its_name(tmp_path: Path) -> None:
    path = Path(shutil.copy(FIXTURES / "broken" / "password_protected.xls", tmp_path / "x.csv"))
    with pytest.raises(InputError, match=r"x\.csv looks password-protected"):
        read_all(path)


def test_watch_imports_dropped_xls_and_ods(tmp_path: Path, sandbox) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for kind in TWINS:
        shutil.copy(twin("webinar", kind), inbox / f"webinar.{kind}")
    args = ["watch", str(inbox), "--mapping", str(ROOT / "mappings" / "webinar.yaml"), "--once"]
    assert main([*args, "--settle", "0", "--ledger", str(tmp_path / "l.db")]) == 0
    done = sorted(path.name for path in (inbox / "done").iterdir())
    assert "webinar.xls" in done and "webinar.ods" in done
    assert len(sandbox.state.activities) == 55  # the second file's rows were already created


def test_ods_formulas_give_their_saved_values_or_the_uncalculated_marker(tmp_path: Path) -> None:
    never = '<table:table-cell table:formula="of:=2*2"/>'  # as scripts write them: no value
    saved = '<table:table-cell table:formula="of:=1000+1001" office:value-type="float"'
    empty = '<table:table-cell table:formula="of:=&quot;&quot;" office:value-type="string"/>'
    path = ods_file(
        tmp_path / "f.ods",
        f"<table:table-row>{text_cell('Email')}{text_cell('Contact ID')}{text_cell('Label')}"
        f"{text_cell('Score')}</table:table-row>"
        f'<table:table-row>{text_cell("a@x.com")}{saved} office:value="2001"/>{empty}{never}'
        "</table:table-row>"
        f'<table:table-row table:number-rows-repeated="2">{text_cell("b@x.com")}'
        f'<table:table-cell table:number-columns-repeated="2"/>{never}</table:table-row>',
    )
    _, rows = read_all(path)
    assert rows[0].cells == ["a@x.com", 2001, "", UNCALCULATED]
    assert rows[0].cells[2] is not UNCALCULATED  # a formula whose value is "" is just blank
    assert rows[0].cells[3] is UNCALCULATED
    assert [row.cells for row in rows[1:]] == [["b@x.com", "", "", UNCALCULATED]] * 2
    assert rows[2].cells[3] is UNCALCULATED and [row.number for row in rows] == [2, 3, 4]
