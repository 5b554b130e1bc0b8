"""XLSX cells are capped like CSV cells: a workbook holding a huge text is refused (exit 2,
naming file, sheet, row and column) without the text ever being read into memory whole."""

from __future__ import annotations

import re
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pytest

import importer.xlsx as xlsx
from importer.cli import main
from importer.errors import InputError
from importer.loader import open_table

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "mappings" / "attendees.yaml"
CAP = 1 << 20  # the cap patched down from 32 MB, so the test files stay small
HUGE = 8 * CAP


@pytest.fixture(autouse=True)
def small_cap(monkeypatch):
    monkeypatch.setattr(xlsx, "MAX_CELL_CHARS", CAP)


def workbook(path: Path, rows: list[list[object]], other_sheet: list[list[object]] | None = None):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Scans"
    for row in rows:
        sheet.append(row)
    if other_sheet is not None:
        extra = book.create_sheet("Other")
        for row in other_sheet:
            extra.append(row)
    book.save(path)
    return path


def replace_text(path: Path, texts: dict[str, str], *, shared: bool) -> Path:
    """Put ``texts`` (marker -> text) in the workbook: openpyxl itself would cut a text to
    Excel's 32,767 characters. ``shared``: all strings move to a shared strings table."""
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name).decode() for name in source.namelist()}
    sheets = [name for name in parts if name.startswith("xl/worksheets/sheet")]
    cell = re.compile(r'<c r="([A-Z]+[0-9]+)" t="inlineStr"><is><t[^>]*>([^<]*)</t></is></c>')
    strings: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        text = texts.get(match.group(2), match.group(2))
        if not shared:
            body = text if text.startswith("<r>") else f"<t>{text}</t>"  # rich text: runs
            return f'<c r="{match.group(1)}" t="inlineStr"><is>{body}</is></c>'
        strings.append(text)
        return f'<c r="{match.group(1)}" t="s"><v>{len(strings) - 1}</v></c>'

    for sheet in sheets:
        parts[sheet] = cell.sub(rewrite, parts[sheet])
    if shared:
        main_ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
        items = "".join(f"<si><t>{text}</t></si>" for text in strings)
        parts["xl/sharedStrings.xml"] = f'<sst xmlns="{main_ns}">{items}</sst>'
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
        parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
            "</Types>", f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kind}"/></Types>'
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)
    return path


def refused(path: Path) -> tuple[str, int]:
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as error, open_table(path) as table:
            list(table.rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return str(error.value), peak


HEADER = ["Email", "Booth", "Notes"]


@pytest.mark.parametrize("shared", [True, False], ids=["shared string", "inline string"])
def test_huge_text_is_refused_naming_sheet_row_and_column(tmp_path, shared):
    rows = [HEADER, ["a@x.com", "B1", "ok"], ["b@x.com", "B2", "BIG"]]
    path = workbook(tmp_path / "w.xlsx", rows)
    replace_text(path, {"BIG": "x" * HUGE}, shared=shared)
    assert path.stat().st_size < 100_000  # a small file, a huge text
    message, peak = refused(path)
    where = "w.xlsx (sheet 'Scans'): the cell at row 3, column C"
    assert f"{where} holds more than 1,048,576 characters" in message
    assert peak < HUGE // 4, "the text was never held whole"


def test_huge_text_in_rich_text_runs_is_refused(tmp_path):
    # Runs each under the cap, together over it: still one cell's text.
    path = workbook(tmp_path / "w.xlsx", [HEADER, ["a@x.com", "RUNS", "ok"]])
    run = "y" * (CAP // 2)
    replace_text(path, {"RUNS": f"<r><t>{run}</t></r>" * 4}, shared=False)
    message, _ = refused(path)
    assert "the cell at row 2, column B" in message


def test_huge_cell_is_exit_2_through_the_cli(tmp_path, capsys):
    path = workbook(tmp_path / "w.xlsx", [HEADER, ["b@x.com", "B2", "BIG"]])
    replace_text(path, {"BIG": "x" * HUGE}, shared=True)
    args = ["run", str(path), "--mapping", str(MAPPING), "--dry-run", "--quiet"]
    assert main([*args, "--results", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "w.xlsx (sheet 'Scans'): the cell at row 2, column C" in err and "Traceback" not in err


@pytest.mark.parametrize("shared", [True, False], ids=["shared strings", "inline strings"])
def test_texts_under_the_cap_read_as_before_in_large_parts(tmp_path, shared):
    rows = [HEADER, ["a@x.com", "B1", "NEAR"]] + [
        [f"p{n}@x.com", f"B{n}", f"note {n} & <more> x005F_"] for n in range(200)
    ]
    path = replace_text(
        workbook(tmp_path / "w.xlsx", rows), {"NEAR": "z" * (CAP - 10)}, shared=shared
    )
    with zipfile.ZipFile(path) as archive:
        assert max(info.file_size for info in archive.infolist()) > CAP  # the scans run
    expected = openpyxl.load_workbook(path, read_only=True)["Scans"]
    expected_rows = [[cell.value for cell in row] for row in expected.iter_rows(min_row=2)]
    with open_table(path) as table:
        assert [row.cells for row in table.rows] == expected_rows


def test_a_huge_text_elsewhere_does_not_stop_the_sheet_asked_for(tmp_path):
    other = [["Name", "Code"], ["Zoë", "x005F_x & <y>"], ["O'Brien", "  spaced  "]]
    path = workbook(tmp_path / "w.xlsx", [HEADER, ["a", "b", "BIG"]], other)
    replace_text(path, {"BIG": "x" * HUGE}, shared=True)  # the shared strings are read capped
    with open_table(path, sheet="Other") as table:
        got = [row.cells for row in table.rows]
    plain = replace_text(workbook(tmp_path / "p.xlsx", [HEADER], other), {}, shared=True)
    with open_table(plain, sheet="Other") as table:
        assert got == [row.cells for row in table.rows]
    assert got[1] == ["O'Brien", "  spaced  "] and got[0][1].endswith("x & <y>")
