"""XLS (Excel 97-2003) and ODS (OpenDocument) reading through python-calamine.

calamine reads a whole sheet into memory, so a workbook is refused above
``MAX_WHOLE_SHEET_BYTES`` (a few hundred MB of memory at most) before it is read. Cells come
out with the same types as from an .xlsx (see ``table.Cell``), and formulas never calculated
are marked ``UNCALCULATED`` as the XLSX reader does.
"""

from __future__ import annotations

import datetime
import pathlib
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import ParseError, iterparse

import python_calamine

from importer.errors import InputError
from importer.filetype import WHOLE_SHEET_SUFFIXES, password_protected
from importer.table import (
    MAX_CELL_CHARS,
    UNCALCULATED,
    Cell,
    Record,
    Table,
    data_rows,
    name_columns,
    read_header,
    sheet_index,
    workbook_cell,
)

# calamine holds a whole .xls/.ods workbook in memory: bound the data it reads (the .xls file;
# the unpacked XML of an .ods). Measured peak memory: about 10x an .xls, 2.5x the .ods XML.
MAX_WHOLE_SHEET_BYTES = {"xls": 40 * 1024 * 1024, "ods": 100 * 1024 * 1024}
_FORMAT_NAMES = {"xls": "Excel 97-2003 (.xls)", "ods": "OpenDocument (.ods)"}


def whole_sheet_table(
    file: pathlib.Path, shown: str, kind: str, sheet: str | int | None, header_row: int
) -> Table:
    """An .xls or .ods sheet, read whole by calamine: rows are then served from memory.

    Cells come out as the XLSX reader gives them. An .ods formula saved without its value
    (written by a script, never calculated) is UNCALCULATED, as in XLSX; .xls always stores
    a formula's value.
    """
    title, _, grid = read_sheet(file, shown, kind, sheet)
    where = f"{shown} (sheet {title!r})"
    if kind == "ods":
        _mark_uncalculated(grid, file, title, shown)
    _check_cell_sizes(grid, where)
    records = grid_records(grid)
    header, notes = name_columns(read_header(records, header_row, where), header_row, where)
    if file.suffix.lower() not in WHOLE_SHEET_SUFFIXES[kind]:
        named = file.suffix or "without an extension"
        what = _FORMAT_NAMES[kind]
        notes.insert(0, f"the file is named {named} but is an {what} workbook; read as .{kind}")
    table = Table(
        file,
        kind,
        header,
        title,
        None,
        None,
        iter(()),
        header_notes=notes,
        header_row=header_row,
        last_row_hint=len(grid),
    )
    table.rows = data_rows(table, records)
    return table


def read_sheet(
    file: pathlib.Path, shown: str, kind: str, sheet: str | int | None
) -> tuple[str, list[str], list[list[Any]]]:
    """The chosen sheet's title, every worksheet's title, and the sheet's cells, read whole."""
    check_whole_sheet_size(file, shown, kind)
    workbook = open_calamine(file, shown, kind)
    try:
        titles = [
            meta.name
            for meta in workbook.sheets_metadata
            if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
        ]
        title = titles[sheet_index(titles, sheet, shown)]
        # skip_empty_area=False keeps leading empty rows and columns, so positions match Excel.
        grid = workbook.get_sheet_by_name(title).to_python(skip_empty_area=False)
    except python_calamine.CalamineError:
        raise unreadable(shown, kind) from None
    finally:
        workbook.close()
    return title, titles, grid


def check_whole_sheet_size(file: pathlib.Path, shown: str, kind: str) -> None:
    """Refuse a workbook too big to hold in memory, before calamine reads any of it."""
    try:
        size = file.stat().st_size
        if kind == "ods":
            # Compressed XML: the expanded sheet data is what memory must hold.
            with zipfile.ZipFile(file) as archive:
                size = archive.getinfo("content.xml").file_size
    except (OSError, KeyError, zipfile.BadZipFile):
        raise unreadable(shown, kind) from None
    if size > MAX_WHOLE_SHEET_BYTES[kind]:
        limit = MAX_WHOLE_SHEET_BYTES[kind] // (1024 * 1024)
        raise InputError(
            f"{shown} holds {size / (1024 * 1024):,.0f} MB of {_FORMAT_NAMES[kind]} sheet data; "
            f"these workbooks are read whole into memory, so the importer takes them up to "
            f"{limit} MB: open it and Save As .xlsx or CSV (read as a stream, any size)"
        )


