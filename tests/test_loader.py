"""Loader stage: real CSV and XLSX files in, header and numbered rows out."""

from __future__ import annotations

import datetime
import io
import pathlib
import shutil
import tracemalloc
import zipfile
from collections.abc import Callable

import openpyxl
import pytest

from importer import csvfile
from importer.errors import InputError
from importer.loader import open_table
from importer.table import UNCALCULATED, Row, Table

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
BROKEN = FIXTURES / "broken"


def write(path: pathlib.Path, data: bytes | str) -> pathlib.Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def read_all(path: pathlib.Path, **options: object) -> tuple[Table, list[Row]]:
    with open_table(path, **options) as table:  # type: ignore[arg-type]
        rows = list(table.rows)
    return table, rows


def make_workbook(path: pathlib.Path) -> pathlib.Path:
    """Two sheets as people really send them: title rows, typed cells, trailing blanks."""
    workbook = openpyxl.Workbook()
    summary = workbook.active
    summary.title = "Summary"
    summary.append(["Spring Expo 2021 - totals"])
    attendees = workbook.create_sheet("Attendees")
    attendees.append(["Spring Expo 2021 attendee list"])
    attendees.append([None, "exported by ops"])
    attendees.append(["Email", "Contact ID", "Zip", "Scanned", "Score", "VIP", None, None])
    attendees.append(["ana@example.com", 2405.0, "00123", datetime.datetime(2021, 3, 4, 14, 30)])
    attendees.append([None, None, None])
    attendees.append(["bo@example.com", 17, "02139", datetime.date(2021, 3, 5), 1.5, True])
    attendees.append([None])
    attendees.cell(row=9, column=1, value=None)  # formatting-only rows at the end
    attendees.column_dimensions["J"].width = 30
    workbook.save(path)
    return path


# --- CSV: encodings and delimiters ------------------------------------------------------------


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbfEmail,Name\r\nana@example.com,Ana\r\n")
    table, rows = read_all(path)
    assert table.header == ["Email", "Name"]
    assert table.encoding == "utf-8-sig"
    assert table.kind == "csv"
    assert rows == [Row(2, ["ana@example.com", "Ana"])]


def test_cp1252_semicolon_export_from_excel_is_detected() -> None:
    table, rows = read_all(FIXTURES / "cp1252_semicolon.csv")
    assert (table.encoding, table.delimiter) == ("cp1252", ";")
    assert table.header == ["Email", "Name", "Scan Time"]
    assert rows[0].cells == ["ana@example.com", "Renée Müller", "03/04/2021 14:30"]
    assert rows[1].cells[1] == "François € fan"
    assert [row.number for row in rows] == [2, 3]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header_line(tmp_path: pathlib.Path, delimiter: str) -> None:
    text = delimiter.join(["Email", "Name", "Note"]) + "\n"
    text += delimiter.join(["a@example.com", "A", '"x, y, z"']) + "\n"
    table, rows = read_all(write(tmp_path / "d.csv", text))
    assert table.delimiter == delimiter
    assert rows[0].cells == ["a@example.com", "A", "x, y, z"]


def test_commas_inside_quotes_do_not_win_the_delimiter_sniff(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "q.csv", '"Name, full";Email\n"Doe, Jane";j@example.com\n')
    table, rows = read_all(path)
    assert table.delimiter == ";"
    assert table.header == ["Name, full", "Email"]
    assert rows[0].cells == ["Doe, Jane", "j@example.com"]


def test_explicit_delimiter_and_encoding_are_used(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "x.csv", "A|B;C\n1|2;3\n".encode("latin-1"))
    table, rows = read_all(path, delimiter="|", encoding="latin-1")
    assert (table.encoding, table.delimiter) == ("latin-1", "|")
    assert table.header == ["A", "B;C"]
    assert rows[0].cells == ["1", "2;3"]


def test_tab_delimiter_can_be_given_as_backslash_t(tmp_path: pathlib.Path) -> None:
    table, rows = read_all(write(tmp_path / "t.csv", "A\tB\n1\t2\n"), delimiter="\\t")
    assert table.delimiter == "\t"
    assert rows[0].cells == ["1", "2"]


def test_utf16_with_bom_is_read(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "u16.csv", "Email\tName\r\nz@example.com\tZoë\r\n".encode("utf-16"))
    table, rows = read_all(path)
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert rows == [Row(2, ["z@example.com", "Zoë"])]


