"""What the loader yields, whatever the format: cells, rows, tables, and the header and row
handling every reader shares.

A ``Cell`` is text, a number, a boolean or a date/time; ``""`` means blank (never ``None`` or
NaN). A ``Row`` carries the row number Excel shows and exactly one cell per header column. A
``Table`` is a header plus a lazy iterator of rows. Header names are made unique and non-blank
here, blank rows are counted and skipped here, and a results or errors file this tool wrote is
known by its header and its formula guard undone here (``unprotect_formula``), so every format
behaves alike. An errors file's own ``error`` column is named ``PREVIOUS_ERROR`` when it is read
again, so its results have one ``error`` column. No cell is longer than ``MAX_CELL_CHARS``.
"""

from __future__ import annotations

import datetime
import functools
import math
import pathlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from importer.errors import InputError

Cell = str | int | float | bool | datetime.datetime | datetime.date | datetime.time


"""One cell value. ``""`` means blank; never ``None``, never NaN."""


def cell_text(value: Any) -> str:
    """How a cell reads as text: integral numbers without '.0', datetimes in ISO form."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


class UncalculatedFormula(str):
    """An XLSX cell holding a formula that was never calculated, so it has no value to read.

    Files written by scripts (and some exporters) store formulas without the value Excel would
    show. The loader cannot calculate them; it gives this blank-looking cell so that other
    columns pass through as blank, while mapping.py refuses it in a column the mapping uses.
    """

    def __new__(cls) -> UncalculatedFormula:
        return super().__new__(cls, "")

    def __reduce__(self) -> str:
        return "UNCALCULATED"  # copies and pickles stay the one sentinel

    def __repr__(self) -> str:
        return "UNCALCULATED"


UNCALCULATED = UncalculatedFormula()
# (row number as Excel shows it, raw cells, why the row is broken or None)
Record = tuple[int, Sequence[Cell], str | None]
# Python's csv refuses cells over 128 KiB; real exports carry long notes and HTML bodies. A
# larger cell is almost always an unclosed quote swallowing the rest of the file.
MAX_CELL_CHARS = 32 * 1024 * 1024


@dataclass
class Row:
    number: int  # the row number Excel shows (header on row 1 -> first data row is 2)
    cells: list[Cell]  # exactly len(table.header) cells
    error: str | None = None  # the row is structurally broken; mapping makes it invalid


@dataclass
class Table:
    path: pathlib.Path
    kind: str  # "csv", "xlsx", "xls" or "ods"
    header: list[str]
    sheet: str | None  # sheet title for a workbook
    encoding: str | None  # for csv
    delimiter: str | None  # for csv
    rows: Iterator[Row]  # lazy; blank rows are skipped and counted in blank_rows
    blank_rows: int = 0  # final once rows is exhausted
    header_notes: list[str] = field(default_factory=list)  # columns renamed, for the user
    header_row: int = 1
    #: The sheet's declared last row (workbooks), read with the sheet: no cost to keep.
    last_row_hint: int | None = None

    @functools.cached_property
    def estimated_rows(self) -> int | None:
        """About how many data rows the file has, for a progress bar's ETA; None if unknown.

        Computed on first use (call it while the table is open). CSV: the line breaks in the
        raw bytes, counted in chunks without decoding (about 1 s per GB); cells spanning lines
        and blank lines make it a slight overestimate. XLSX: the sheet's declared dimension,
        which some writers leave out (then None). XLS/ODS: the sheet's last row.
        """
        if self.kind != "csv":
            if self.last_row_hint is None:
                return None
            return max(self.last_row_hint - self.header_row, 0)
        from importer.csvfile import count_lines  # the CSV reader builds on this module

        return max(count_lines(self.path, self.encoding or "") - self.header_row, 0)


#: The results and errors files start with these columns / end with these: a file that does is
#: one this tool wrote, so its cells carry the formula guard (see protect_formula).
RESULTS_COLUMNS = ("row", "status", "activity_id", "http_status", "attempts", "error")
ERRORS_COLUMNS = ("error", "source_row")
#: What an errors file's ``error`` column is called when the file is imported again: the
#: results file has an ``error`` column of its own (the cells are kept as they are).
PREVIOUS_ERROR = "previous error"
#: First characters that make Excel, LibreOffice or Sheets read a CSV cell as a formula
#: (OWASP "CSV injection"), plus the guard's own quote.
GUARDED_FIRST = frozenset("=+-@\t\r'")
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OWN_ERRORS_TAIL = re.compile(r"(error|source_row)(?: \([0-9]+\))?")
# As read back: the errors file's ``error`` is then the PREVIOUS_ERROR column.
_READ_ERRORS_TAIL = re.compile(r"(?:previous )?(error|source_row)(?: \([0-9]+\))?")


def protect_formula(text: str) -> str:
    """A cell as written to a results or errors file: one ``'`` before a would-be formula.

    Files from third parties (``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``) must not run
    as formulas in the Excel of whoever opens the results. A plain number (``-5``, ``+3.5``) is
    no formula and stays as it is. Text that already starts with quotes before such a character
    gets one more, so unprotect_formula restores every cell exactly.
    """
    if text[:1] not in GUARDED_FIRST or not _FORMULA_START.match(text):
        return text
    if _PLAIN_NUMBER.fullmatch(text):
        return text
    return "'" + text


def unprotect_formula(text: str) -> str:
    """The inverse of protect_formula, for a file this tool wrote being imported again."""
    if text[:1] == "'" and _FORMULA_START.match(text, 1):
        return text[1:]
    return text


def _is_own_output(names: Sequence[Cell]) -> bool:
    """Is this the header of a results or errors file this tool wrote (as written, or as
    read back with its ``error`` named PREVIOUS_ERROR)?"""
    texts = [str(name).strip() for name in names]
    if tuple(texts[: len(RESULTS_COLUMNS)]) == RESULTS_COLUMNS:
        return True
    return _has_errors_tail(texts, _READ_ERRORS_TAIL)


def _has_errors_tail(texts: list[str], pattern: re.Pattern[str] = _OWN_ERRORS_TAIL) -> bool:
    """Do the last named columns read ``error,source_row`` (as an errors file ends)?"""
    texts = list(texts)
    while texts and not texts[-1]:
        texts.pop()
    tail = texts[-len(ERRORS_COLUMNS) :]
    return len(tail) == len(ERRORS_COLUMNS) and all(
        (match := pattern.fullmatch(text)) is not None and match.group(1) == column
        for text, column in zip(tail, ERRORS_COLUMNS, strict=True)
    )


def _unprotect_cells(cells: Sequence[Cell]) -> list[Cell]:
    return [unprotect_formula(cell) if type(cell) is str else cell for cell in cells]


def _is_blank(cell: Cell) -> bool:
    return isinstance(cell, str) and not cell.strip()


def _all_blank(cells: Sequence[Cell]) -> bool:
    """``all(_is_blank(cell) for cell in cells)``, without a generator and a call per cell:
    it runs for every row, and a data row's first cell usually ends it."""
    for cell in cells:  # noqa: SIM110 (all() with a generator is what this spares)
        if not isinstance(cell, str) or cell.strip():
            return False
    return True


