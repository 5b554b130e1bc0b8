"""XLSX/XLSM reading through openpyxl's streaming (read-only) reader, in constant memory.

This is the one module that touches openpyxl's private internals: ``WorkSheetParser`` from
``openpyxl.worksheet._reader`` (to tell a formula never calculated from a blank cell);
``ReadOnlyWorksheet`` from ``openpyxl.worksheet._read_only`` with its ``_get_source``,
``_shared_strings`` and ``_worksheet_path``; the workbook's ``_archive``, ``_date_formats`` and
``_timedelta_formats``; and ``ExcelReader.read_strings`` (to refuse cells over
``MAX_CELL_CHARS`` before openpyxl builds them). ``pyproject.toml`` bounds openpyxl to the
minor version these were checked against, and ``tests/test_openpyxl_internals.py`` fails
loudly if any of them changes.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils.cell import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser
from openpyxl.xml.constants import SHARED_STRINGS

from importer.errors import InputError
from importer.filetype import EXCEL_SUFFIXES, corrupt
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

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

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


@contextlib.contextmanager
def open_xlsx(
    file: pathlib.Path, shown: str, sheet: str | int | None, header_row: int
) -> Iterator[Table]:
    # A file object, not the path: openpyxl would refuse a workbook misnamed .csv or .xls.
    with file.open("rb") as stream:
        reader = read_xlsx(stream, shown)
        with contextlib.closing(reader.wb):
            yield _xlsx_table(reader.wb, file, shown, sheet, header_row, reader.oversized)


def read_xlsx(stream: IO[bytes], shown: str) -> _CappedExcelReader:
    """openpyxl's load_workbook, with the shared strings read under the cell cap."""
    try:
        reader = _CappedExcelReader(stream, read_only=True, data_only=True)
        reader.read()
    except _CORRUPT_WORKBOOK:
        raise corrupt(shown) from None
    return reader


def _xlsx_table(
    workbook: Workbook,
    file: pathlib.Path,
    shown: str,
    sheet: str | int | None,
    header_row: int,
    oversized: frozenset[int] = frozenset(),
) -> Table:
    worksheet = pick_sheet(workbook, sheet, shown)
    where = f"{shown} (sheet {worksheet.title!r})"
    refuse_oversized_cells(worksheet, oversized, where)
    records = xlsx_records(worksheet, shown)
    raw = read_header(records, header_row, where)
    header, notes = name_columns(raw, header_row, where)
    if file.suffix.lower() not in EXCEL_SUFFIXES:
        named = file.suffix or "without an extension"
        notes.insert(0, f"the file is named {named} but is an Excel workbook; read as Excel")
    table = Table(
        file,
        "xlsx",
        header,
        worksheet.title,
        None,
        None,
        iter(()),
        header_notes=notes,
        header_row=header_row,
        last_row_hint=worksheet.max_row,
    )
    table.rows = data_rows(table, records)
    return table


SCAN_CHUNK = 1 << 18
_ROOT_PREFIX = re.compile(rb"<(\w+:)?(?:worksheet|sst)\b")


class _OversizedText(str):
    """Stands in the shared strings table for a text over the cap (never read whole)."""


def _has_long_text(stream: IO[bytes], cap: int, tag: bytes) -> bool:
    """Could an XML part hold a cell (``tag`` b"c") or shared string (b"si") over ``cap``?

    Measures, in bytes and at C speed, the stretches between one such element's start and the
    next: every text longer than the cap lies in one. Text cannot contain "<", so no text can
    fake a start; a start the scan misses only makes a stretch longer (then expat decides).
    """
    first = stream.read(SCAN_CHUNK)
    prefix = (match.group(1) or b"") if (match := _ROOT_PREFIX.search(first)) else b""
    start = b"<" + prefix + tag + b" " if tag == b"c" else b"<" + prefix + tag
    run = 0
    chunk = first
    while chunk:
        pieces = chunk.split(start)
        run += len(pieces[0])
        if len(pieces) > 1:
            if max([run, *map(len, pieces[1:-1])]) > cap:
                return True
            run = len(pieces[-1])
        if run > cap:
            return True
        chunk = stream.read(SCAN_CHUNK)
    return False