def open_calamine(file: pathlib.Path, shown: str, kind: str) -> python_calamine.CalamineWorkbook:
    try:
        # By content (a file object), not by name: the file may be misnamed.
        with file.open("rb") as stream:
            return python_calamine.CalamineWorkbook.from_filelike(stream)
    except python_calamine.PasswordError:
        raise password_protected(shown) from None
    except (python_calamine.CalamineError, OSError, ValueError):
        raise unreadable(shown, kind) from None


def unreadable(shown: str, kind: str) -> InputError:
    return InputError(
        f"{shown} is not a valid {_FORMAT_NAMES[kind]} workbook (it may be truncated, corrupt "
        "or password-protected); open it, remove any password, and save it again or re-export it"
    )


_ODS_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_ODS_VALUE_TYPE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}value-type"
_ODS_CELLS = (f"{_ODS_TABLE}table-cell", f"{_ODS_TABLE}covered-table-cell")


def _mark_uncalculated(grid: list[list[Any]], file: pathlib.Path, title: str, shown: str) -> None:
    """Put UNCALCULATED where the sheet has a formula saved without a value (calamine: "")."""
    try:
        with zipfile.ZipFile(file) as archive:
            if not _mentions_formulas(archive):
                return
            with archive.open("content.xml") as content:
                blocks = _ods_uncalculated_blocks(content, title)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error, ParseError):
        raise unreadable(shown, "ods") from None
    for first_row, last_row, first_column, last_column in blocks:
        for values in grid[first_row:last_row]:
            for column in range(first_column, min(last_column, len(values))):
                if values[column] == "":
                    values[column] = UNCALCULATED


def _mentions_formulas(archive: zipfile.ZipFile) -> bool:
    """A quick scan of the raw XML, so sheets without formulas are not parsed a second time."""
    with archive.open("content.xml") as content:
        tail = b""
        while chunk := content.read(1 << 20):
            if b'formula="' in tail + chunk:
                return True
            tail = chunk[-16:]
    return False


def _ods_uncalculated_blocks(content: Any, title: str) -> list[tuple[int, int, int, int]]:
    """(first row, end row, first column, end column), 0-based, of formula cells in sheet
    ``title`` that carry no value type: never calculated. Repeats are kept as blocks, so a
    repeated cell costs one entry however many cells it stands for."""
    blocks: list[tuple[int, int, int, int]] = []
    inside, row, rows, column = False, 0, 1, 0
    for event, element in iterparse(content, events=("start", "end")):
        tag = element.tag
        if tag == f"{_ODS_TABLE}table":
            if event == "start":
                inside = element.get(f"{_ODS_TABLE}name") == title
            elif inside:
                break
        elif not inside:
            if event == "end":
                element.clear()
        elif tag == f"{_ODS_TABLE}table-row":
            if event == "start":
                rows = int(element.get(f"{_ODS_TABLE}number-rows-repeated") or 1)
                column = 0
            else:
                row += rows
                element.clear()
        elif tag in _ODS_CELLS and event == "end":
            columns = int(element.get(f"{_ODS_TABLE}number-columns-repeated") or 1)
            if element.get(f"{_ODS_TABLE}formula") and element.get(_ODS_VALUE_TYPE) is None:
                blocks.append((row, row + rows, column, column + columns))
            column += columns
    return blocks


def _check_cell_sizes(grid: list[list[Any]], where: str) -> None:
    """The CSV reader's cell cap, checked before any row is used: the sheet is in memory."""
    for number, values in enumerate(grid, start=1):
        for column, value in enumerate(values, start=1):
            if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
                raise InputError(
                    f"{where}: row {number}, column {column} holds {len(value):,} characters, "
                    f"more than the {MAX_CELL_CHARS:,} a cell may have; shorten that cell and "
                    "save the file again"
                )


def grid_records(grid: list[list[Any]]) -> Iterator[Record]:
    for number, values in enumerate(grid, start=1):
        yield number, [_whole_sheet_cell(value) for value in values], None


def _whole_sheet_cell(value: object) -> Cell:
    # openpyxl reads a date-formatted cell as a datetime even at midnight: so must these.
    if type(value) is datetime.date:
        return datetime.datetime.combine(value, datetime.time())
    return workbook_cell(value)
