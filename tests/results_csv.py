"""Reading the importer's results CSV in tests: one place, with the checks every test wants."""

from __future__ import annotations

import csv
from pathlib import Path


def read_results(path: Path) -> dict[int, dict[str, str]]:
    """Results lines by row number. Asserts the BOM Excel needs and one line per row."""
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "results must start with a UTF-8 BOM"
    with path.open(encoding="utf-8-sig", newline="") as file:
        lines = list(csv.DictReader(file))
    numbers = [int(line["row"]) for line in lines]
    assert len(numbers) == len(set(numbers)), "a row has two results lines"
    return dict(zip(numbers, lines, strict=True))
