"""CSV reading: encoding and delimiter detection, streaming rows in constant memory.

The encoding is UTF-8 (with or without BOM), UTF-16, or cp1252 as a fallback that never fails
on a stray byte; the delimiter is sniffed from the header line unless given. Rows are parsed
as they are consumed; a broken row (an unclosed quote, a cell over ``MAX_CELL_CHARS``) is
reported with its line number.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import pathlib
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from importer.errors import InputError
from importer.filetype import EXCEL_SUFFIXES, read_head, utf16_without_bom
from importer.table import MAX_CELL_CHARS, Record, Table, data_rows, name_columns, read_header

DELIMITERS = (",", ";", "\t", "|")  # in order of preference when counts tie
SNIFF_BYTES = 64 * 1024
csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
FALLBACK_ERRORS = "eloqua-import-cp1252-fallback"


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


codecs.register_error(FALLBACK_ERRORS, _decode_as_cp1252)


def detect_encoding(head: bytes, complete: bool) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    utf16 = utf16_without_bom(head)
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


def count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def _sniff_delimiter(line: str) -> str:
    counts = {d: count_outside_quotes(line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first of equal counts
    return best if counts[best] else ","


def check_delimiter(delimiter: str, shown: str) -> str:
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
def open_csv(
    file: pathlib.Path, shown: str, header_row: int, encoding: str | None, delimiter: str | None
) -> Iterator[Table]:
    head = read_head(file, shown, SNIFF_BYTES)
    chosen = encoding or detect_encoding(head, complete=len(head) < SNIFF_BYTES)
    # A guessed UTF-8 degrades gracefully; an explicit or BOM-declared encoding must hold.
    strict = encoding is not None or chosen.startswith("utf-16")
    errors = "strict" if strict else FALLBACK_ERRORS
    try:
        sample = codecs.getincrementaldecoder(chosen)(errors="replace").decode(head)
    except LookupError:
        raise InputError(
            f"cannot read {shown}: unknown encoding {chosen!r}; use e.g. utf-8, cp1252 or utf-16"
        ) from None
    sep = (
        check_delimiter(delimiter, shown)
        if delimiter
        else _sniff_delimiter(_header_line(sample.lstrip("\ufeff"), header_row))
    )
    if strict:
        _check_decodes(file, shown, chosen)
    with file.open("r", encoding=chosen, errors=errors, newline="") as stream:
        lines = _ChunkedLines(stream)
        records = _records(lines, sep, shown, chosen)
        raw = read_header(records, header_row, shown)
        header, notes = name_columns(raw, header_row, shown)
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
        table.rows = data_rows(table, records)
        try:
            yield table
        finally:
            lines.release()


COUNT_CHUNK = 1 << 20


def count_lines(file: pathlib.Path, encoding: str) -> int:
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
    """Lines of text, NUL bytes removed, for csv.reader; the lines of a record that spans
    several can be had again (``lines``) to tell a quote left open from a multi-line cell.

    ``done`` is the number of lines of the records read so far (kept up to date by the parser).
    """

    def __init__(self, stream: Iterable[str]) -> None:
        self.stream = stream
        self.done = 0
        self._lines: list[str] = []  # every line read, for a replay (small: see _parse_lines)

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self._lines.append(line)
            # NUL bytes come from broken exports; dropping them beats refusing the whole file.
            yield line.replace("\0", "")

    def lines(self, end: int) -> list[str]:
        """Lines ``done + 1`` to ``end`` (1-based, as csv.reader's line_num counts them)."""
        return self._lines[self.done : end]


class _ChunkedLines(_LineTap):
    """A text file's lines, read a chunk at a time: csv.reader takes them from a C iterator
    (itertools.chain) instead of a Python generator per line, the cheapest way to read a CSV
    file's lines. Lines end as the file object splits them with ``newline=""``: at ``\n``,
    ``\r`` or ``\r\n``. Only the chunks holding the record being read are kept.
    """

    CHUNK = 1 << 16  # characters read at a time

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._file = stream
        self._held: list[tuple[int, list[str]]] = []  # (lines before it, lines) per chunk

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._chunks())

    def _chunks(self) -> Iterator[list[str]]:
        before = 0  # lines in the chunks given so far
        pending: list[str] = []  # a line begun in earlier chunks, to continue in the next
        while True:
            text = self._file.read(self.CHUNK)
            if not text:
                if pending:
                    yield self._hold(before, ["".join(pending)])
                return
            if "\0" in text:
                # NUL bytes come from broken exports; dropping them beats refusing the file.
                text = text.replace("\0", "")
            if "\n" not in text and "\r" not in text:
                pending.append(text)  # a long line is joined once, not again at every chunk
                continue
            if pending:
                text = "".join([*pending, text])
                pending = []
            lines = _split_lines(text)
            # An unfinished last line, or a \r whose \n may start the next chunk, waits.
            if lines[-1][-1:] != "\n":
                pending.append(lines.pop())
            if lines:
                yield self._hold(before, lines)
                before += len(lines)

    def _hold(self, before: int, lines: list[str]) -> list[str]:
        # Chunks wholly before the record being read are no longer needed.
        done = self.done
        self._held = [(first, kept) for first, kept in self._held if first + len(kept) > done]
        self._held.append((before, lines))
        return lines

    def release(self) -> None:
        """The file is closed: rows not read yet are not read from the chunk in memory either
        (the next read of the file raises, as reading a closed file does)."""
        for _, kept in self._held:
            kept.clear()  # csv.reader's iterator over this chunk ends here
        self._held = []

    def lines(self, end: int) -> list[str]:
        done = self.done
        return [
            line
            for first, kept in self._held
            for line in kept[max(done - first, 0) : max(end - first, 0)]
        ]


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _split_lines(text: str) -> list[str]:
    """``text`` split as a file object with ``newline=""`` splits it, line ends kept."""
    lines = text.splitlines(keepends=True)
    # str.splitlines also splits at a lone \r, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029:
    # if it found no more breaks than there are \n, every break is a \n or \r\n (a last lone
    # \r waits for the next chunk anyway), so its split is the file's, found much faster.
    if len(lines) == text.count("\n") + (text[-1:] != "\n"):
        return lines
    return _LINE.findall(text)


def csv_records(stream: TextIO, delimiter: str, shown: str, encoding: str) -> Iterator[Record]:
    return _records(_ChunkedLines(stream), delimiter, shown, encoding)


def _records(lines: _LineTap, delimiter: str, shown: str, encoding: str) -> Iterator[Record]:
    try:
        yield from _parse_lines(lines, delimiter, shown)
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
        reader = csv.reader(tap, delimiter=delimiter)
        try:
            for number, cells in enumerate(reader, start):
                end = reader.line_num
                if end - tap.done > 1:  # a record over several lines: rare, checked here
                    lines = tap.lines(end)
                    if _quote_left_open(lines, delimiter):
                        yield number, _first_line_cells(lines[0], delimiter), UNCLOSED_QUOTE
                        tap = _LineTap(lines[1:])
                        break
                tap.done = end
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