def test_cp1252_byte_after_a_long_ascii_prefix_is_decoded_not_fatal(
    tmp_path: pathlib.Path,
) -> None:
    lines = [b"Email,Name"] + [b"user%d@example.com,User" % i for i in range(5000)]
    lines.append(b"rene@example.com,Ren\xe9e")
    table, rows = read_all(write(tmp_path / "late.csv", b"\n".join(lines) + b"\n"))
    assert table.encoding == "utf-8"
    assert rows[-1] == Row(5002, ["rene@example.com", "Renée"])


def test_wrong_explicit_encoding_names_the_file_and_the_fix(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "win.csv", b"Email,Name\na@example.com,Ren\xe9e\n")
    with pytest.raises(InputError) as caught, open_table(path, encoding="utf-8") as table:
        list(table.rows)
    assert str(caught.value) == (
        f"cannot read {path} as utf-8: line 2 has a byte (b'\\xe9') that is not utf-8; try"
        " --encoding cp1252 (Windows) or utf-16, or re-export the file as UTF-8"
    )


def test_unknown_encoding_name_is_an_input_error(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "a.csv", "A\n1\n")
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        read_all(path, encoding="klingon")


def test_utf16_without_bom_is_recognised(tmp_path: pathlib.Path) -> None:
    data = "Email\tName\r\nz@example.com\tZoë\r\n".encode("utf-16-le")
    table, rows = read_all(write(tmp_path / "u16.txt", data))
    assert (table.encoding, table.delimiter) == ("utf-16-le", "\t")
    assert rows == [Row(2, ["z@example.com", "Zoë"])]


def test_nul_bytes_are_removed_instead_of_crashing() -> None:
    table, rows = read_all(FIXTURES / "null_byte.csv")
    assert rows == [Row(2, ["ana@example.com", "Ana"]), Row(4, ["bo@example.com", "Bo"])]
    assert table.blank_rows == 1


# --- CSV: rows and row numbers ------------------------------------------------------------------


def test_blank_rows_are_skipped_but_row_numbers_match_excel(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "b.csv", "Email,Name\na@x.com,A\n\n,\n  ,  \nb@x.com,B\n")
    table, rows = read_all(path)
    assert [row.number for row in rows] == [2, 6]
    assert table.blank_rows == 3


def test_quoted_multiline_cell_counts_as_one_row(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path / "m.csv", 'Email,Note\r\na@x.com,"line one\r\nline two"\r\nb@x.com,ok\r\n'
    )
    _, rows = read_all(path)
    assert rows == [Row(2, ["a@x.com", "line one\r\nline two"]), Row(3, ["b@x.com", "ok"])]


def test_header_on_row_3_ignores_a_ragged_preamble(tmp_path: pathlib.Path) -> None:
    text = "Spring Expo export; generated 2021-03-04\nby,ops,team,,,\nEmail;Name\na@x.com;A\n"
    table, rows = read_all(write(tmp_path / "p.csv", text), header_row=3)
    assert table.delimiter == ";"
    assert table.header == ["Email", "Name"]
    assert rows == [Row(4, ["a@x.com", "A"])]


def test_short_csv_rows_are_invalid_and_long_rows_carry_an_error(tmp_path: pathlib.Path) -> None:
    text = "A,B,C\n1\n1,2,3,,\n1,2,3,4,5\n1,2\n"
    _, rows = read_all(write(tmp_path / "r.csv", text))
    assert rows[0].cells == ["1", "", ""]  # padded, so the results file keeps its shape
    assert rows[0].error is not None
    assert rows[0].error.startswith("row has 1 cell but the header has 3 columns, so its values")
    assert rows[1] == Row(3, ["1", "2", "3"])  # extra blank cells are harmless
    assert rows[2].cells == ["1", "2", "3"]
    assert rows[2].error is not None
    assert rows[2].error.startswith("row has 5 cells but the header has 3 columns")
    assert rows[3].error is not None and rows[3].error.startswith("row has 2 cells")


def test_empty_trailing_header_columns_need_no_cells(tmp_path: pathlib.Path) -> None:
    table, rows = read_all(write(tmp_path / "t.csv", "A,B,,,\n1,2\n3,4,,,\n"))
    assert table.header == ["A", "B"]
    assert rows == [Row(2, ["1", "2"]), Row(3, ["3", "4"])]


