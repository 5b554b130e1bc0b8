"""Canary: the openpyxl private internals importer/xlsx.py relies on are still there.

importer/xlsx.py reads .xlsx through openpyxl's own parser and reader classes, some of them
private (``_reader``, ``_read_only``, ``_archive``...). pyproject.toml bounds openpyxl to the
minor version this was checked against; if this test fails after widening that bound, re-check
importer/xlsx.py against the new openpyxl before going further.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import openpyxl
from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet._reader import FORMULA_TAG, VALUE_TAG, WorkSheetParser


def test_openpyxl_parser_keeps_the_signature_and_methods_the_xlsx_reader_uses() -> None:
    parameters = set(inspect.signature(WorkSheetParser.__init__).parameters)
    assert {"src", "shared_strings", "data_only", "epoch"} <= parameters
    assert {"date_formats", "timedelta_formats"} <= parameters
    assert callable(WorkSheetParser.parse_cell) and callable(WorkSheetParser.parse)
    assert callable(ExcelReader.read_strings) and callable(ExcelReader.read)
    assert FORMULA_TAG.endswith("}f") and VALUE_TAG.endswith("}v")
    assert SHARED_STRINGS.endswith("sharedStrings+xml")


def test_openpyxl_read_only_workbook_keeps_the_private_attributes_the_xlsx_reader_uses(
    tmp_path: Path,
) -> None:
    path = tmp_path / "canary.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["Email", 42])
    workbook.save(path)
    with path.open("rb") as stream:
        reader = ExcelReader(stream, read_only=True, data_only=True)
        reader.read()
        try:
            worksheet = reader.wb.worksheets[0]
            assert isinstance(worksheet, ReadOnlyWorksheet)
            assert reader.archive is reader.wb._archive
            assert reader.package is not None and isinstance(reader.shared_strings, list)
            for name in ("_date_formats", "_timedelta_formats", "epoch"):
                assert hasattr(reader.wb, name), name
            assert worksheet._worksheet_path in reader.archive.namelist()
            with worksheet._get_source() as source:
                parser = WorkSheetParser(source, worksheet._shared_strings, data_only=True)
                ((number, cells),) = list(parser.parse())
            assert number == 1 and [cell["value"] for cell in cells] == ["Email", 42]
            assert [cell["column"] for cell in cells] == [1, 2]
        finally:
            reader.wb.close()