def _part_may_hold_long_text(archive: zipfile.ZipFile, name: str, tag: bytes) -> bool:
    # The declared size bounds what can be read: zipfile stops there (a lie reads as corrupt).
    if archive.getinfo(name).file_size <= MAX_CELL_CHARS:
        return False
    with archive.open(name) as part:
        return _has_long_text(part, MAX_CELL_CHARS, tag)


class _CappedExcelReader(ExcelReader):
    """openpyxl's workbook reader; a shared string over the cap is kept as a marker only."""

    oversized: frozenset[int] = frozenset()

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is None or not _part_may_hold_long_text(self.archive, part.PartName[1:], b"si"):
            super().read_strings()
            return
        with self.archive.open(part.PartName[1:]) as source:
            table = _CappedStrings(MAX_CELL_CHARS)
            table.parse(source)
        self.shared_strings = table.strings
        self.oversized = frozenset(table.oversized)


def _local(name: str) -> str:
    return name.rpartition("}")[2]


class _CappedStrings:
    """The shared strings table read with expat, texts over the cap replaced by a marker.

    Mirrors openpyxl's reading: a string is its <t> texts (plain or rich-text runs), phonetic
    guides (<rPh>) left out, and Excel's "x005F_" escape removed.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.strings: list[str] = []
        self.oversized: list[int] = []
        self._parts: list[str] = []
        self._size = 0
        self._in_text = False
        self._phonetic = 0

    def parse(self, source: IO[bytes]) -> None:
        parser = expat.ParserCreate(namespace_separator="}")
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        try:
            parser.ParseFile(source)
        except expat.ExpatError as exc:
            raise ValueError(str(exc)) from None  # read as a corrupt workbook

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = _local(name)
        if local == "si":
            self._parts, self._size = [], 0
        elif local == "rPh":
            self._phonetic += 1
        elif local == "t" and not self._phonetic:
            self._in_text = True

    def _end(self, name: str) -> None:
        local = _local(name)
        if local == "t":
            self._in_text = False
        elif local == "rPh":
            self._phonetic -= 1
        elif local == "si":
            if self._size > self.cap:
                self.oversized.append(len(self.strings))
                self.strings.append(_OversizedText())
            else:
                self.strings.append("".join(self._parts).replace("x005F_", ""))
            self._parts = []

    def _data(self, text: str) -> None:
        if self._in_text:
            self._size += len(text)
            if self._size <= self.cap:
                self._parts.append(text)
            else:
                self._parts = []  # over the cap: count on, keep nothing


class _CellSizes:
    """Finds the first cell of a sheet whose text is over the cap, or that uses an oversized
    shared string, reading the sheet with expat (texts counted, not kept)."""

    def __init__(self, cap: int, oversized: frozenset[int]) -> None:
        self.cap = cap
        self.oversized = oversized
        self.found: tuple[int, int] | None = None  # (row, column)
        self._row = 0
        self._column = 0
        self._type = ""
        self._size = 0
        self._value: list[str] = []
        self._in_cell = False

    def scan(self, source: IO[bytes]) -> tuple[int, int] | None:
        parser = expat.ParserCreate(namespace_separator="}")
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        with contextlib.suppress(_Found):
            try:
                parser.ParseFile(source)
            except expat.ExpatError:
                return None  # a broken sheet: the normal reading reports it as corrupt
        return self.found

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = _local(name)
        if local == "row":
            self._row = int(attrs.get("r") or self._row + 1)
            self._column = 0
        elif local == "c":
            self._in_cell = True
            self._column += 1
            reference = attrs.get("r")
            if reference:
                self._column = _column_number(reference) or self._column
            self._type = attrs.get("t", "n")
            self._size, self._value = 0, []  # a cell's texts count together (rich text runs)

    def _end(self, name: str) -> None:
        local = _local(name)
        if local == "c":
            self._in_cell = False
        elif local == "v" and self._type == "s" and self.oversized:
            index = "".join(self._value).strip()
            if index.isdigit() and int(index) in self.oversized:
                self._found()

    def _data(self, text: str) -> None:
        if not self._in_cell:
            return
        self._size += len(text)
        if self._size > self.cap:
            self._found()
        if self._type == "s" and len(self._value) < 4:
            self._value.append(text)

    def _found(self) -> None:
        self.found = (self._row, self._column)
        raise _Found


class _Found(Exception):
    """Ends the expat scan at the first oversized cell."""


def _column_number(reference: str) -> int:
    number = 0
    for char in reference:
        if not char.isalpha():
            break
        number = number * 26 + ord(char.upper()) - ord("A") + 1
    return number


def refuse_oversized_cells(
    worksheet: ReadOnlyWorksheet, oversized: frozenset[int], where: str
) -> None:
    """Refuse, before any row is read, a sheet with a cell over the cap (as the CSV reader)."""
    archive = _internals(worksheet.parent)._archive
    path = _internals(worksheet)._worksheet_path
    if not oversized and not _part_may_hold_long_text(archive, path, b"c"):
        return
    with archive.open(path) as source:
        found = _CellSizes(MAX_CELL_CHARS, oversized).scan(source)
    if found is None:
        return
    row, column = found
    raise InputError(
        f"{where}: the cell at row {row}, column {get_column_letter(column)} holds more than"
        f" {MAX_CELL_CHARS:,} characters, the most a cell may hold; such a cell is almost"
        " always a broken export: shorten or remove it, or export the sheet again"
    )


def pick_sheet(workbook: Workbook, sheet: str | int | None, shown: str) -> ReadOnlyWorksheet:
    sheets = workbook.worksheets
    return sheets[sheet_index([ws.title for ws in sheets], sheet, shown)]


class _FormulaAwareParser(WorkSheetParser):
    """openpyxl's sheet parser, telling a formula without a saved value apart from a blank.

    With data_only both read as None. Excel saves a formula whose result is "" as t="str" with
    an empty <v>; a formula never calculated has no <v>, or an empty one of another type.
    """

    def parse_cell(self, element: Any) -> dict[str, Any]:
        cell = super().parse_cell(element)
        if cell["value"] is None and element.find(FORMULA_TAG) is not None:
            saved = element.find(VALUE_TAG)
            if saved is None or (not saved.text and element.get("t") != "str"):
                cell["value"] = UNCALCULATED
        return cell


def xlsx_records(worksheet: ReadOnlyWorksheet, shown: str) -> Iterator[Record]:
    workbook = _internals(worksheet.parent)
    try:
        # What ReadOnlyWorksheet.iter_rows does, with the parser above: still one row at a time.
        with _internals(worksheet)._get_source() as source:
            parser = _FormulaAwareParser(
                source,
                _internals(worksheet)._shared_strings,
                data_only=True,
                epoch=workbook.epoch,
                date_formats=workbook._date_formats,
                timedelta_formats=workbook._timedelta_formats,
            )
            expected = 1
            for number, cells in parser.parse():
                # Rows Excel did not store are empty rows: count them so numbers match Excel.
                for missing in range(expected, number):
                    yield missing, [], None
                expected = number + 1
                yield number, _xlsx_values(cells), None
    except _CORRUPT_WORKBOOK:
        raise corrupt(shown) from None


def _xlsx_values(cells: list[dict[str, Any]]) -> list[Cell]:
    """Parsed cells -> values by column; columns Excel did not store are blank."""
    values: list[Cell] = []
    for cell in cells:
        column = cell["column"]
        if column > len(values):
            values.extend([""] * (column - len(values)))
        values[column - 1] = workbook_cell(cell["value"])
    return values


def _internals(thing: object) -> Any:
    """``thing``, for reading openpyxl's private attributes (untyped: see the module docstring)."""
    return thing
