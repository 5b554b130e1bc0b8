"""The results and errors files: what reaches the disk, and when."""

from __future__ import annotations

import asyncio
import csv
import io

import importer.report as report
from importer.report import ErrorsWriter, ResultsWriter
from importer.table import UNCALCULATED


def lines(path):
    return path.read_text(encoding="utf-8-sig").splitlines()


async def test_results_reach_the_file_shortly_after_the_last_row(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "FLUSH_SECONDS", 0.01)
    path = tmp_path / "results.csv"
    writer = ResultsWriter(path, ["Email"])
    writer.write(2, "created", ["a@x.com"], activity_id="7", attempts=1)
    writer.write(3, "created", ["b@x.com"], activity_id="8", attempts=1)
    # No further row arrives (a long retry, say): the timer still gets them to the file.
    for _ in range(200):
        if len(lines(path)) == 3:
            break
        await asyncio.sleep(0.01)
    assert lines(path)[1:] == ["2,created,7,,1,,a@x.com", "3,created,8,,1,,b@x.com"]
    writer.close()


def test_close_writes_every_line_and_cells_read_as_text(tmp_path):
    path = tmp_path / "results.csv"
    writer = ResultsWriter(path, ["Email", "Score", "VIP", "Formula"])
    for n in range(1000):
        writer.write(n + 2, "valid", ["a@x.com", 2405.0, True, UNCALCULATED])
    writer.close()
    assert len(lines(path)) == 1001
    assert lines(path)[1] == "2,valid,,,0,,a@x.com,2405,TRUE,"


def test_errors_file_is_removed_when_no_row_needed_it(tmp_path):
    unused = ErrorsWriter(tmp_path / "unused.errors.csv", ["Email"])
    unused.close()
    used = ErrorsWriter(tmp_path / "used.errors.csv", ["Email"])
    used.write(5, ["a@x.com"], "rejected: unknown contact\nid")
    used.close()
    assert not unused.path.exists()
    assert lines(used.path) == ["Email,error,source_row", "a@x.com,rejected: unknown contact id,5"]


def test_results_lines_are_the_bytes_the_csv_writer_and_the_formula_guard_give(tmp_path):
    # Plain text rows are written without the csv writer: every kind of cell must still come
    # out as the csv writer and the formula guard write it.
    header = ["A", "B", "C"]
    rows = [
        ["Ana", "Lópes", "ana@example.com"],
        ["", "", ""],
        ["a,b", "c", "d"],
        ['say "hi"', "x", "y"],
        ["two\nlines", "x", "y"],
        ["cr\ronly", "x", "y"],
        ["=SUM(A1)", "+cmd", "-5"],
        ["x", "@home", "\tTab"],
        ["x", "'quoted", "-x"],
        ["x", "y", "=1"],
        [" lead", "trail ", "中文"],
        [12, 3.5, True],
        [UNCALCULATED, "x", "y"],
        ["only", "two"],
    ]
    path = tmp_path / "results.csv"
    writer = ResultsWriter(path, header)
    expected = io.StringIO(newline="")
    reference = csv.writer(expected)
    reference.writerow([*report.RESULT_COLUMNS, *header])
    for number, cells in enumerate(rows, start=2):
        for status, activity_id, http_status, error in (
            ("valid", "", None, ""),
            ("created", "100042", 201, ""),
            ("invalid", "", None, "Email: 'x, y' is not valid"),
        ):
            writer.write(
                number, status, cells, activity_id=activity_id, http_status=http_status, error=error
            )
            reference.writerow(
                [
                    number,
                    status,
                    activity_id,
                    "" if http_status is None else http_status,
                    0,
                    report.protect_formula(error),
                    *report._texts(cells),
                ]
            )
    writer.close()
    assert path.read_bytes() == "\ufeff".encode() + expected.getvalue().encode("utf-8")
