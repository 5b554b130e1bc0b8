"""Loader stage: a CSV, XLSX, XLS or ODS file -> a header and a lazy stream of numbered rows.

``open_table`` decides the file's kind by content (``filetype``) and hands it to its reader:
``csvfile`` (CSV text), ``xlsx`` (openpyxl, streaming) or ``xls_ods`` (calamine, whole
sheets). It reads only the header when it opens the file; rows are read as ``Table.rows`` is
consumed, so a CSV or XLSX file of any size streams in constant memory. XLS (Excel 97-2003) and
ODS (OpenDocument) sheets are read whole, so they are refused above ``MAX_WHOLE_SHEET_BYTES``
(a few hundred MB of memory at most). Row numbers are the ones Excel shows, so a user can find
every reported row in the original file; every format gives the same cell types (see
``table.Cell``). No cell is longer than ``MAX_CELL_CHARS``, in any format. A results or errors
file this tool wrote is known by its header, and the quote its formula guard added is removed
(``table.unprotect_formula``). ``peek_rows`` gives ``init`` the first rows as stored.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from importer.csvfile import (
    DELIMITERS,
    FALLBACK_ERRORS,
    SNIFF_BYTES,
    check_delimiter,
    count_outside_quotes,
    csv_records,
    detect_encoding,
    open_csv,
)
from importer.errors import InputError
from importer.filetype import WHOLE_SHEET_SUFFIXES, detect_kind, read_head
from importer.table import Cell, Record, Table


@contextlib.contextmanager
def open_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    header_row: int = 1,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Iterator[Table]:
    """Open a CSV, XLSX, XLS or ODS file as a Table; the file is closed when the block exits.

    Raises InputError, naming the file and the fix, when the file cannot be read as a table.
    """
    shown = os.fspath(path)
    if header_row < 1:
        raise InputError(f"{shown}: header_row must be 1 or more (got {header_row})")
    file = pathlib.Path(path)
    kind = detect_kind(file, shown)
    if kind == "xlsx":
        # openpyxl (and numpy, which it pulls in) costs more to import than a CSV run's
        # first thousand rows: only a workbook loads it.
        from importer.xlsx import open_xlsx

        with open_xlsx(file, shown, sheet, header_row) as table:
            yield table
    elif kind in WHOLE_SHEET_SUFFIXES:
        from importer.xls_ods import whole_sheet_table  # calamine: only for .xls and .ods

        yield whole_sheet_table(file, shown, kind, sheet, header_row)
    else:
        with open_csv(file, shown, header_row, encoding, delimiter) as table:
            yield table


@dataclass
class Peek:
    """The first rows of one sheet (or of a CSV file) exactly as stored, preamble included."""

    kind: str  # "csv", "xlsx", "xls" or "ods"
    rows: list[tuple[int, list[Cell]]]  # (row number as Excel shows it, cells)
    sheet: str | None = None  # the sheet read (workbooks)
    sheets: list[str] = field(default_factory=list)  # every sheet of the workbook
    encoding: str | None = None  # csv
    delimiter: str | None = None  # csv: the one that splits most lines alike


def peek_rows(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    limit: int = 1000,
) -> Peek:
    """Read up to ``limit`` rows from the top of the file, before the header row is known.

    The delimiter is chosen from all those lines, not from one header line: a title line above
    the table holds no delimiter at all. Raises InputError like ``open_table``.
    """
    shown = os.fspath(path)
    file = pathlib.Path(path)
    kind = detect_kind(file, shown)
    if kind == "xlsx":
        from importer.xlsx import pick_sheet, read_xlsx, refuse_oversized_cells, xlsx_records

        with file.open("rb") as stream:
            reader = read_xlsx(stream, shown)
            workbook = reader.wb
            with contextlib.closing(workbook):
                worksheet = pick_sheet(workbook, sheet, shown)
                refuse_oversized_cells(worksheet, reader.oversized, shown)
                records = xlsx_records(worksheet, shown)
                rows = [(n, list(c)) for n, c, _ in _take(records, limit)]
                titles = [ws.title for ws in workbook.worksheets]
                return Peek("xlsx", rows, sheet=worksheet.title, sheets=titles)
    if kind in WHOLE_SHEET_SUFFIXES:
        return _peek_whole_sheet(file, shown, kind, sheet, limit)
    head = read_head(file, shown, SNIFF_BYTES)
    chosen = encoding or detect_encoding(head, complete=len(head) < SNIFF_BYTES)
    try:
        sample = codecs.getincrementaldecoder(chosen)(errors="replace").decode(head)
    except LookupError:
        raise InputError(
            f"cannot read {shown}: unknown encoding {chosen!r}; use e.g. utf-8, cp1252 or utf-16"
        ) from None
    lines = sample.lstrip("\ufeff").splitlines()[:limit]
    sep = check_delimiter(delimiter, shown) if delimiter else _sniff_lines_delimiter(lines)
    errors = "strict" if encoding or chosen.startswith("utf-16") else FALLBACK_ERRORS
    with file.open("r", encoding=chosen, errors=errors, newline="") as stream:
        records = csv_records(stream, sep, shown, chosen)
        rows = [(n, list(c)) for n, c, _ in _take(records, limit)]
    if rows and rows[0][1]:
        first = rows[0][1]
        first[0] = str(first[0]).lstrip("\ufeff")
    return Peek("csv", rows, encoding=chosen, delimiter=sep)


def _peek_whole_sheet(
    file: pathlib.Path, shown: str, kind: str, sheet: str | int | None, limit: int
) -> Peek:
    """An .xls or .ods sheet's first rows (calamine reads the sheet whole)."""
    from importer.xls_ods import grid_records, read_sheet

    title, titles, grid = read_sheet(file, shown, kind, sheet)
    rows = [(n, list(c)) for n, c, _ in _take(grid_records(grid), limit)]
    return Peek(kind, rows, sheet=title, sheets=titles)


def _take(records: Iterator[Record], limit: int) -> Iterator[Record]:
    for count, record in enumerate(records):
        if count >= limit:
            return
        yield record


def _sniff_lines_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the most lines into the same number of cells."""

    def score(delimiter: str) -> int:
        counts = [count_outside_quotes(line, delimiter) for line in lines]
        common = [count for count in counts if count]
        return max((common.count(count) for count in set(common)), default=0)

    best = max(DELIMITERS, key=score)  # max keeps the first of equal scores
    return best if score(best) else ","
