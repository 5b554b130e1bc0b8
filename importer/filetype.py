"""What kind of file this is, decided by its content, not its name (exports are often
misnamed): CSV text, an XLSX zip, an OpenDocument zip, or an Excel 97-2003 OLE container.

Refuses, with the fix, what no reader can read: empty files, web pages and XML saved with an
Excel name, binary data, password-protected workbooks.
"""

from __future__ import annotations

import codecs
import pathlib

from importer.errors import InputError

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003, and encrypted .xlsx
EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm"}
WHOLE_SHEET_SUFFIXES = {"xls": {".xls", ".xlt"}, "ods": {".ods", ".ots"}}
ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# Bytes no text file contains (NUL aside, which broken exports do): control characters other
# than tab, line breaks and form feed.
_BINARY_BYTES = bytes([*range(1, 9), *range(14, 32), 127])
BINARY_SHARE = 0.02  # more than this share of such bytes: not a text file


def detect_kind(file: pathlib.Path, shown: str) -> str:
    """Decide by content, not by name, because exports are often misnamed."""
    head = read_head(file, shown, 4096)
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
            raise corrupt(shown)
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
        raise password_protected(shown)
    if _xls_has_filepass(file, head, streams):
        raise password_protected(shown)
    return "xls"


def password_protected(shown: str) -> InputError:
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
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or utf16_without_bom(head):
        return False
    if not head.strip(b"\0"):
        return True
    odd = len(head) - len(head.translate(None, _BINARY_BYTES))
    return odd > len(head) * BINARY_SHARE


def utf16_without_bom(head: bytes) -> str | None:
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


def read_head(file: pathlib.Path, shown: str, size: int) -> bytes:
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


def corrupt(shown: str) -> InputError:
    return InputError(
        f"{shown} is not a valid Excel workbook (it may be truncated or corrupt); re-export it"
    )