def read_header(records: Iterator[Record], header_row: int, where: str) -> list[Cell]:
    """Consume records up to and including the header row; rows above it are ignored."""
    for number, cells, _ in records:
        if number == header_row:
            return list(cells)
    raise InputError(
        f"{where} is empty: no header row found at row {header_row}; check the file, "
        "or set header_row (--header-row) to the row that holds the column names"
    )


def name_columns(raw: Sequence[Cell], header_row: int, where: str) -> tuple[list[str], list[str]]:
    """Header cells -> unique, trimmed column names, plus notes on every rename made."""
    if _is_own_output(raw):
        raw = _unprotect_cells(raw)  # the header of a results or errors file was guarded too
    names = ["" if _is_blank(cell) else str(cell).strip() for cell in raw]
    if names:
        names[0] = names[0].lstrip("\ufeff")  # a BOM left by an explicit --encoding utf-8
    while names and not names[-1]:
        names.pop()  # spreadsheets often carry empty trailing columns
    renamed = _name_previous_error(names)
    if not names:
        raise InputError(
            f"{where}: row {header_row} is blank, so it holds no column names; set header_row "
            "(--header-row) to the row that holds them"
        )
    header: list[str] = []
    notes: list[str] = []
    taken: set[str] = set()
    # The last copy number given per name: later repeats start from there, so naming stays
    # linear however many columns repeat a name (and gives the names the plain search would).
    copies: dict[str, int] = {}
    for index, name in enumerate(names, start=1):
        base = name or f"Column {index}"
        unique = base
        if unique in taken:
            copy = copies.get(base, 1)
            while unique in taken:
                copy += 1
                unique = f"{base} ({copy})"
            copies[base] = copy
        taken.add(unique)
        if index == renamed:
            notes.append(
                f"column {index} {ERRORS_COLUMNS[0]!r} (the reason this errors file gives) is"
                f" called {unique!r}: the results have an {ERRORS_COLUMNS[0]!r} column of their own"
            )
        elif not name:
            notes.append(f"column {index} has no name; it is called {unique!r}")
        elif unique != name:
            notes.append(f"column {index} repeats the name {name!r}; it is called {unique!r}")
        header.append(unique)
    if len(notes) > MAX_RENAME_NOTES:
        # Thousands of repeated names would bury the rest of the summary.
        more = len(notes) - MAX_RENAME_NOTES
        notes[MAX_RENAME_NOTES:] = [
            f"{more:,} more columns are renamed the same way (the results file shows every name)"
        ]
    return header, notes


