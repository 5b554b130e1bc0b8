"""Loader stage: a CSV or XLSX file -> a header and a lazy stream of numbered rows.

``open_table`` reads only the header when it opens the file; rows are read as ``Table.rows`` is
consumed, so a file of any size streams in constant memory. Row numbers are the ones Excel shows,
so a user can find every reported row in the original file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import math
import os
import pathlib
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO
from xml.etree.ElementTree import ParseError

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from importer.errors import InputError

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

Cell = str | int | float | bool | datetime.datetime | datetime.date | datetime.time
"""One cell value. ``""`` means blank; never ``None``, never NaN."""

Record = tuple[int, Sequence[Cell]]  # (row number as Excel shows it, raw cells)

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003, and encrypted .xlsx
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm"}
DELIMITERS = (",", ";", "\t", "|")  # in order of preference when counts tie
SNIFF_BYTES = 64 * 1024

# openpyxl reports a damaged workbook through whatever its zip/XML layers raise.
_CORRUPT_WORKBOOK = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    ValueError,
    ParseError,
    InvalidFileException,
)


@dataclass
class Row:
    number: int  # the row number Excel shows (header on row 1 -> first data row is 2)
    cells: list[Cell]  # exactly len(table.header) cells
    error: str | None = None  # the row is structurally broken; mapping makes it invalid


@dataclass
class Table:
    path: pathlib.Path
    kind: str  # "csv" or "xlsx"
    header: list[str]
    sheet: str | None  # sheet title for xlsx
    encoding: str | None  # for csv
    delimiter: str | None  # for csv
    rows: Iterator[Row]  # lazy; blank rows are skipped and counted in blank_rows
    blank_rows: int = 0  # final once rows is exhausted
    header_notes: list[str] = field(default_factory=list)  # columns renamed, for the user


@contextlib.contextmanager
def open_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    header_row: int = 1,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Iterator[Table]:
    """Open a CSV or XLSX file as a Table; the file is closed when the block exits.

    Raises InputError, naming the file and the fix, when the file cannot be read as a table.
    """
    shown = os.fspath(path)
    if header_row < 1:
        raise InputError(f"{shown}: header_row must be 1 or more (got {header_row})")
    file = pathlib.Path(path)
    if _detect_kind(file, shown) == "xlsx":
        with _open_xlsx(file, shown, sheet, header_row) as table:
            yield table
    else:
        with _open_csv(file, shown, header_row, encoding, delimiter) as table:
            yield table


# --- file type ---------------------------------------------------------------------------------


def _detect_kind(file: pathlib.Path, shown: str) -> str:
    """Decide by content first, because exports are often misnamed."""
    head = _read_head(file, shown, 512)
    suffix = file.suffix.lower()
    if not head:
        raise InputError(f"{shown} is empty: no header row found at row 1; export the data again")
    if head.startswith(ZIP_SIGNATURE):
        return "xlsx"
    if head.startswith(OLE_SIGNATURE):
        if suffix in EXCEL_SUFFIXES:
            # A real .xlsx is a zip; an OLE container with that name is an encrypted workbook.
            raise InputError(
                f"{shown} looks password-protected; open it in Excel, remove the password "
                "(File > Info > Protect Workbook > Encrypt with Password) and save it again"
            )
        raise InputError(
            f"{shown} is an old Excel 97-2003 .xls workbook; open it in Excel and Save As "
            ".xlsx or CSV"
        )
    if suffix in EXCEL_SUFFIXES:
        return "xlsx"
    if _looks_like_markup(head):
        raise InputError(
            f"{shown} is a web page or XML file, not a spreadsheet (some tools export HTML "
            "with an Excel name); open it in Excel and Save As .xlsx or CSV"
        )
    return "csv"


def _looks_like_markup(head: bytes) -> bool:
    start = head.lstrip(codecs.BOM_UTF8).lstrip().lower()
    return start.startswith((b"<html", b"<!doctype", b"<?xml", b"<table"))


def _read_head(file: pathlib.Path, shown: str, size: int) -> bytes:
    try:
        with file.open("rb") as f:
            return f.read(size)
    except FileNotFoundError:
        raise InputError(f"{shown} not found; check the file name and folder") from None
    except IsADirectoryError:
        raise InputError(f"{shown} is a folder; give the path of a .csv or .xlsx file") from None
    except PermissionError:
        raise InputError(
            f"cannot open {shown}: permission denied; close it in Excel or check its permissions"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {shown}: {exc.strerror or exc}") from None


# --- shared header and row handling ---------------------------------------------------------


def _is_blank(cell: Cell) -> bool:
    return isinstance(cell, str) and not cell.strip()


def _read_header(records: Iterator[Record], header_row: int, where: str) -> list[Cell]:
    """Consume records up to and including the header row; rows above it are ignored."""
    for number, cells in records:
        if number == header_row:
            return list(cells)
    raise InputError(
        f"{where} is empty: no header row found at row {header_row}; check the file, "
        "or set header_row (--header-row) to the row that holds the column names"
    )


def _name_columns(raw: Sequence[Cell], header_row: int, where: str) -> tuple[list[str], list[str]]:
    """Header cells -> unique, trimmed column names, plus notes on every rename made."""
    names = ["" if _is_blank(cell) else str(cell).strip() for cell in raw]
    if names:
        names[0] = names[0].lstrip("\ufeff")  # a BOM left by an explicit --encoding utf-8
    while names and not names[-1]:
        names.pop()  # spreadsheets often carry empty trailing columns
    if not names:
        raise InputError(
            f"{where}: row {header_row} is blank, so it holds no column names; set header_row "
            "(--header-row) to the row that holds them"
        )
    header: list[str] = []
    notes: list[str] = []
    for index, name in enumerate(names, start=1):
        unique = name or f"Column {index}"
        copy = 1
        while unique in header:
            copy += 1
            unique = f"{name or f'Column {index}'} ({copy})"
        if not name:
            notes.append(f"column {index} has no name; it is called {unique!r}")
        elif unique != name:
            notes.append(f"column {index} repeats the name {name!r}; it is called {unique!r}")
        header.append(unique)
    return header, notes


def _fit_row(number: int, cells: Sequence[Cell], width: int) -> Row:
    """Pad short rows; refuse (via Row.error) rows whose extra cells hold data."""
    if len(cells) <= width:
        return Row(number, [*cells, *[""] * (width - len(cells))])
    error = None
    if not all(_is_blank(cell) for cell in cells[width:]):
        used = max(i for i, cell in enumerate(cells) if not _is_blank(cell)) + 1
        error = (
            f"row has {used} cells but the header has {width} columns; quote values that "
            "contain the delimiter, or give the extra column a name in the header row"
        )
    return Row(number, list(cells[:width]), error)


def _data_rows(table: Table, records: Iterator[Record]) -> Iterator[Row]:
    width = len(table.header)
    for number, cells in records:
        if all(_is_blank(cell) for cell in cells):
            table.blank_rows += 1
            continue
        yield _fit_row(number, cells, width)


# --- CSV ---------------------------------------------------------------------------------------

_FALLBACK_ERRORS = "eloqua-import-cp1252-fallback"


def _decode_as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    """Decode bytes that are not valid UTF-8 as Windows-1252 instead of failing mid-file.

    Files are often UTF-8 (or plain ASCII) for thousands of rows before a single accented name
    saved by Excel in cp1252; those bytes almost never form valid UTF-8 by accident.
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_cp1252_char(byte) for byte in bad), exc.end


