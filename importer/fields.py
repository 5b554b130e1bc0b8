"""One payload value from a row: its spec (``ValueSpec``), and the evaluator compiled from it.

A ``ValueSpec`` says where a value comes from (a column, a template, a constant) and how it is
finished (value map, default, date formats and time zone, integer ids, a contact or campaign
``Lookup`` for Eloqua to resolve). ``compile_spec`` turns a bound spec into a function of the
row's cells, built once per file so each row costs only the work its fields need. Every failure
is a RowError naming the column and the value, and saying how to fix it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from importer.dates import DateError, to_epoch_seconds
from importer.errors import RowError
from importer.table import Cell, UncalculatedFormula, cell_text

#: Properties Eloqua (and so the importer) requires on every activity.
REQUIRED_FIELDS = ("assetName", "assetType", "activityType", "activityDate", "contactId")
INTEGER_FIELDS = ("contactId", "campaignId")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_INTEGER_TEXT = re.compile(r"[+-]?\d+(\.0*)?")


@dataclass
class ValueSpec:
    """How one payload value is produced from a row.

    ``kind`` is ``column``, ``template`` or ``value``; ``source`` is the column name, the parsed
    template (a list of literal strings and column names) or the constant.
    """

    field: str
    kind: str
    source: Any
    value_map: dict[str, Any] | None = None
    default: Any = None
    required: bool = True
    formats: tuple[str, ...] = ()
    timezone: dt.tzinfo = dt.UTC
    #: "contact" or "campaign": the value is an email / a name, resolved to an id in Eloqua.
    lookup: str | None = None
    create_missing: bool = False
    on_multiple: str = "reject"
    #: firstName / lastName for contacts created by create_missing.
    # dataclasses.field: the attribute ``field`` above hides the function's name here.
    names: dict[str, ValueSpec] = dataclasses.field(default_factory=dict)
    # Filled in by Mapping.bind(): column name -> index in the row, and the compiled evaluator.
    columns: dict[str, int] = dataclasses.field(default_factory=dict)
    evaluate: Callable[[list[Cell]], Any] | None = None

    def column_names(self) -> list[str]:
        if self.kind == "column":
            return [self.source]
        if self.kind == "template":
            return [part.column for part in self.source if isinstance(part, Placeholder)]
        return []


@dataclass(frozen=True)
class Lookup:
    """A payload value Eloqua must supply: the id of the contact with this email, or of the
    campaign with this name. ``key`` is trimmed; emails are compared case-insensitively."""

    kind: str  # contact | campaign
    key: str
    create_missing: bool = False
    on_multiple: str = "reject"
    names: tuple[tuple[str, str], ...] = ()  # for a contact created by create_missing

    @property
    def cache_key(self) -> tuple[str, str]:
        return (self.kind, self.key.casefold())


@dataclass(frozen=True)
class Placeholder:
    column: str


_MISSING = object()
DATE_CACHE_SIZE = 4096  # exports repeat timestamps (a scan per minute): parse each once


def compile_spec(spec: ValueSpec) -> Callable[[list[Cell]], Any]:
    """The spec's evaluator: a function of the row's cells, the common case (a non-blank text
    cell) done inline and every other case left to ``_evaluate``, which gives the same values
    and the same errors."""
    slow = functools.partial(_evaluate, spec)
    if spec.lookup is not None or spec.default is not None:
        return slow
    if spec.kind == "value":
        constant = _evaluate(spec, [])  # a bad constant is a mapping error, found at bind
        return lambda cells: constant
    finish = _finisher(spec)
    if spec.kind == "template":
        return _compile_template(spec, finish, slow) if spec.value_map is None else slow
    index = spec.columns[spec.source]
    value_map = spec.value_map
    if value_map is not None:
        return _mapped_column(index, value_map, finish, slow)
    if spec.field in INTEGER_FIELDS:
        return _id_column(spec, index, slow)
    if spec.field == "activityDate":
        return _date_column(index, finish, slow)

    def column(cells: list[Cell]) -> Any:
        cell = cells[index]
        if cell.__class__ is str:
            cell = cell.strip()
            if cell:
                return cell  # what the text finisher gives a text
        return slow(cells)

    return column


def _mapped_column(
    index: int,
    value_map: dict[str, Any],
    finish: Callable[[Any], Any],
    slow: Callable[[list[Cell]], Any],
) -> Callable[[list[Cell]], Any]:
    def mapped(cells: list[Cell]) -> Any:
        cell = cells[index]
        if cell.__class__ is str:
            found = value_map.get(cell.strip().casefold(), _MISSING)
            if found is not _MISSING:
                return finish(found)
        return slow(cells)

    return mapped


def _id_column(
    spec: ValueSpec, index: int, slow: Callable[[list[Cell]], Any]
) -> Callable[[list[Cell]], Any]:
    def whole(cells: list[Cell]) -> Any:
        cell = cells[index]
        if cell.__class__ is str:
            cell = cell.strip()
            if cell:
                # Plain digits without a leading zero: the id itself, without _to_id's pattern.
                if cell.isascii() and cell.isdigit() and cell[0] != "0":
                    return int(cell)
                return _finish(spec, cell)
        return slow(cells)

    return whole


def _date_column(
    index: int, finish: Callable[[Any], Any], slow: Callable[[list[Cell]], Any]
) -> Callable[[list[Cell]], Any]:
    def date(cells: list[Cell]) -> Any:
        cell = cells[index]
        if cell.__class__ is str:
            cell = cell.strip()
            if cell:
                return finish(cell)
        return slow(cells)

    return date


def _compile_template(
    spec: ValueSpec, finish: Callable[[Any], Any], slow: Callable[[list[Cell]], Any]
) -> Callable[[list[Cell]], Any]:
    columns = [spec.columns[part.column] for part in spec.source if isinstance(part, Placeholder)]
    # The literal parts around a %s per placeholder: one formatting per row puts it together.
    layout = "".join(
        "%s" if isinstance(part, Placeholder) else part.replace("%", "%%") for part in spec.source
    )
    as_text = spec.field not in INTEGER_FIELDS and spec.field != "activityDate"

    def template(cells: list[Cell]) -> Any:
        texts = []
        for index in columns:
            cell = cells[index]
            if cell.__class__ is not str:
                return slow(cells)
            cell = cell.strip()
            if not cell:
                return slow(cells)
            texts.append(cell)
        text = layout % tuple(texts)
        # A text field's finisher gives a text back as it is: no call for it.
        return text if as_text else finish(text)

    return template


def _finisher(spec: ValueSpec) -> Callable[[Any], Any]:
    """``_finish`` for one field, with shortcuts for text and a cache for dates."""
    if spec.field == "activityDate":
        cache: dict[Any, str] = {}

        def date(value: Any) -> str:
            found = cache.get(value)
            if found is None:
                found = _finish(spec, value)
                if len(cache) >= DATE_CACHE_SIZE:
                    cache.clear()
                cache[value] = found
            return found

        return date
    if spec.field in INTEGER_FIELDS:

        def whole(value: Any) -> int:
            if value.__class__ is str and value.isascii() and value.isdigit() and value[0] != "0":
                return int(value)
            return _finish(spec, value)

        return whole

    def text(value: Any) -> str:
        return value if value.__class__ is str else _finish(spec, value)

    return text


def _evaluate(spec: ValueSpec, cells: list[Cell]) -> Any:
    """The payload value for ``spec``, or None to omit the property."""
    raw = _raw_value(spec, cells)
    if _is_blank(raw):
        if spec.default is not None:
            raw = spec.default
        elif spec.required:
            raise RowError(_blank_message(spec), column=_first_column(spec), value="", code="blank")
        else:
            return None
    elif spec.value_map is not None:
        raw = _apply_map(spec, raw)
    if spec.lookup is not None:
        return _lookup(spec, raw, cells)
    return _finish(spec, raw)


def _lookup(spec: ValueSpec, raw: Any, cells: list[Cell]) -> Any:
    key = cell_text(raw).strip()
    if spec.lookup == "campaign" and (not isinstance(raw, str) or key.isdecimal()):
        return _finish(spec, raw)  # already an id (a number in the column, e.g. 37)
    if spec.lookup == "contact" and "*" in key:
        column = _first_column(spec)
        raise RowError(
            _with_column(
                column,
                f"{key!r} contains '*', which Eloqua's search reads as a wildcard matching other"
                " contacts; fix the cell",
            ),
            column=column,
            value=raw,
            code="email-wildcard",
        )
    if spec.lookup == "contact" and not _EMAIL.fullmatch(key):
        column = _first_column(spec)
        raise RowError(
            _with_column(
                column,
                f"{key!r} is not a valid email address, so no Eloqua contact can be found for"
                " it; fix the cell",
            ),
            column=column,
            value=raw,
            code="bad-email",
        )
    names = tuple(
        (name, text)
        for name, named in spec.names.items()
        if (text := _evaluate(named, cells)) is not None
    )
    return Lookup(spec.lookup or "", key, spec.create_missing, spec.on_multiple, names)


def _raw_value(spec: ValueSpec, cells: list[Cell]) -> Any:
    if spec.kind == "value":
        return spec.source
    if spec.kind == "column":
        return _cell(spec, cells, spec.source)
    texts = []
    for part in spec.source:
        if isinstance(part, Placeholder):
            cell = _cell(spec, cells, part.column)
            if _is_blank(cell):
                # A blank placeholder makes the whole value blank, not a half-empty text.
                return ""
            texts.append(cell_text(cell))
        else:
            texts.append(part)
    return "".join(texts)


def _cell(spec: ValueSpec, cells: list[Cell], column: str) -> Cell:
    cell = cells[spec.columns[column]]
    if isinstance(cell, UncalculatedFormula):
        raise RowError(
            f"{column}: the cell holds a formula that was never calculated, so it has no value"
            " to import; open the file in Excel and save it (Excel then calculates the"
            " formulas), and import it again",
            column=column,
            value=cell,
            code="formula",
        )
    return _strip(cell)


def _finish(spec: ValueSpec, value: Any) -> Any:
    column = _first_column(spec)
    if spec.field == "activityDate":
        try:
            return str(to_epoch_seconds(value, formats=spec.formats, tz=spec.timezone))
        except DateError as exc:
            raise RowError(
                _with_column(column, str(exc)), column=column, value=value, code=exc.code
            ) from None
    if spec.field in INTEGER_FIELDS:
        return _to_id(spec, value, column)
    return cell_text(value)


def _apply_map(spec: ValueSpec, raw: Any) -> Any:
    assert spec.value_map is not None
    key = cell_text(raw).strip().casefold()
    if key in spec.value_map:
        return spec.value_map[key]
    choices = ", ".join(str(k) for k in spec.value_map)
    column = _first_column(spec)
    raise RowError(
        _with_column(
            column,
            f"value {cell_text(raw)!r} is not in the map for {spec.field} (expected one of:"
            f" {choices}); fix the cell or add it under 'map:' in the mapping",
        ),
        column=column,
        value=raw,
        code="not-in-map",
    )


def _to_id(spec: ValueSpec, value: Any, column: str | None) -> int:
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        number = int(value.strip().split(".")[0])
    if number is None or number <= 0:
        raise RowError(
            _with_column(
                column,
                f"{spec.field} must be a positive whole number (an Eloqua id), not"
                f" {cell_text(value)!r}",
            ),
            column=column,
            value=value,
            code="bad-id",
        )
    return number


def _strip(cell: Cell) -> Cell:
    return cell.strip() if isinstance(cell, str) else cell


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _first_column(spec: ValueSpec) -> str | None:
    names = spec.column_names()
    return names[0] if names else None


def _with_column(column: str | None, message: str) -> str:
    return f"{column}: {message}" if column else message


def _blank_message(spec: ValueSpec) -> str:
    if spec.kind == "template":
        blanks = ", ".join(f"'{name}'" for name in spec.column_names())
        return (
            f"{spec.field} uses the template columns {blanks} and one of them is blank; fill it"
            " in, or give the field a 'default:' in the mapping"
        )
    column = _first_column(spec)
    target = f"'{column}'" if column else spec.field
    # Eloqua's required fields refuse 'required: false' (see parse_mapping): never suggest it.
    optional = "" if spec.field in REQUIRED_FIELDS else " (or 'required: false')"
    return (
        f"{target} is blank but {spec.field} is required; fill it in, or give it a 'default:'"
        f"{optional} in the mapping"
    )