def _name_previous_error(names: list[str]) -> int | None:
    """An errors file read again: its ``error`` column becomes PREVIOUS_ERROR (in place).

    Returns the renamed column's 1-based position, or None for any other file.
    """
    if len(names) < len(ERRORS_COLUMNS) or not _has_errors_tail(names):
        return None
    position = len(names) - len(ERRORS_COLUMNS)
    names[position] = PREVIOUS_ERROR
    return position + 1


#: The summary lists at most this many renamed columns one by one.
MAX_RENAME_NOTES = 20


def _fit_row(number: int, cells: Sequence[Cell], width: int, *, pad: bool) -> Row:
    """Fit a row to the header; a row that cannot be matched to the columns gets Row.error.

    XLSX does not store empty trailing cells, so short rows are padded. A short CSV row lost a
    cell somewhere (a missing delimiter, a broken line), so its values may sit under the wrong
    columns: it is refused rather than guessed at. Extra cells are fine while they are blank.
    """
    error: str | None
    if len(cells) < width and not pad:
        error = (
            f"row has {_cells(len(cells))} but the header has {width} columns, so its values "
            "cannot be matched to the columns; every row needs one cell (empty or not) per "
            "column: check for a missing delimiter or a line break inside an unquoted cell"
        )
        return Row(number, [*cells, *[""] * (width - len(cells))], error)
    if len(cells) <= width:
        return Row(number, [*cells, *[""] * (width - len(cells))])
    error = None
    if not all(_is_blank(cell) for cell in cells[width:]):
        used = max(i for i, cell in enumerate(cells) if not _is_blank(cell)) + 1
        error = (
            f"row has {_cells(used)} but the header has {width} columns; quote values that "
            "contain the delimiter, or give the extra column a name in the header row"
        )
    return Row(number, list(cells[:width]), error)


def _cells(count: int) -> str:
    return "1 cell" if count == 1 else f"{count} cells"


def data_rows(table: Table, records: Iterator[Record]) -> Iterator[Row]:
    width = len(table.header)
    pad = table.kind != "csv"
    # Re-importing an errors (or results) file: its cells get back the exact values it was
    # written from, without the quote that kept formulas from running in Excel.
    guarded = _is_own_output(table.header)
    for number, cells, broken in records:
        if broken is None and _all_blank(cells):
            table.blank_rows += 1
            continue
        if guarded:
            cells = _unprotect_cells(cells)
        if not pad and len(cells) == width:
            # A CSV row that fits: csv.reader's list is the row's own, no copy to fit it.
            yield Row(number, cells, broken)  # type: ignore[arg-type]
            continue
        row = _fit_row(number, cells, width, pad=pad)
        row.error = broken or row.error
        yield row


def sheet_index(titles: list[str], sheet: str | int | None, shown: str) -> int:
    """The chosen sheet's position in ``titles``: the first, a name, or a 1-based number."""
    if not titles:
        raise InputError(f"{shown} has no worksheets; re-export it with the data on a sheet")
    if sheet is None:
        return 0
    # A name first (sheets are often called "2024"), then a 1-based position.
    wanted = str(sheet).strip().casefold()
    named = [i for i, title in enumerate(titles) if title == str(sheet)] or [
        i for i, title in enumerate(titles) if title.strip().casefold() == wanted
    ]
    if len(named) == 1:
        return named[0]
    if wanted.isdecimal() and 1 <= int(wanted) <= len(titles):
        return int(wanted) - 1
    names = ", ".join(repr(title) for title in titles)
    raise InputError(
        f"{shown} has no sheet {sheet!r}; its sheets are {names} "
        f"(give a name, or a number from 1 to {len(titles)})"
    )


def workbook_cell(value: object) -> Cell:
    if value is None:
        return ""
    if isinstance(value, float):
        # Excel stores every number as a float; 2405.0 is the ID 2405.
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, str | int | datetime.date | datetime.time):  # bool, UNCALCULATED too
        return value
    return str(value)  # e.g. timedelta for duration formats: keep what the user sees
