"""Loader stage: a CSV, XLSX, XLS or ODS file -> a header and a lazy stream of numbered rows.

``open_table`` reads only the header when it opens the file; rows are read as ``Table.rows`` is
consumed, so a CSV or XLSX file of any size streams in constant memory. XLS (Excel 97-2003) and
ODS (OpenDocument) sheets are read whole by calamine, so they are refused above
``MAX_WHOLE_SHEET_BYTES`` (a few hundred MB of memory at most). Row numbers are the ones Excel
shows, so a user can find every reported row in the original file; every format gives the same
cell types (see ``Cell``). No cell is longer than ``MAX_CELL_CHARS``, in any format. A results
or errors file this tool wrote is known by its header, and the quote its formula guard added is
removed (``unprotect_formula``).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import functools
import io
import math
import os
import pathlib
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TextIO
from xml.etree.ElementTree import ParseError, iterparse
from xml.parsers import expat

import python_calamine
from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader
from openpyxl.utils.cell import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser

from importer.errors import InputError

if TYPE_CHECKING:
    from openpyxl.workbook.workbook import Workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

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

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003, and encrypted .xlsx
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm"}
WHOLE_SHEET_SUFFIXES = {"xls": {".xls", ".xlt"}, "ods": {".ods", ".ots"}}
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# calamine holds a whole .xls/.ods workbook in memory: bound the data it reads (the .xls file;
# the unpacked XML of an .ods). Measured peak memory: about 10x an .xls, 2.5x the .ods XML.
MAX_WHOLE_SHEET_BYTES = {"xls": 40 * 1024 * 1024, "ods": 100 * 1024 * 1024}
DELIMITERS = (",", ";", "\t", "|")  # in order of preference when counts tie
SNIFF_BYTES = 64 * 1024
# Python's csv refuses cells over 128 KiB; real exports carry long notes and HTML bodies. A
# larger cell is almost always an unclosed quote swallowing the rest of the file.
MAX_CELL_CHARS = 32 * 1024 * 1024
# Bytes no text file contains (NUL aside, which broken exports do): control characters other
# than tab, line breaks and form feed.
_BINARY_BYTES = bytes([*range(1, 9), *range(14, 32), 127])
BINARY_SHARE = 0.02  # more than this share of such bytes: not a text file

csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))

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
        return max(_count_lines(self.path, self.encoding or "") - self.header_row, 0)


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
    kind = _detect_kind(file, shown)
    if kind == "xlsx":
        with _open_xlsx(file, shown, sheet, header_row) as table:
            yield table
    elif kind in WHOLE_SHEET_SUFFIXES:
        yield _whole_sheet_table(file, shown, kind, sheet, header_row)
    else:
        with _open_csv(file, shown, header_row, encoding, delimiter) as table:
            yield table


# --- file type ---------------------------------------------------------------------------------


def _detect_kind(file: pathlib.Path, shown: str) -> str:
    """Decide by content, not by name, because exports are often misnamed."""
    head = _read_head(file, shown, 4096)
    if not head:
        raise InputError(f"{shown} is empty: no header row found at row 1; export the data again")
    if head.startswith(ZIP_SIGNATURE):
        return _zip_kind(head, shown)
    if head.startswith(OLE_SIGNATURE):
        return _ole_kind(file, shown, head)
    if _looks_like_markup(head):
        raise InputError(
            f"{shown} is a web page or XML file, not a spreadsheet (some tools export HTML "
            "with an Excel name); open it in Excel and Save As .xlsx or CSV"
        )
    if _looks_binary(head):
        if file.suffix.lower() in EXCEL_SUFFIXES:
            raise _corrupt(shown)
        raise InputError(
            f"{shown} is not a CSV or Excel file: it holds binary data, not text; export the "
            "list again as CSV or .xlsx"
        )
    return "csv"


def _zip_kind(head: bytes, shown: str) -> str:
    """OpenDocument stores its mimetype first and uncompressed, so the head names it."""
    if head[30:38] != b"mimetype":
        return "xlsx"
    name_length = int.from_bytes(head[26:28], "little")  # from the first local file header
    extra_length = int.from_bytes(head[28:30], "little")
    mimetype = head[30 + name_length + extra_length :][:80]
    if mimetype.startswith(ODS_MIMETYPE):
        return "ods"
    raise InputError(
        f"{shown} is an OpenDocument file but not a spreadsheet; open it in LibreOffice Calc "
        "or Excel and save it as .ods, .xlsx or CSV"
    )


def _ole_kind(file: pathlib.Path, shown: str, head: bytes) -> str:
    """An OLE container is an Excel 97-2003 workbook or an encrypted (password) workbook."""
    streams = _ole_first_directory(file, head)
    encrypted = b"E\0n\0c\0r\0y\0p\0t\0" in streams
    if encrypted or (not streams and file.suffix.lower() in EXCEL_SUFFIXES):
        raise _password_protected(shown)
    if _xls_has_filepass(file, head, streams):
        raise _password_protected(shown)
    return "xls"


def _password_protected(shown: str) -> InputError:
    return InputError(
        f"{shown} looks password-protected; open it in Excel, remove the password "
        "(File > Info > Protect Workbook > Encrypt with Password) and save it again"
    )


def _xls_has_filepass(file: pathlib.Path, head: bytes, directory: bytes) -> bool:
    """Does the Workbook stream open with BOF then FILEPASS, as a password-protected .xls does?

    calamine says so only when it may trust the file's name; this reads the first record pair
    itself (a stream of 4096 bytes or more starts at its first sector, no FAT needed).
    """
    shift = int.from_bytes(head[0x1E:0x20], "little")
    for at in range(0, len(directory) - 127, 128):
        name = directory[at : at + 64].decode("utf-16-le", "replace").split("\0")[0]
        if name not in ("Workbook", "Book"):
            continue
        sector = int.from_bytes(directory[at + 0x74 : at + 0x78], "little")
        if int.from_bytes(directory[at + 0x78 : at + 0x7C], "little") < 4096:
            return False
        with file.open("rb") as f:
            f.seek((sector + 1) << shift)
            start = f.read(64)
        bof_end = 4 + int.from_bytes(start[2:4], "little")
        return start[:2] == b"\x09\x08" and start[bof_end : bof_end + 2] == b"\x2f\x00"
    return False


def _ole_first_directory(file: pathlib.Path, head: bytes) -> bytes:
    """The first directory sector of an OLE file (stream names in UTF-16), or b"" if unsure."""
    if len(head) < 0x34:
        return b""
    shift = int.from_bytes(head[0x1E:0x20], "little")
    sector = int.from_bytes(head[0x30:0x34], "little")
    if shift not in (9, 12) or sector >= 0xFFFFFFFA:
        return b""
    with file.open("rb") as f:
        f.seek((sector + 1) << shift)
        return f.read(1 << shift)


def _looks_binary(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _utf16_without_bom(head):
        return False
    if not head.strip(b"\0"):
        return True
    odd = len(head) - len(head.translate(None, _BINARY_BYTES))
    return odd > len(head) * BINARY_SHARE


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM: every other byte of ASCII text is a zero byte."""
    half = len(head) // 2
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if half >= 4 and odd > 0.6 * half and even < 0.1 * half:
        return "utf-16-le"
    if half >= 4 and even > 0.6 * half and odd < 0.1 * half:
        return "utf-16-be"
    return None


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