def test_a_one_megabyte_cell_is_read(tmp_path: pathlib.Path) -> None:
    note = "x" * 1_000_000
    _, rows = read_all(write(tmp_path / "long.csv", f'Email,Note\na@x.com,"{note}"\nb@x.com,ok\n'))
    assert rows == [Row(2, ["a@x.com", note]), Row(3, ["b@x.com", "ok"])]


def test_unclosed_quote_breaks_one_row_and_the_rest_are_read_again(
    tmp_path: pathlib.Path,
) -> None:
    text = 'Email,Note\na@x.com,"fine\nstill fine"\nb@x.com,"oops\nc@x.com,ok\nd@x.com,ok\n'
    _, rows = read_all(write(tmp_path / "q.csv", text))
    assert [(row.number, row.cells) for row in rows] == [
        (2, ["a@x.com", "fine\nstill fine"]),
        (3, ["b@x.com", "oops"]),
        (4, ["c@x.com", "ok"]),
        (5, ["d@x.com", "ok"]),
    ]
    assert rows[1].error is not None
    assert rows[1].error.startswith('this row opens a quote (") that is never closed')
    assert [row.error for row in rows if row.number != 3] == [None, None, None]


#: Line ends of every kind (\r\n, a lone \r, \n), characters str.splitlines also breaks at,
#: NUL bytes, blank lines, quoted cells over several lines and a quote never closed.
AWKWARD_CSV = (
    'A,B\r\n1,"x\r\ny"\r\n\r\n2,z\r3,"p\x0cq\u2028r\x85s"\n4,a\x00b\n\n5,"multi\n\nline",'
    '\n6,"a ""quoted"" word"\n7,"never closed\n8,ok\r\n9,last'
)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 1 << 16])
def test_csv_records_are_the_same_wherever_the_file_is_cut_into_chunks(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # The reference: one line at a time, as the file object splits them.
    expected = list(
        csvfile._parse_lines(csvfile._LineTap(io.StringIO(AWKWARD_CSV, newline="")), ",", "a.csv")
    )
    monkeypatch.setattr(csvfile._ChunkedLines, "CHUNK", chunk)
    stream = io.StringIO(AWKWARD_CSV, newline="")
    assert list(csvfile.csv_records(stream, ",", "a.csv", "utf-8")) == expected
    assert [number for number, _, _ in expected] == list(range(1, 13))
    assert expected[8:] == [
        (9, ["6", 'a "quoted" word'], None),
        (10, ["7", "never closed"], csvfile.UNCLOSED_QUOTE),
        (11, ["8", "ok"], None),
        (12, ["9", "last"], None),
    ]


def test_header_names_are_trimmed_deduplicated_and_blank_ones_named(
    tmp_path: pathlib.Path,
) -> None:
    text = " Email , Name ,,Name,Email,Column 3,,\na,b,c,d,e,f\n"
    table, rows = read_all(write(tmp_path / "h.csv", text))
    assert table.header == ["Email", "Name", "Column 3", "Name (2)", "Email (2)", "Column 3 (2)"]
    assert table.header_notes == [
        "column 3 has no name; it is called 'Column 3'",
        "column 4 repeats the name 'Name'; it is called 'Name (2)'",
        "column 5 repeats the name 'Email'; it is called 'Email (2)'",
        "column 6 repeats the name 'Column 3'; it is called 'Column 3 (2)'",
    ]
    assert rows[0].cells == ["a", "b", "c", "d", "e", "f"]


def _names_as_before(names: list[str]) -> list[str]:
    """The original (quadratic) naming rule, as the reference for the linear one."""
    header: list[str] = []
    for index, name in enumerate(names, start=1):
        unique = name or f"Column {index}"
        copy = 1
        while unique in header:
            copy += 1
            unique = f"{name or f'Column {index}'} ({copy})"
        header.append(unique)
    return header


def test_repeated_header_names_get_the_same_names_as_before(tmp_path: pathlib.Path) -> None:
    names = ["x", "x (2)", "x", "x", "x (3)", "", "Column 6", "x", "", "x (2)", "x (3)", "x"]
    write(tmp_path / "h.csv", ",".join(names) + ",last\n" + ",".join("v" * len(names)) + ",v\n")
    table, _ = read_all(tmp_path / "h.csv")
    assert table.header == _names_as_before([*names, "last"])


def test_twenty_thousand_columns_of_one_name_are_named_in_linear_time(
    tmp_path: pathlib.Path,
) -> None:
    # The old search re-scanned the whole header for every copy number: minutes for this file.
    count = 20_000
    text = ",".join(["x"] * count) + "\n" + ",".join(["1"] * count) + "\n"
    table, rows = read_all(write(tmp_path / "wide.csv", text))
    assert table.header == ["x", *(f"x ({copy})" for copy in range(2, count + 1))]
    assert table.header_notes[-1] == (
        "19,979 more columns are renamed the same way (the results file shows every name)"
    )
    assert len(table.header_notes) == 21
    assert rows[0].cells == ["1"] * count


def test_header_only_file_has_no_rows(tmp_path: pathlib.Path) -> None:
    table, rows = read_all(write(tmp_path / "h.csv", "Email,Name\n"))
    assert table.header == ["Email", "Name"]
    assert rows == []


def test_rows_are_read_lazily(tmp_path: pathlib.Path) -> None:
    body = b"".join(b"user%d@example.com,User %d\n" % (i, i) for i in range(200_000))
    path = write(tmp_path / "big.csv", b"Email,Name\n" + body)
    tracemalloc.start()
    with open_table(path, encoding="utf-8") as table:
        first = next(table.rows)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert first == Row(2, ["user0@example.com", "User 0"])
        assert peak < len(body) // 4  # nowhere near the 5 MB file


def test_bad_byte_deep_in_a_file_is_found_before_any_row_is_used(tmp_path: pathlib.Path) -> None:
    # Found up front: otherwise rows before it would already have been sent to Eloqua.
    body = b"".join(b"user%d@example.com,User %d\n" % (i, i) for i in range(200_000))
    path = write(tmp_path / "big.csv", b"Email,Name\n" + body + b"bad,\xff\n")
    with pytest.raises(InputError, match=r"line 200002 has a byte \(b'\\xff'\)"):
        open_table(path, encoding="utf-8").__enter__()


def test_file_is_closed_when_the_block_exits(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "c.csv", "A\n1\n2\n")
    with open_table(path) as table:
        pass
    with pytest.raises(ValueError, match="closed file"):
        next(table.rows)


# --- file problems ------------------------------------------------------------------------------


def test_empty_file_says_no_header_row_was_found(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "empty.csv", b"")
    with pytest.raises(InputError, match=r"empty\.csv is empty: no header row found at row 1"):
        read_all(path)


def test_header_row_past_the_end_of_the_file_is_an_input_error(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "short.csv", "A,B\n1,2\n")
    with pytest.raises(InputError, match="no header row found at row 5"):
        read_all(path, header_row=5)


def test_blank_header_row_asks_for_the_right_header_row(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "gap.csv", "Title\n,,\nA,B\n")
    with pytest.raises(InputError, match=r"row 2 is blank.*--header-row"):
        read_all(path, header_row=2)


def test_missing_file_and_folder_are_input_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv not found"):
        read_all(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_all(tmp_path)


def test_damaged_xls_workbook_is_reported_as_corrupt(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(InputError) as caught:
        read_all(path)
    assert str(caught.value) == (
        f"{path} is not a valid Excel 97-2003 (.xls) workbook (it may be truncated, corrupt or "
        "password-protected); open it, remove any password, and save it again or re-export it"
    )


def test_ole_file_named_xlsx_is_reported_as_password_protected(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(InputError, match=r"locked\.xlsx looks password-protected.*remove"):
        read_all(path)


def test_html_saved_with_an_excel_name_is_refused(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "report.xls", "<html><table><tr><td>Email</td></tr></table></html>")
    with pytest.raises(InputError, match="web page"):
        read_all(path)


def test_truncated_xlsx_is_reported_as_corrupt(tmp_path: pathlib.Path) -> None:
    whole = make_workbook(tmp_path / "whole.xlsx").read_bytes()
    path = write(tmp_path / "cut.xlsx", whole[: len(whole) // 2])
    with pytest.raises(InputError) as caught:
        read_all(path)
    assert str(caught.value) == (
        f"{path} is not a valid Excel workbook (it may be truncated or corrupt); re-export it"
    )


# --- XLSX ---------------------------------------------------------------------------------------


def test_xlsx_cells_keep_their_types_and_integral_floats_become_ints(
    tmp_path: pathlib.Path,
) -> None:
    path = make_workbook(tmp_path / "expo.xlsx")
    table, rows = read_all(path, sheet="Attendees", header_row=3)
    assert (table.kind, table.sheet, table.encoding, table.delimiter) == (
        "xlsx",
        "Attendees",
        None,
        None,
    )
    assert table.header == ["Email", "Contact ID", "Zip", "Scanned", "Score", "VIP"]
    assert rows == [
        Row(4, ["ana@example.com", 2405, "00123", datetime.datetime(2021, 3, 4, 14, 30), "", ""]),
        Row(6, ["bo@example.com", 17, "02139", datetime.datetime(2021, 3, 5), 1.5, True]),
    ]
    assert type(rows[0].cells[1]) is int
    assert table.blank_rows == 4  # rows 5 and 7, and the empty rows 8-9 at the end


@pytest.mark.parametrize("sheet", [2, "2", "Attendees", "attendees"])
def test_xlsx_sheet_is_chosen_by_name_or_1_based_number(
    tmp_path: pathlib.Path, sheet: str | int
) -> None:
    table, _ = read_all(make_workbook(tmp_path / "expo.xlsx"), sheet=sheet, header_row=3)
    assert table.sheet == "Attendees"


def test_xlsx_default_sheet_is_the_first(tmp_path: pathlib.Path) -> None:
    table, rows = read_all(make_workbook(tmp_path / "expo.xlsx"))
    assert (table.sheet, table.header, rows) == ("Summary", ["Spring Expo 2021 - totals"], [])


@pytest.mark.parametrize("sheet", ["Booth Scans", 3, 0])
def test_missing_sheet_lists_the_sheets_there_are(tmp_path: pathlib.Path, sheet: str | int) -> None:
    with pytest.raises(InputError, match=r"has no sheet .*its sheets are 'Summary', 'Attendees'"):
        read_all(make_workbook(tmp_path / "expo.xlsx"), sheet=sheet)


def test_xlsx_is_recognised_by_content_whatever_its_name(tmp_path: pathlib.Path) -> None:
    path = make_workbook(tmp_path / "expo.xlsx").rename(tmp_path / "expo.csv")
    table, rows = read_all(path, sheet=2, header_row=3)
    assert table.kind == "xlsx"
    assert len(rows) == 2


def test_xlsx_rows_with_data_beyond_the_header_carry_an_error(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Name"])
    sheet.append(["a@x.com", "A", None, "stray"])
    path = tmp_path / "wide.xlsx"
    workbook.save(path)
    _, rows = read_all(path)
    assert rows[0].cells == ["a@x.com", "A"]
    assert rows[0].error is not None
    assert rows[0].error.startswith("row has 4 cells but the header has 2 columns")


def test_empty_sheet_names_the_sheet(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(path)
    with pytest.raises(InputError, match=r"blank\.xlsx \(sheet 'Sheet'\) is empty"):
        read_all(path)


# --- XLSX: formulas, .xlsm, trailing blanks; content over file name ----------------------------


def rewrite_member(path: pathlib.Path, member: str, edit: Callable[[str], str]) -> None:
    """Edit one XML file inside a workbook, as Excel would have written it differently."""
    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    items[member] = edit(items[member].decode("utf-8")).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in items.items():
            target.writestr(name, data)


def formula_workbook(path: pathlib.Path) -> pathlib.Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Contact ID", "Label", "Score"])
    sheet.append(["a@x.com", "=1000+1001", '=""', "=2*2"])
    sheet.append(["b@x.com", 2002, "=A3", None])
    sheet.append(["=A2", "=B2", None, None])  # a template row nobody filled in
    workbook.save(path)
    # Excel saves the calculated values next to the formulas; openpyxl saves none.
    rewrite_member(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(
            '<c r="B2"><f>1000+1001</f><v />', '<c r="B2"><f>1000+1001</f><v>2001</v>'
        ).replace('<c r="C2"><f>""</f><v />', '<c r="C2" t="str"><f>""</f><v></v>'),
    )
    return path


def test_formulas_give_their_saved_values_or_the_uncalculated_marker(
    tmp_path: pathlib.Path,
) -> None:
    table, rows = read_all(formula_workbook(tmp_path / "f.xlsx"))
    assert rows[0].cells == ["a@x.com", 2001, "", UNCALCULATED]
    assert rows[0].cells[2] is not UNCALCULATED  # a formula whose value is "" is just blank
    assert rows[0].cells[3] is UNCALCULATED
    assert rows[1].cells[2] is UNCALCULATED
    assert [row.number for row in rows] == [2, 3]
    assert table.blank_rows == 1  # row 4 holds only formulas never calculated


def test_xlsm_workbook_is_read(tmp_path: pathlib.Path) -> None:
    path = make_workbook(tmp_path / "expo.xlsm")
    macro_type = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
    rewrite_member(
        path,
        "[Content_Types].xml",
        lambda xml: xml.replace(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", macro_type
        ),
    )
    assert macro_type.encode() in zipfile.ZipFile(path).read("[Content_Types].xml")
    table, rows = read_all(path, sheet="Attendees", header_row=3)
    assert (table.kind, [row.number for row in rows]) == ("xlsx", [4, 6])
    assert table.header_notes == []


def test_empty_trailing_rows_and_columns_are_ignored(tmp_path: pathlib.Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Name", None, None])
    sheet.append(["a@x.com", "A", None, None])
    for row in range(3, 40):  # formatted but empty, as after deleting data in Excel
        for column in range(1, 12):
            sheet.cell(row=row, column=column).font = openpyxl.styles.Font(bold=True)
    path = tmp_path / "t.xlsx"
    workbook.save(path)
    table, rows = read_all(path)
    assert table.header == ["Email", "Name"]
    assert rows == [Row(2, ["a@x.com", "A"])]
    assert table.blank_rows == 37


def test_csv_named_xlsx_is_read_as_csv_and_said_so(tmp_path: pathlib.Path) -> None:
    table, rows = read_all(write(tmp_path / "export.xlsx", "Email;Name\na@x.com;A\n"))
    assert (table.kind, table.delimiter, rows) == ("csv", ";", [Row(2, ["a@x.com", "A"])])
    assert table.header_notes == ["the file is named .xlsx but holds CSV text; read as CSV"]


def test_garbage_bytes_are_not_read_as_text(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "x.csv", bytes(range(256)) * 8)
    with pytest.raises(InputError, match=r"x\.csv is not a CSV or Excel file: it holds binary"):
        read_all(path)


def test_ole_file_is_told_apart_by_its_streams_not_its_name(tmp_path: pathlib.Path) -> None:
    locked = shutil.copy(BROKEN / "password_protected.xlsx", tmp_path / "locked.xls")
    with pytest.raises(InputError, match=r"locked\.xls looks password-protected"):
        read_all(pathlib.Path(locked))
    old = shutil.copy(FIXTURES / "expo.xls", tmp_path / "old.xlsx")
    table, _ = read_all(pathlib.Path(old))
    assert table.kind == "xls"


def test_sheet_named_with_digits_is_found_by_name_before_position(
    tmp_path: pathlib.Path,
) -> None:
    workbook = openpyxl.Workbook()
    workbook.active.title = "Summary"
    workbook.active.append(["Totals"])
    data = workbook.create_sheet("2024")
    data.append(["Email"])
    data.append(["a@example.com"])
    path = tmp_path / "years.xlsx"
    workbook.save(path)
    for sheet in ("2024", 2024, 2, "2"):
        with open_table(path, sheet=sheet) as table:
            assert table.sheet == "2024", sheet
            assert [row.cells for row in table.rows] == [["a@example.com"]]


# --- row estimate for progress bars -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b\n1,2\n3,4\n", 2),
        ("a,b\r\n1,2\r\n3,4", 2),  # no line break after the last row
        ("a,b\n", 0),
    ],
)
def test_csv_row_estimate_counts_line_breaks(tmp_path: pathlib.Path, text, expected) -> None:
    path = write(tmp_path / "rows.csv", text)
    with open_table(path) as table:
        assert table.estimated_rows == expected


def test_row_estimate_skips_the_rows_above_the_header(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path / "report.csv", "Report\n\nEmail,Score\na@x.com,1\nb@x.com,2\n")
    with open_table(path, header_row=3) as table:
        assert table.estimated_rows == 2
        assert len(list(table.rows)) == 2


def test_row_estimate_reads_utf16_line_breaks(tmp_path: pathlib.Path) -> None:
    text = "Email\tScore\r\n" + "".join(f"n{n}@x.com\t{n}\r\n" for n in range(300))
    path = write(tmp_path / "unicode.txt", text.encode("utf-16"))
    with open_table(path) as table:
        assert table.estimated_rows == 300


def test_xlsx_row_estimate_uses_the_sheets_dimension(tmp_path: pathlib.Path) -> None:
    path = make_workbook(tmp_path / "book.xlsx")
    with open_table(path, sheet="Attendees", header_row=3) as table:
        # Rows 4-9 as Excel declares them, trailing formatting-only rows included.
        assert table.estimated_rows is not None and 2 <= table.estimated_rows <= 6