def _cp1252_char(byte: int) -> str:
    try:
        return bytes([byte]).decode("cp1252")
    except UnicodeDecodeError:
        return chr(byte)  # the five bytes cp1252 leaves undefined: keep them as Latin-1


codecs.register_error(_FALLBACK_ERRORS, _decode_as_cp1252)


def _detect_encoding(head: bytes, complete: bool) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # Incremental, so a character cut in two by the prefix boundary is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _header_line(text: str, header_row: int) -> str:
    lines = text.splitlines()
    if len(lines) >= header_row and lines[header_row - 1].strip():
        return lines[header_row - 1]
    return next((line for line in lines if line.strip()), "")


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def _sniff_delimiter(line: str) -> str:
    counts = {d: _count_outside_quotes(line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equal counts
    return best if counts[best] else ","


def _check_delimiter(delimiter: str, shown: str) -> str:
    delimiter = {"\\t": "\t", "tab": "\t"}.get(delimiter.lower(), delimiter)
    if len(delimiter) != 1:
        raise InputError(
            f"cannot read {shown} with delimiter {delimiter!r}: give one character, "
            "e.g. ';' or '\\t' (tab)"
        )
    return delimiter


def _decode_error(shown: str, encoding: str) -> InputError:
    return InputError(
        f"cannot read {shown} as {encoding}: try --encoding cp1252 (Windows) or utf-16"
    )


@contextlib.contextmanager
def _open_csv(
    file: pathlib.Path, shown: str, header_row: int, encoding: str | None, delimiter: str | None
) -> Iterator[Table]:
    head = _read_head(file, shown, SNIFF_BYTES)
    chosen = encoding or _detect_encoding(head, complete=len(head) < SNIFF_BYTES)
    # A guessed UTF-8 degrades gracefully; an explicit or BOM-declared encoding must hold.
    errors = _FALLBACK_ERRORS if encoding is None and chosen != "utf-16" else "strict"
    try:
        sample = codecs.getincrementaldecoder(chosen)(errors="replace").decode(head)
    except LookupError:
        raise InputError(
            f"cannot read {shown}: unknown encoding {chosen!r}; use e.g. utf-8, cp1252 or utf-16"
        ) from None
    sep = (
        _check_delimiter(delimiter, shown)
        if delimiter
        else _sniff_delimiter(_header_line(sample.lstrip("\ufeff"), header_row))
    )
    with file.open("r", encoding=chosen, errors=errors, newline="") as stream:
        records = _csv_records(stream, sep, shown, chosen)
        raw = _read_header(records, header_row, shown)
        header, notes = _name_columns(raw, header_row, shown)
        table = Table(file, "csv", header, None, chosen, sep, iter(()), header_notes=notes)
        table.rows = _data_rows(table, records)
        yield table


def _csv_records(stream: TextIO, delimiter: str, shown: str, encoding: str) -> Iterator[Record]:
    # NUL bytes come from broken exports; dropping them beats refusing the whole file.
    lines = (line.replace("\0", "") for line in stream)
    number = 0
    try:
        # Each record counts as one row, as in Excel, even if a quoted cell spans lines;
        # a blank line is a record of its own, so row numbers still match Excel.
        for number, record in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
            yield number, record
    except UnicodeDecodeError:
        raise _decode_error(shown, encoding) from None
    except csv.Error as exc:
        raise InputError(
            f"{shown}: row {number + 1} is not valid CSV ({exc}); check its quotes, "
            "or re-export the file"
        ) from None


# --- XLSX --------------------------------------------------------------------------------------


def _corrupt(shown: str) -> InputError:
    return InputError(
        f"{shown} is not a valid Excel workbook (it may be truncated or corrupt); re-export it"
    )


@contextlib.contextmanager
def _open_xlsx(
    file: pathlib.Path, shown: str, sheet: str | int | None, header_row: int
) -> Iterator[Table]:
    # A file object, not the path: openpyxl would refuse a workbook misnamed .csv or .xls.
    with file.open("rb") as stream:
        try:
            workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except _CORRUPT_WORKBOOK:
            raise _corrupt(shown) from None
        with contextlib.closing(workbook):
            yield _xlsx_table(workbook, file, shown, sheet, header_row)


def _xlsx_table(
    workbook: Workbook, file: pathlib.Path, shown: str, sheet: str | int | None, header_row: int
) -> Table:
    worksheet = _pick_sheet(workbook, sheet, shown)
    # Some exporters write a wrong size into the sheet; trusting it would drop rows.
    worksheet.reset_dimensions()
    where = f"{shown} (sheet {worksheet.title!r})"
    records = _xlsx_records(worksheet, shown)
    raw = _read_header(records, header_row, where)
    header, notes = _name_columns(raw, header_row, where)
    table = Table(file, "xlsx", header, worksheet.title, None, None, iter(()), header_notes=notes)
    table.rows = _data_rows(table, records)
    return table


def _pick_sheet(workbook: Workbook, sheet: str | int | None, shown: str) -> ReadOnlyWorksheet:
    sheets = workbook.worksheets
    if not sheets:
        raise InputError(f"{shown} has no worksheets; re-export it with the data on a sheet")
    if sheet is None:
        return sheets[0]
    by_name = {ws.title: ws for ws in sheets}
    if isinstance(sheet, str):
        if sheet in by_name:
            return by_name[sheet]
        folded = [ws for ws in sheets if ws.title.strip().casefold() == sheet.strip().casefold()]
        if len(folded) == 1:
            return folded[0]
    index = int(sheet) if isinstance(sheet, int) or sheet.strip().isdecimal() else None
    if index is not None and 1 <= index <= len(sheets):
        return sheets[index - 1]
    names = ", ".join(repr(ws.title) for ws in sheets)
    raise InputError(
        f"{shown} has no sheet {sheet!r}; its sheets are {names} "
        f"(give a name, or a number from 1 to {len(sheets)})"
    )


def _xlsx_records(worksheet: ReadOnlyWorksheet, shown: str) -> Iterator[Record]:
    try:
        # openpyxl fills gaps between stored rows, so counting from 1 gives Excel's numbers.
        rows = worksheet.iter_rows(min_row=1, values_only=True)
        for number, values in enumerate(rows, start=1):
            yield number, [_xlsx_cell(value) for value in values]
    except _CORRUPT_WORKBOOK:
        raise _corrupt(shown) from None


def _xlsx_cell(value: object) -> Cell:
    if value is None:
        return ""
    if isinstance(value, float):
        # Excel stores every number as a float; 2405.0 is the ID 2405.
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, str | int | datetime.date | datetime.time):  # bool is an int
        return value
    return str(value)  # e.g. timedelta for duration formats: keep what the user sees