# --- formula guard ---------------------------------------------------------------------------

#: The results and errors files start with these columns / end with these: a file that does is
#: one this tool wrote, so its cells carry the formula guard (see protect_formula).
RESULTS_COLUMNS = ("row", "status", "activity_id", "http_status", "attempts", "error")
ERRORS_COLUMNS = ("error", "source_row")
#: First characters that make Excel, LibreOffice or Sheets read a CSV cell as a formula
#: (OWASP "CSV injection"), plus the guard's own quote.
GUARDED_FIRST = frozenset("=+-@\t\r'")
_FORMULA_START = re.compile(r"'*[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_OWN_ERRORS_TAIL = re.compile(r"(error|source_row)(?: \([0-9]+\))?")


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
    """Is this the header of a results or errors file this tool wrote?"""
    texts = [str(name).strip() for name in names]
    if tuple(texts[: len(RESULTS_COLUMNS)]) == RESULTS_COLUMNS:
        return True
    while texts and not texts[-1]:
        texts.pop()
    tail = texts[-len(ERRORS_COLUMNS) :]
    return len(tail) == len(ERRORS_COLUMNS) and all(
        (match := _OWN_ERRORS_TAIL.fullmatch(text)) is not None and match.group(1) == column
        for text, column in zip(tail, ERRORS_COLUMNS, strict=True)
    )


def _unprotect_cells(cells: Sequence[Cell]) -> list[Cell]:
    return [unprotect_formula(cell) if type(cell) is str else cell for cell in cells]


# --- shared header and row handling ---------------------------------------------------------


def _is_blank(cell: Cell) -> bool:
    return isinstance(cell, str) and not cell.strip()


def _read_header(records: Iterator[Record], header_row: int, where: str) -> list[Cell]:
    """Consume records up to and including the header row; rows above it are ignored."""
    for number, cells, _ in records:
        if number == header_row:
            return list(cells)
    raise InputError(
        f"{where} is empty: no header row found at row {header_row}; check the file, "
        "or set header_row (--header-row) to the row that holds the column names"
    )


def _name_columns(raw: Sequence[Cell], header_row: int, where: str) -> tuple[list[str], list[str]]:
    """Header cells -> unique, trimmed column names, plus notes on every rename made."""
    if _is_own_output(raw):
        raw = _unprotect_cells(raw)  # the header of a results or errors file was guarded too
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
        if not name:
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


#: The summary lists at most this many renamed columns one by one.
MAX_RENAME_NOTES = 20


def _fit_row(number: int, cells: Sequence[Cell], width: int, *, pad: bool) -> Row:
    """Fit a row to the header; a row that cannot be matched to the columns gets Row.error.

    XLSX does not store empty trailing cells, so short rows are padded. A short CSV row lost a
    cell somewhere (a missing delimiter, a broken line), so its values may sit under the wrong
    columns: it is refused rather than guessed at. Extra cells are fine while they are blank.
    """
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


def _data_rows(table: Table, records: Iterator[Record]) -> Iterator[Row]:
    width = len(table.header)
    pad = table.kind != "csv"
    # Re-importing an errors (or results) file: its cells get back the exact values it was
    # written from, without the quote that kept formulas from running in Excel.
    guarded = _is_own_output(table.header)
    for number, cells, broken in records:
        if broken is None and all(_is_blank(cell) for cell in cells):
            table.blank_rows += 1
            continue
        if guarded:
            cells = _unprotect_cells(cells)
        row = _fit_row(number, cells, width, pad=pad)
        row.error = broken or row.error
        yield row


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
    utf16 = _utf16_without_bom(head)
    if utf16:
        return utf16
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
    strict = encoding is not None or chosen.startswith("utf-16")
    errors = "strict" if strict else _FALLBACK_ERRORS
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
    if strict:
        _check_decodes(file, shown, chosen)
    with file.open("r", encoding=chosen, errors=errors, newline="") as stream:
        records = _csv_records(stream, sep, shown, chosen)
        raw = _read_header(records, header_row, shown)
        header, notes = _name_columns(raw, header_row, shown)
        if file.suffix.lower() in EXCEL_SUFFIXES:
            notes.insert(0, f"the file is named {file.suffix} but holds CSV text; read as CSV")
        table = Table(
            file,
            "csv",
            header,
            None,
            chosen,
            sep,
            iter(()),
            header_notes=notes,
            header_row=header_row,
        )
        table.rows = _data_rows(table, records)
        yield table


COUNT_CHUNK = 1 << 20


def _count_lines(file: pathlib.Path, encoding: str) -> int:
    """Lines in a text file, counted in the raw bytes (a last line without a break counts).

    An estimate for UTF-16 (a break is two bytes that could, rarely, straddle two characters).
    """
    newline = _newline_bytes(file, encoding.lower().replace("_", "-"))
    carry = len(newline) - 1  # a two-byte break may straddle two chunks
    lines, window = 0, b""
    try:
        with file.open("rb") as raw:
            while chunk := raw.read(COUNT_CHUNK):
                window = window[len(window) - carry :] + chunk if carry else chunk
                lines += window.count(newline)
    except OSError:
        return 0
    if not window:
        return 0
    return lines + (0 if window.endswith(newline) else 1)


def _newline_bytes(file: pathlib.Path, encoding: str) -> bytes:
    if not encoding.startswith("utf-16"):
        return b"\n"  # every other encoding read here writes a line break as this one byte
    if encoding.endswith("be"):
        return b"\0\n"
    if encoding.endswith("le"):
        return b"\n\0"
    with contextlib.suppress(OSError), file.open("rb") as raw:
        if raw.read(2) == codecs.BOM_UTF16_BE:
            return b"\0\n"
    return b"\n\0"


def _check_decodes(file: pathlib.Path, shown: str, encoding: str) -> None:
    """Decode the whole file once before any row is used.

    A bad byte deep in the file would otherwise surface only when the reader reaches it (a
    buffer early), after earlier rows were sent. A bounded-memory pass costs little.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with file.open("rb") as raw:
        while chunk := raw.read(1 << 18):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line += codecs.decode(chunk[: exc.start], encoding, "replace").count("\n")
                bad = chunk[exc.start : exc.start + 1]
                raise InputError(
                    f"cannot read {shown} as {encoding}: line {line} has a byte ({bad!r}) that is"
                    f" not {encoding}; try --encoding cp1252 (Windows) or utf-16, or re-export"
                    " the file as UTF-8"
                ) from None
            line += text.count("\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(
                f"cannot read {shown} as {encoding}: the file ends in the middle of a character;"
                " it may be truncated, re-export it"
            ) from None


UNCLOSED_QUOTE = (
    'this row opens a quote (") that is never closed, so the importer read the lines after it '
    "as rows of their own; close or remove the quote (or re-export the file) and import this "
    "row again"
)


class _LineTap:
    """Lines of text, NUL bytes removed, remembering the lines of the current record."""

    def __init__(self, stream: Iterable[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.lines.append(line)
            # NUL bytes come from broken exports; dropping them beats refusing the whole file.
            yield line.replace("\0", "")

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def _csv_records(stream: TextIO, delimiter: str, shown: str, encoding: str) -> Iterator[Record]:
    try:
        yield from _parse_lines(_LineTap(stream), delimiter, shown)
    except UnicodeDecodeError:
        raise _decode_error(shown, encoding) from None


def _parse_lines(tap: _LineTap, delimiter: str, shown: str) -> Iterator[Record]:
    """Each record counts as one row, as in Excel, even if a quoted cell spans lines; a blank
    line is a record of its own, so row numbers still match Excel.

    A quote never closed would swallow the rest of the file into one cell: that row is
    reported as broken and the lines after it are read again as rows of their own.
    """
    number = 0
    while True:
        start = number + 1
        try:
            for number, cells in enumerate(csv.reader(tap, delimiter=delimiter), start):
                lines = tap.take()
                if len(lines) > 1 and _quote_left_open(lines, delimiter):
                    yield number, _first_line_cells(lines[0], delimiter), UNCLOSED_QUOTE
                    tap = _LineTap(lines[1:])
                    break
                yield number, cells, None
            else:
                return
        except csv.Error as exc:
            raise _csv_error(shown, number + 1, exc) from None


def _first_line_cells(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line.replace("\0", "").rstrip("\r\n")], delimiter=delimiter), [])


def _quote_left_open(lines: list[str], delimiter: str) -> bool:
    """Did this record end only because the file did, inside a quoted cell?"""
    text = "".join(lines).replace("\0", "")
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "end of data" in str(exc)
    return False


def _csv_error(shown: str, number: int, exc: csv.Error) -> InputError:
    if "field larger than field limit" in str(exc):
        return InputError(
            f"{shown}: row {number} has a cell longer than {MAX_CELL_CHARS:,} characters, "
            'which usually means a quote (") opened there is never closed; fix that quote, '
            "or re-export the file"
        )
    return InputError(
        f"{shown}: row {number} is not valid CSV ({exc}); check its quotes, or re-export the file"
    )


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
        reader = _read_xlsx(stream, shown)
        with contextlib.closing(reader.wb):
            yield _xlsx_table(reader.wb, file, shown, sheet, header_row, reader.oversized)


def _read_xlsx(stream: IO[bytes], shown: str) -> _CappedExcelReader:
    """openpyxl's load_workbook, with the shared strings read under the cell cap."""
    try:
        reader = _CappedExcelReader(stream, read_only=True, data_only=True)
        reader.read()
    except _CORRUPT_WORKBOOK:
        raise _corrupt(shown) from None
    return reader


def _xlsx_table(
    workbook: Workbook,
    file: pathlib.Path,
    shown: str,
    sheet: str | int | None,
    header_row: int,
    oversized: frozenset[int] = frozenset(),
) -> Table:
    worksheet = _pick_sheet(workbook, sheet, shown)
    where = f"{shown} (sheet {worksheet.title!r})"
    _refuse_oversized_cells(worksheet, oversized, where)
    records = _xlsx_records(worksheet, shown)
    raw = _read_header(records, header_row, where)
    header, notes = _name_columns(raw, header_row, where)
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
    table.rows = _data_rows(table, records)
    return table


# --- XLSX cell size cap --------------------------------------------------------------------
#
# A 400 KB workbook can hold a 400 MB string (XML compresses that well), and openpyxl reads
# every shared string into memory when it opens the file, then each cell's text whole. Parts
# no larger than the cap cannot hold a longer text and are read as usual; a larger part is
# first scanned in chunks, never holding a text whole, and only when that scan finds a cell
# (or shared string) that may be over the cap is it read with expat, texts counted, not kept.

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


class _CappedExcelReader(ExcelReader):  # type: ignore[misc]
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


def _refuse_oversized_cells(
    worksheet: ReadOnlyWorksheet, oversized: frozenset[int], where: str
) -> None:
    """Refuse, before any row is read, a sheet with a cell over the cap (as the CSV reader)."""
    archive = worksheet.parent._archive
    path = worksheet._worksheet_path
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


def _pick_sheet(workbook: Workbook, sheet: str | int | None, shown: str) -> ReadOnlyWorksheet:
    sheets = workbook.worksheets
    return sheets[_sheet_index([ws.title for ws in sheets], sheet, shown)]


def _sheet_index(titles: list[str], sheet: str | int | None, shown: str) -> int:
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


def _xlsx_records(worksheet: ReadOnlyWorksheet, shown: str) -> Iterator[Record]:
    workbook = worksheet.parent
    try:
        # What ReadOnlyWorksheet.iter_rows does, with the parser above: still one row at a time.
        with worksheet._get_source() as source:
            parser = _FormulaAwareParser(
                source,
                worksheet._shared_strings,
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
        raise _corrupt(shown) from None


def _xlsx_values(cells: list[dict[str, Any]]) -> list[Cell]:
    """Parsed cells -> values by column; columns Excel did not store are blank."""
    values: list[Cell] = []
    for cell in cells:
        column = cell["column"]
        if column > len(values):
            values.extend([""] * (column - len(values)))
        values[column - 1] = _xlsx_cell(cell["value"])
    return values


def _xlsx_cell(value: object) -> Cell:
    if value is None:
        return ""
    if isinstance(value, float):
        # Excel stores every number as a float; 2405.0 is the ID 2405.
        return int(value) if math.isfinite(value) and value.is_integer() else value
    if isinstance(value, str | int | datetime.date | datetime.time):  # bool, UNCALCULATED too
        return value
    return str(value)  # e.g. timedelta for duration formats: keep what the user sees


# --- XLS and ODS (whole sheets, through calamine) ---------------------------------------------

_FORMAT_NAMES = {"xls": "Excel 97-2003 (.xls)", "ods": "OpenDocument (.ods)"}


def _whole_sheet_table(
    file: pathlib.Path, shown: str, kind: str, sheet: str | int | None, header_row: int
) -> Table:
    """An .xls or .ods sheet, read whole by calamine: rows are then served from memory.

    Cells come out as the XLSX reader gives them. An .ods formula saved without its value
    (written by a script, never calculated) is UNCALCULATED, as in XLSX; .xls always stores
    a formula's value.
    """
    _check_whole_sheet_size(file, shown, kind)
    workbook = _open_calamine(file, shown, kind)
    titles = [
        meta.name
        for meta in workbook.sheets_metadata
        if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
    ]
    title = titles[_sheet_index(titles, sheet, shown)]
    try:
        data = workbook.get_sheet_by_name(title)
        # skip_empty_area=False keeps leading empty rows and columns, so positions match Excel.
        grid = data.to_python(skip_empty_area=False)
    except python_calamine.CalamineError:
        raise _unreadable(shown, kind) from None
    finally:
        workbook.close()
    where = f"{shown} (sheet {title!r})"
    if kind == "ods":
        _mark_uncalculated(grid, file, title, shown)
    _check_cell_sizes(grid, where)
    records = _grid_records(grid)
    header, notes = _name_columns(_read_header(records, header_row, where), header_row, where)
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
    table.rows = _data_rows(table, records)
    return table


def _check_whole_sheet_size(file: pathlib.Path, shown: str, kind: str) -> None:
    """Refuse a workbook too big to hold in memory, before calamine reads any of it."""
    try:
        size = file.stat().st_size
        if kind == "ods":
            # Compressed XML: the expanded sheet data is what memory must hold.
            with zipfile.ZipFile(file) as archive:
                size = archive.getinfo("content.xml").file_size
    except (OSError, KeyError, zipfile.BadZipFile):
        raise _unreadable(shown, kind) from None
    if size > MAX_WHOLE_SHEET_BYTES[kind]:
        limit = MAX_WHOLE_SHEET_BYTES[kind] // (1024 * 1024)
        raise InputError(
            f"{shown} holds {size / (1024 * 1024):,.0f} MB of {_FORMAT_NAMES[kind]} sheet data; "
            f"these workbooks are read whole into memory, so the importer takes them up to "
            f"{limit} MB: open it and Save As .xlsx or CSV (read as a stream, any size)"
        )


def _open_calamine(file: pathlib.Path, shown: str, kind: str) -> python_calamine.CalamineWorkbook:
    try:
        # By content (a file object), not by name: the file may be misnamed.
        with file.open("rb") as stream:
            return python_calamine.CalamineWorkbook.from_filelike(stream)
    except python_calamine.PasswordError:
        raise _password_protected(shown) from None
    except (python_calamine.CalamineError, OSError, ValueError):
        raise _unreadable(shown, kind) from None


def _unreadable(shown: str, kind: str) -> InputError:
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
        raise _unreadable(shown, "ods") from None
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


def _grid_records(grid: list[list[Any]]) -> Iterator[Record]:
    for number, values in enumerate(grid, start=1):
        yield number, [_whole_sheet_cell(value) for value in values], None


def _whole_sheet_cell(value: object) -> Cell:
    # openpyxl reads a date-formatted cell as a datetime even at midnight: so must these.
    if type(value) is datetime.date:
        return datetime.datetime.combine(value, datetime.time())
    return _xlsx_cell(value)


# --- a look at the first rows, preamble included (for `init`'s inference) ----------------------


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
    kind = _detect_kind(file, shown)
    if kind == "xlsx":
        with file.open("rb") as stream:
            reader = _read_xlsx(stream, shown)
            workbook = reader.wb
            with contextlib.closing(workbook):
                worksheet = _pick_sheet(workbook, sheet, shown)
                _refuse_oversized_cells(worksheet, reader.oversized, shown)
                records = _xlsx_records(worksheet, shown)
                rows = [(n, list(c)) for n, c, _ in _take(records, limit)]
                titles = [ws.title for ws in workbook.worksheets]
                return Peek("xlsx", rows, sheet=worksheet.title, sheets=titles)
    if kind in WHOLE_SHEET_SUFFIXES:
        return _peek_whole_sheet(file, shown, kind, sheet, limit)
    head = _read_head(file, shown, SNIFF_BYTES)
    chosen = encoding or _detect_encoding(head, complete=len(head) < SNIFF_BYTES)
    try:
        sample = codecs.getincrementaldecoder(chosen)(errors="replace").decode(head)
    except LookupError:
        raise InputError(
            f"cannot read {shown}: unknown encoding {chosen!r}; use e.g. utf-8, cp1252 or utf-16"
        ) from None
    lines = sample.lstrip("\ufeff").splitlines()[:limit]
    sep = _check_delimiter(delimiter, shown) if delimiter else _sniff_lines_delimiter(lines)
    errors = "strict" if encoding or chosen.startswith("utf-16") else _FALLBACK_ERRORS
    with file.open("r", encoding=chosen, errors=errors, newline="") as stream:
        records = _csv_records(stream, sep, shown, chosen)
        rows = [(n, list(c)) for n, c, _ in _take(records, limit)]
    if rows and rows[0][1]:
        first = rows[0][1]
        first[0] = str(first[0]).lstrip("\ufeff")
    return Peek("csv", rows, encoding=chosen, delimiter=sep)


def _peek_whole_sheet(
    file: pathlib.Path, shown: str, kind: str, sheet: str | int | None, limit: int
) -> Peek:
    """An .xls or .ods sheet's first rows (calamine reads the sheet whole)."""
    _check_whole_sheet_size(file, shown, kind)
    workbook = _open_calamine(file, shown, kind)
    titles = [
        meta.name
        for meta in workbook.sheets_metadata
        if meta.typ == python_calamine.SheetTypeEnum.WorkSheet
    ]
    title = titles[_sheet_index(titles, sheet, shown)]
    try:
        grid = workbook.get_sheet_by_name(title).to_python(skip_empty_area=False)
    except python_calamine.CalamineError:
        raise _unreadable(shown, kind) from None
    finally:
        workbook.close()
    rows = [(n, list(c)) for n, c, _ in _take(_grid_records(grid), limit)]
    return Peek(kind, rows, sheet=title, sheets=titles)


def _take(records: Iterator[Record], limit: int) -> Iterator[Record]:
    for count, record in enumerate(records):
        if count >= limit:
            return
        yield record


def _sniff_lines_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the most lines into the same number of cells."""

    def score(delimiter: str) -> int:
        counts = [_count_outside_quotes(line, delimiter) for line in lines]
        common = [count for count in counts if count]
        return max((common.count(count) for count in set(common)), default=0)

    best = max(DELIMITERS, key=score)  # max keeps the first of equal scores
    return best if score(best) else ","
