"""Records stage: Python records (dicts, a pandas DataFrame) -> a table read like a file's.

``records_table`` gives the pipeline what ``loader.open_table`` gives it for a file: a header
and a lazy stream of numbered rows whose cells are loader ``Cell`` values (``""`` for blank,
never None or NaN). Rows are numbered from 1 in record order; every record becomes a row (none
is skipped as blank), so every record gets exactly one outcome. Records are read one at a time:
a generator of millions streams in constant memory.

The header is a DataFrame's columns, or the keys of the first dict; a later dict missing a key
has a blank cell there, and keys the first dict lacks are not columns. pandas is never imported
here: its values are recognised by their type's module.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from typing import Any

from importer.errors import InputError
from importer.table import Cell, Row


@dataclass
class RecordRow(Row):
    """A row that came from a record: it keeps the record and, for a DataFrame, its index."""

    label: Any = None  # the DataFrame index value; None for dicts
    record: Any = None  # the values as given: the dict itself, or the DataFrame row as a dict


@dataclass
class RecordsTable:
    """What the pipeline reads of a ``loader.Table``, for records."""

    header: list[str]
    rows: Iterator[Row]
    estimated_rows: int | None  # len() of a list or DataFrame; None for a generator
    blank_rows: int = 0  # records are never skipped as blank
    header_notes: list[str] = field(default_factory=list)
    delimiter: str | None = None  # a file's; records have none
    #: How the mapping's missing-column message names the columns.
    described: str = "the records"


def is_dataframe(value: object) -> bool:
    """A pandas DataFrame, recognised without importing pandas."""
    kind = type(value)
    return kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")


def records_table(source: Any, *, fallback_header: Iterable[str] = ()) -> RecordsTable:
    """A table over a DataFrame or an iterable of dicts. InputError if it is neither.

    ``fallback_header`` is the header of an empty iterable (no dict to take keys from): the
    mapping's own columns, so an empty batch imports nothing instead of failing.
    """
    if is_dataframe(source):
        return _frame_table(source)
    if isinstance(source, Mapping):
        raise InputError(
            "import_records() takes many records (a list or other iterable of dicts, or a"
            " DataFrame), not one dict; wrap it in a list: [record]"
        )
    if isinstance(source, str | bytes) or hasattr(source, "__fspath__"):
        raise InputError(
            f"import_records() takes records, not the file name {source!r}; use"
            " importer.import_file() for a file"
        )
    try:
        records = iter(source)
    except TypeError:
        raise InputError(
            "import_records() takes a list or other iterable of dicts, or a pandas DataFrame,"
            f" not {type(source).__name__}"
        ) from None
    estimated = len(source) if isinstance(source, Sized) else None
    first = next(records, None)
    if first is None:
        return RecordsTable(list(fallback_header), iter(()), 0)
    keys = list(first) if isinstance(first, Mapping) else []
    header = _header(keys, "the first record's keys")
    rows = _dict_rows(chain([first], records), keys)
    return RecordsTable(header, rows, estimated, described="the records (the first one's keys)")


def _header(keys: list[Any], what: str) -> list[str]:
    header = [str(key).strip() for key in keys]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError(
                f"{what} name the column {name!r} twice; give every column its own name"
            )
        seen.add(name)
    if not header:
        raise InputError(
            f"{what} hold no column names; give each record the columns the mapping uses,"
            " e.g. {'Email': ..., 'Date': ...}"
        )
    return header


def _dict_rows(records: Iterator[Any], keys: list[Any]) -> Iterator[Row]:
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            blank: list[Cell] = [""] * len(keys)
            error = (
                f"record {number} is a {type(record).__name__}, not a dict of column name ->"
                " value; give every record as a dict"
            )
            yield RecordRow(number, blank, error, record=record)
            continue
        get = record.get
        cells = [to_cell(get(key)) for key in keys]
        yield RecordRow(number, cells, record=record)


def _frame_table(frame: Any) -> RecordsTable:
    columns = list(frame.columns)
    header = _header(columns, "the DataFrame's columns")

    def rows() -> Iterator[Row]:
        # itertuples reads one row at a time, each value as its column's own type.
        for number, (label, *values) in enumerate(frame.itertuples(index=True, name=None), start=1):
            cells = [to_cell(value) for value in values]
            record = dict(zip(header, values, strict=True))
            yield RecordRow(number, cells, label=label, record=record)

    return RecordsTable(header, rows(), len(frame), described="the DataFrame's columns")


def to_cell(value: Any) -> Cell:
    """One Python, numpy or pandas value -> the loader's cell, meaning kept.

    None, NaN, NA and NaT are blank; whole floats (2405.0) are the integer 2405, as in the
    Excel reader; datetimes stay datetimes (a naive one is read in the mapping's time zone).
    """
    kind = value.__class__
    if kind is str or kind is int or kind is bool:
        return value
    if value is None:
        return ""
    if isinstance(value, float):  # numpy's float64 too
        return _float_cell(float(value))
    module = kind.__module__
    if module.startswith("pandas"):
        return _pandas_cell(value)
    if module == "numpy":
        return _numpy_cell(value)
    if isinstance(value, bool | datetime.date | datetime.time):
        return value
    if isinstance(value, int):  # an IntEnum: its number
        return int(value)
    if isinstance(value, str):  # a StrEnum: its text
        return str.__str__(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "" if value.is_nan() else str(value)
        return int(value) if value == value.to_integral_value() else str(value)
    return str(value)  # e.g. timedelta, UUID: what the user would see


def _float_cell(value: float) -> Cell:
    if math.isnan(value):
        return ""
    return int(value) if value.is_integer() else value


def _pandas_cell(value: Any) -> Cell:
    name = type(value).__name__
    if name in ("NAType", "NaTType"):
        return ""
    if isinstance(value, datetime.datetime):  # Timestamp, tz-aware or naive
        return value.to_pydatetime(warn=False)  # type: ignore[attr-defined]
    return str(value)  # Timedelta, Period, Interval: as shown


def _numpy_cell(value: Any) -> Cell:
    name = type(value).__name__
    if name == "datetime64":
        moment = value.astype("datetime64[us]").item()  # None for NaT
        return "" if moment is None else moment
    if name == "timedelta64":
        return "" if str(value) == "NaT" else str(value)
    plain = value.item() if hasattr(value, "item") else value
    if plain.__class__.__module__ == "numpy":
        return str(plain)
    return to_cell(plain)
