"""Inference: from a spreadsheet as exported, a starter mapping (``eloqua-import init``).

Library functions, so a web page can call them as the command line does; nothing here prints,
and nothing reaches the network (the asset types Eloqua has are passed in as ``catalog``):

- ``find_header_row(rows)``: which row holds the column names, below any report preamble.
- ``guess_date_format(values)`` / ``date_formats(values)``: the strptime format every value fits.
- ``suggest_mapping(path, options)`` -> ``Suggestion``: a field-by-field proposal, with reasons.
- ``render_yaml(suggestion)``: the mapping file, every line commented for a first-time reader.
- ``locate_columns(path, columns)``: the row where all these columns are (for ``run``'s hints).
- ``locate_table(path)``: the sheet and header row of the main table (the web page's preview).

Invariants: ``render_yaml`` writes YAML that ``mapping.load_mapping`` reads back to the values
suggested (every text is quoted); a date format is suggested only if the real date code reads
every sampled value with it; a value the file cannot tell is a ``<FILL IN ...>`` placeholder,
which ``load_mapping`` refuses, so an unfinished mapping never sends anything.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.dates import DateError, formats_matching, load_timezone, to_epoch_seconds
from importer.errors import SetupError
from importer.loader import open_table, peek_rows
from importer.mapping import PLACEHOLDER_PREFIX
from importer.table import Cell, cell_text

#: Rows read to find the header, and data rows read to suggest the fields.
PEEK_ROWS = 1000
SAMPLE_ROWS = 500
#: Cell texts that stand for "no value" in exports (compared case-blind, trimmed).
PLACEHOLDER_CELLS = ("--", "-", "—", "n/a", "na", "null", "none", "(blank)", "(none)")
#: Status values that mean the person is not coming (Eventbrite, Zoom approval, CRMs).
NOT_ATTENDING = (
    "refunded", "cancelled", "canceled", "not attending", "declined", "denied", "deleted",
    "transferred", "rejected",
)  # fmt: skip

#: Activity types that say the person was there (attended, checked in, visited a booth...).
_ATTENDANCE = re.compile(r"attend|check|visit|join|scan|booth|demo|spoke|speak|present", re.I)
#: Date columns that say when a ticket was bought or a seat booked, not when anyone came.
_BOOKING_DATE = re.compile(r"order|purchase|bought|regist|sign[\s_-]*up|book", re.I)
#: Columns that may say when the person came (check-in, join, scan or arrival time).
_PRESENCE_DATE = re.compile(r"check[\s_-]*in|join|scan|arriv|attend(ed|ance)? (date|time)", re.I)
#: A status value saying the person was checked in at the door.
_CHECKED_IN = re.compile(r"checked[\s_-]*in", re.I)

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_NO_LETTERS = re.compile(r"[^A-Za-z\u00C0-\uFFFF]*")
_CONTACT_ID = re.compile(r"contact\s*[_-]?\s*id|eloqua.*\bid\b|^contactid$", re.IGNORECASE)
_ASSET_NAME = re.compile(r"event|webinar|topic|session|meeting|asset", re.IGNORECASE)
_ID_WORDS = re.compile(r"\bid\b|#|\bnumber\b|\bdate\b|\btime\b|\btype\b|\bstatus\b", re.I)


# --- the header row -------------------------------------------------------------------------


def find_header_row(rows: Sequence[Sequence[Cell]]) -> int:
    """The 1-based row holding the column names (``rows[0]`` is row 1); 1 if none stands out.

    The header is the row of labels followed by the longest run of rows of the same shape
    whose cells look like values, so a report's title, a "Topic, Webinar ID" block or a
    "Host Details" block above the attendee table are passed over.
    """
    return _best_table(rows)[0]


def _best_table(rows: Sequence[Sequence[Cell]]) -> tuple[int, int]:
    """(header row, data rows under it) of the longest table in ``rows``."""
    best = (1, 0)
    for index, cells in enumerate(rows):
        if not _is_header(cells):
            continue
        length = _run_length(rows, index)
        if length > best[1]:
            best = (index + 1, length)
    return best


def _trimmed(cells: Sequence[Cell]) -> list[Cell]:
    cells = list(cells)
    while cells and _blank(cells[-1]):
        cells.pop()
    return cells


def _blank(cell: Cell) -> bool:
    return isinstance(cell, str) and not cell.strip()


def _is_label(cell: Cell) -> bool:
    """Text that reads like a column name: letters, not a date, an email or a number."""
    if not isinstance(cell, str):
        return False
    text = cell.strip()
    if not text or len(text) > 60 or _NO_LETTERS.fullmatch(text) or _EMAIL.search(text):
        return False
    return not formats_matching(text)


def _is_header(cells: Sequence[Cell]) -> bool:
    cells = _trimmed(cells)
    filled = [cell for cell in cells if not _blank(cell)]
    if len(filled) < 2 or len(filled) * 10 < len(cells) * 6:
        return False
    names = [str(cell).strip().casefold() for cell in filled]
    return all(_is_label(cell) for cell in filled) and len(set(names)) == len(names)


def _run_length(rows: Sequence[Sequence[Cell]], header: int) -> int:
    width = len(_trimmed(rows[header]))
    count = 0
    for cells in rows[header + 1 :]:
        cells = _trimmed(cells)
        if not cells:
            continue  # blank lines inside a table are skipped by the loader too
        filled = sum(not _blank(cell) for cell in cells)
        if len(cells) > width or len(cells) * 2 < width or filled < 2:
            break
        if _is_header(cells) and len(cells) == width and count == 0:
            break  # a second header straight after: this one is a section title
        count += 1
    return count


def locate_columns(
    path: str | Path,
    columns: Iterable[str],
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> int | None:
    """The first row (1-based) holding every one of ``columns`` (trimmed, case-blind)."""
    wanted = {column.strip().casefold() for column in columns}
    if not wanted:
        return None
    peek = peek_rows(path, sheet=sheet, encoding=encoding, delimiter=delimiter, limit=PEEK_ROWS)
    rows = [cells for _, cells in peek.rows]
    best: tuple[int, int] | None = None  # (data rows below, row number): the longest table
    for index, cells in enumerate(rows):
        found = {cell_text(cell).strip().casefold() for cell in cells if not _blank(cell)}
        if wanted <= found:
            length = _run_length(rows, index)
            if best is None or length > best[0]:
                best = (length, index + 1)
    return best[1] if best else None


# --- dates ----------------------------------------------------------------------------------


def date_formats(values: Iterable[Cell]) -> list[str]:
    """The known formats that read every text value (date cells need none), best first.

    Day-first and month-first both remain when no value has a number over 12 in either place.
    An empty list when some text fits no known format (or there is no text at all).
    """
    texts = list(dict.fromkeys(v.strip() for v in values if isinstance(v, str) and v.strip()))
    if not texts:
        return []
    common = formats_matching(texts[0])
    for text in texts[1:]:
        if not common:
            break
        fitting = set(formats_matching(text))
        common = [fmt for fmt in common if fmt in fitting]
    return [fmt for fmt in common if _reads_all(texts, fmt)]


def _reads_all(texts: Sequence[str], fmt: str) -> bool:
    """The real date code, not only strptime, must read every value with ``fmt``."""
    try:
        for text in texts:
            to_epoch_seconds(text, formats=(fmt,), tz=dt.UTC)
    except DateError:
        return False
    return True


def guess_date_format(values: Iterable[Cell], *, day_first: bool | None = None) -> str | None:
    """The strptime format every text value matches, or None if no known format fits them all.

    When only the day/month order is left open, ``day_first`` decides (default month first).
    """
    found = date_formats(values)
    if not found:
        return None
    if day_first is not None and len(found) > 1 and _day_month_pair(found[0], found[1]):
        return found[1] if day_first else found[0]
    return found[0]


def _day_month_pair(first: str, second: str) -> bool:
    return first.replace("%m", "%X").replace("%d", "%m").replace("%X", "%d") == second


# --- the suggestion ---------------------------------------------------------------------------


@dataclass
class InitOptions:
    """What the user knows and the file cannot say. ``catalog``: Eloqua's asset types with
    their activity types, when known (``check``'s list), to validate and to list choices."""

    asset_type: str | None = None
    activity_type: str | None = None
    asset_name: str | None = None
    timezone: str | None = None
    sheet: str | int | None = None
    header_row: int | None = None
    catalog: dict[str, list[str]] | None = None


@dataclass
class FieldSuggestion:
    """One activity field: its YAML value (a text or a small dict) and why."""

    name: str
    value: Any
    why: str
    alternatives: list[str] = field(default_factory=list)
    placeholder: bool = False
    choices: list[str] = field(default_factory=list)  # what Eloqua has, for placeholders


@dataclass
class SkipSuggestion:
    rule: dict[str, Any]
    why: str
    active: bool = True


@dataclass
class Suggestion:
    """A proposed mapping for one file, with the reasons for each choice."""

    input_name: str
    header: list[str]
    header_row: int
    header_why: str
    sheet: str | None = None
    delimiter: str | None = None
    fields: list[FieldSuggestion] = field(default_factory=list)
    blank_values: list[str] = field(default_factory=list)
    blank_why: str = ""
    skip_rules: list[SkipSuggestion] = field(default_factory=list)
    unused: list[tuple[str, str]] = field(default_factory=list)  # column, an example value
    notes: list[str] = field(default_factory=list)
    #: Choices that would likely import wrong data (an order date for an attendance).
    warnings: list[str] = field(default_factory=list)

    @property
    def placeholders(self) -> list[str]:
        """The fields still to fill in by hand."""
        names = []
        for item in self.fields:
            if not item.placeholder:
                continue
            value = item.value
            if isinstance(value, dict) and not str(value.get("column", "")).startswith(
                PLACEHOLDER_PREFIX
            ):
                names.append(f"{item.name}.timezone")  # the column is known, the zone is not
            else:
                names.append(item.name)
        return names

    def field(self, name: str) -> FieldSuggestion | None:
        return next((f for f in self.fields if f.name == name), None)

    def document(self) -> dict[str, Any]:
        """The mapping as plain data (what render_yaml writes, without the comments)."""
        doc: dict[str, Any] = {"version": 1}
        source: dict[str, Any] = {}
        if self.sheet is not None:
            source["sheet"] = self.sheet
        source["header_row"] = self.header_row
        if self.delimiter is not None:
            source["delimiter"] = self.delimiter
        doc["source"] = source
        if self.blank_values:
            doc["blank_values"] = list(self.blank_values)
        active = [s.rule for s in self.skip_rules if s.active]
        if active:
            doc["skip_if"] = active
        doc["activity"] = {f.name: f.value for f in self.fields}
        return doc


@dataclass
class _Column:
    index: int
    name: str
    values: list[Cell]  # non-blank sampled values, blank_values removed
    blanks: int
    placeholders: dict[str, str]  # folded -> as written

    @property
    def folded(self) -> str:
        return self.name.casefold()

    def texts(self) -> list[str]:
        return [cell_text(v).strip() for v in self.values]

    def share(self, test: Any) -> float:
        return sum(1 for v in self.values if test(v)) / len(self.values) if self.values else 0.0


def suggest_mapping(path: str | Path, options: InitOptions | None = None) -> Suggestion:
    """Read the top of ``path`` and propose a mapping. Raises InputError for unreadable files
    and SetupError when a flag names an asset or activity type ``catalog`` does not have."""
    options = options or InitOptions()
    path = Path(path)
    _check_flags(options)
    sheet, header_row, header_why, preamble = _locate_table(path, options)
    with open_table(path, sheet=sheet, header_row=header_row) as table:
        rows = [row.cells for _, row in zip(range(SAMPLE_ROWS), table.rows, strict=False)]
        header, kind, sheet_title = list(table.header), table.kind, table.sheet
        delimiter = table.delimiter
    peek_delimiter = None
    if kind == "csv":
        peek_delimiter = peek_rows(path, limit=PEEK_ROWS).delimiter
    suggestion = Suggestion(
        input_name=path.name,
        header=header,
        header_row=header_row,
        header_why=header_why,
        sheet=sheet_title if kind != "csv" and sheet is not None else None,
        delimiter=peek_delimiter if peek_delimiter not in (None, delimiter) else None,
    )
    columns = _profile(header, rows, suggestion)
    _suggest_fields(suggestion, columns, options, preamble)
    _suggest_skips(suggestion, columns, rows, options)
    _warn_booking_date(suggestion, columns, options)
    used = _used_columns(suggestion)
    suggestion.unused = [
        (c.name, c.texts()[0] if c.values else "") for c in columns if c.name not in used
    ]
    return suggestion


def _check_flags(options: InitOptions) -> None:
    if options.timezone is not None:
        try:
            options.timezone = load_timezone(options.timezone).key
        except ValueError as exc:
            raise SetupError(f"--timezone: {exc}") from None
    catalog = options.catalog
    if not catalog or options.asset_type is None:
        return
    known = {name.casefold(): name for name in catalog}
    asset = known.get(options.asset_type.strip().casefold())
    if asset is None:
        raise SetupError(
            f"--asset-type {options.asset_type!r} is not set up in Eloqua; its external asset"
            f" types are: {', '.join(catalog)}"
        )
    options.asset_type = asset
    activities = {name.casefold(): name for name in catalog[asset]}
    if options.activity_type is not None and activities:
        activity = activities.get(options.activity_type.strip().casefold())
        if activity is None:
            raise SetupError(
                f"--activity-type {options.activity_type!r} is not set up for {asset!r}; its"
                f" activity types are: {', '.join(catalog[asset])}"
            )
        options.activity_type = activity


def locate_table(
    path: str | Path, *, sheet: str | int | None = None, header_row: int | None = None
) -> tuple[str | int | None, int, str]:
    """(sheet, header row, why) of the file's main table, as ``suggest_mapping`` finds them:
    the sheet with the longest table (None for a CSV, or when given none and there is one)."""
    found, number, why, _ = _locate_table(
        Path(path), InitOptions(sheet=sheet, header_row=header_row)
    )
    return found, number, why


def _locate_table(
    path: Path, options: InitOptions
) -> tuple[str | int | None, int, str, list[list[Cell]]]:
    """(sheet, header row, why, the rows above the header) for the file's main table."""
    peek = peek_rows(path, sheet=options.sheet, limit=PEEK_ROWS)
    sheet: str | int | None = options.sheet
    if peek.kind != "csv" and options.sheet is None and len(peek.sheets) > 1:
        scored = []
        for title in peek.sheets:
            rows = [cells for _, cells in peek_rows(path, sheet=title, limit=PEEK_ROWS).rows]
            scored.append((_best_table(rows)[1], title))
        best = max(scored, key=lambda pair: pair[0])[1]  # max keeps the first of a tie
        if best != peek.sheet:
            peek = peek_rows(path, sheet=best, limit=PEEK_ROWS)
            sheet = best
    rows = [cells for _, cells in peek.rows]
    if options.header_row is not None:
        number, why = options.header_row, "given with --header-row"
    else:
        number = find_header_row(rows)
        why = _header_reason(rows, number)
    if sheet is not None and peek.kind != "csv":
        why += f"; the table is on the sheet {peek.sheet!r}"
        if options.sheet is None:
            why += " (the sheet with the longest table)"
    return sheet, number, why, [list(r) for r in rows[: number - 1]]


def _header_reason(rows: Sequence[Sequence[Cell]], number: int) -> str:
    if number == 1:
        return "the column names are on the first row"
    above = [cell_text(r[0]).strip() for r in rows[: number - 1] if r and not _blank(r[0])]
    shown = ", ".join(f'"{text}"' for text in above[:3]) + (", ..." if len(above) > 3 else "")
    return f"the column names are on row {number}: the rows above are the report's preamble" + (
        f" ({shown})" if shown else ""
    )


def _profile(header: list[str], rows: list[list[Cell]], suggestion: Suggestion) -> list[_Column]:
    columns = []
    seen_placeholders: dict[str, str] = {}
    for index, name in enumerate(header):
        values: list[Cell] = []
        blanks = 0
        placeholders: dict[str, str] = {}
        for cells in rows:
            cell = cells[index]
            if isinstance(cell, str):
                text = cell.strip()
                if text.casefold() in PLACEHOLDER_CELLS:
                    placeholders.setdefault(text.casefold(), text)
                    blanks += 1
                    continue
                if not text:
                    blanks += 1
                    continue
            values.append(cell)
        columns.append(_Column(index, name, values, blanks, placeholders))
        for folded, text in placeholders.items():
            seen_placeholders.setdefault(folded, text)
    if seen_placeholders:
        suggestion.blank_values = list(seen_placeholders.values())
        where = [c.name for c in columns if c.placeholders]
        suggestion.blank_why = (
            "cells holding only "
            + " or ".join(f'"{t}"' for t in suggestion.blank_values)
            + " mean no value (seen in "
            + ", ".join(where[:4])
            + (", ..." if len(where) > 4 else "")
            + ")"
        )
    return columns


# --- the fields -------------------------------------------------------------------------------


def _suggest_fields(
    suggestion: Suggestion, columns: list[_Column], options: InitOptions, preamble: list[list[Cell]]
) -> None:
    add = suggestion.fields.append
    add(_asset_name(columns, options, preamble))
    add(_constant_or_placeholder("assetType", options.asset_type, options))
    add(_activity_type(columns, options))
    add(_activity_date(columns, options, preamble, suggestion))
    add(_contact(columns))
    campaign = _campaign(columns)
    if campaign is not None:
        add(campaign)


def _names(columns: Iterable[_Column]) -> list[str]:
    return [c.name for c in columns]


def _asset_name(
    columns: list[_Column], options: InitOptions, preamble: list[list[Cell]]
) -> FieldSuggestion:
    candidates = [
        c
        for c in columns
        if _ASSET_NAME.search(c.name)
        and not _ID_WORDS.search(c.name)
        and c.values
        and all(isinstance(v, str) for v in c.values)
    ]
    if options.asset_name is not None:
        why = "given with --asset-name"
        if candidates:
            why += f"; the column {candidates[0].name!r} could be used instead"
        return FieldSuggestion("assetName", _template_safe(options.asset_name), why)
    if candidates:
        best = candidates[0]
        distinct = list(dict.fromkeys(best.texts()))
        shown = ", ".join(f'"{t}"' for t in distinct[:3])
        return FieldSuggestion(
            "assetName",
            {"column": best.name},
            f"the column {best.name!r} names the event ({shown})",
            _names(candidates[1:]),
        )
    found = _preamble_value(preamble, ("topic", "webinar name", "event name", "event", "webinar"))
    if found:
        return FieldSuggestion(
            "assetName", _template_safe(found), "the report's title block names it (Topic)"
        )
    return FieldSuggestion(
        "assetName",
        f"{PLACEHOLDER_PREFIX}: the event or webinar name>",
        "no column names the event: type its name (or pass --asset-name)",
        placeholder=True,
    )


def _constant_or_placeholder(
    name: str, given: str | None, options: InitOptions, flag: str = "--asset-type"
) -> FieldSuggestion:
    choices = list(options.catalog or [])
    if name == "activityType":
        flag = "--activity-type"
        asset = options.asset_type
        if options.catalog and asset in options.catalog:
            choices = list(options.catalog[asset])
        elif options.catalog:
            choices = sorted({a for acts in options.catalog.values() for a in acts})
    if given is not None:
        return FieldSuggestion(name, _template_safe(given), f"given with {flag}", choices=choices)
    what = "asset type" if name == "assetType" else "activity type"
    return FieldSuggestion(
        name,
        f"{PLACEHOLDER_PREFIX}: {what}>",
        f"the file cannot tell the {what}: replace the placeholder (or pass {flag})",
        placeholder=True,
        choices=choices,
    )


def _activity_type(columns: list[_Column], options: InitOptions) -> FieldSuggestion:
    suggestion = _constant_or_placeholder("activityType", options.activity_type, options)
    actions = [c for c in columns if re.search(r"^(action|activity( type)?)$", c.folded)]
    if actions:
        values = list(dict.fromkeys(actions[0].texts()))[:5]
        suggestion.alternatives = [
            f"{actions[0].name} (holds {', '.join(values)}: map them with"
            " {column: ..., map: {value: Activity Type}})"
        ]
    return suggestion


_DATE_WORDS = (
    ("join", 5), ("scan", 5), ("check", 4), ("attend", 4), ("visit", 4), ("activity", 4),
    ("date", 2), ("time", 2), ("regist", 1), ("order", 1), ("created", 1), ("leave", -3),
    ("left", -3), ("end", -3), ("generated", -3), ("modified", -3), ("updated", -3),
    ("birth", -6),
)  # fmt: skip


def _date_score(column: _Column, activity_type: str | None) -> int:
    score = sum(points for word, points in _DATE_WORDS if word in column.folded)
    if activity_type and "regist" in activity_type.casefold():
        score += 6 * any(word in column.folded for word in ("regist", "order", "signup"))
    return score


def _date_columns(columns: list[_Column]) -> list[tuple[_Column, list[str]]]:
    """Columns whose every value is a date: (column, the formats their text needs)."""
    found = []
    for column in columns:
        if not column.values or isinstance(column.values[0], bool):
            continue
        cells = [v for v in column.values if isinstance(v, dt.datetime | dt.date)]
        texts = [v for v in column.values if isinstance(v, str)]
        if len(cells) + len(texts) != len(column.values):
            continue
        formats = date_formats(texts) if texts else []
        if texts and not formats:
            continue
        found.append((column, formats))
    return found


def _activity_date(
    columns: list[_Column], options: InitOptions, preamble: list[list[Cell]], sugg: Suggestion
) -> FieldSuggestion:
    dates = _date_columns(columns)
    if not dates:
        return FieldSuggestion(
            "activityDate",
            {"column": f"{PLACEHOLDER_PREFIX}: the date column>"},
            "no column holds dates in a known layout: name the column, and add format:",
            placeholder=True,
        )
    ranked = sorted(dates, key=lambda d: -_date_score(d[0], options.activity_type))
    column, formats = ranked[0]
    value: dict[str, Any] = {"column": column.name}
    why = f"the column {column.name!r} holds dates"
    zone, zone_why = _zone(options, preamble)
    if formats:
        day_first = None if zone is None else not zone.startswith("America/")
        chosen = guess_date_format(column.values, day_first=day_first) or formats[0]
        value["format"] = chosen
        why += f" like {column.texts()[0]!r}; every sampled value fits the format"
        if len(formats) > 1 and _day_month_pair(formats[0], formats[1]):
            sugg.notes.append(
                f"activityDate: no value in {column.name!r} has a day over 12, so the day/month"
                f" order is a guess ({chosen!r}): check it against a date you know"
            )
    else:
        why += " (Excel date cells: no format needed)"
    needs_zone = not formats or "%z" not in value.get("format", "")
    placeholder = False
    if needs_zone:
        if zone is None:
            value["timezone"] = f"{PLACEHOLDER_PREFIX}: time zone, e.g. America/New_York>"
            zone_why = (
                "the times carry no zone and the file does not say it: replace the"
                " placeholder with an IANA name (or pass --timezone)"
            )
            placeholder = True
        else:
            value["timezone"] = zone
    return FieldSuggestion(
        "activityDate",
        value,
        why + (f"; time zone: {zone_why}" if needs_zone else ""),
        [f"{c.name}" for c, _ in ranked[1:]],
        placeholder=placeholder,
    )


def _zone(options: InitOptions, preamble: list[list[Cell]]) -> tuple[str | None, str]:
    if options.timezone:
        return options.timezone, "given with --timezone"
    found = _preamble_value(preamble, ("time zone", "timezone"))
    if found:
        try:
            return load_timezone(found).key, "from the report's title block"
        except ValueError:
            pass
    return None, ""


def _contact(columns: list[_Column]) -> FieldSuggestion:
    ids = [
        c
        for c in columns
        if _CONTACT_ID.search(c.name) and c.values and c.share(_is_positive_id) == 1.0
    ]
    emails = sorted(
        (c for c in columns if c.values and c.share(_is_email) >= 0.8),
        key=lambda c: -_email_score(c),
    )
    if ids:
        return FieldSuggestion(
            "contactId",
            {"column": ids[0].name},
            f"the column {ids[0].name!r} holds Eloqua contact ids (whole numbers)",
            _names(ids[1:]) + [f"{c.name} (look up by email)" for c in emails],
        )
    if emails:
        best = emails[0]
        return FieldSuggestion(
            "contactId",
            {"lookup": "contact", "column": best.name},
            f"the column {best.name!r} holds email addresses: each is looked up in Eloqua"
            " (an email Eloqua does not know makes that row 'rejected')",
            _names(emails[1:]),
        )
    return FieldSuggestion(
        "contactId",
        {"lookup": "contact", "column": f"{PLACEHOLDER_PREFIX}: the email column>"},
        "no column holds email addresses or contact ids: name the email column",
        placeholder=True,
    )


def _email_score(column: _Column) -> int:
    name = column.folded
    return (
        2 * ("mail" in name)
        + ("attendee" in name)
        - any(word in name for word in ("buyer", "purchaser", "host", "order"))
    )


def _is_email(value: Cell) -> bool:
    return isinstance(value, str) and bool(_EMAIL.fullmatch(value.strip()))


def _is_positive_id(value: Cell) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value > 0 and float(value).is_integer()
    return isinstance(value, str) and value.strip().isdecimal() and int(value) > 0


def _campaign(columns: list[_Column]) -> FieldSuggestion | None:
    found = [c for c in columns if "campaign" in c.folded and c.values]
    if not found:
        return None
    column = found[0]
    value: dict[str, Any] = {"column": column.name}
    if column.share(_is_positive_id) == 1.0:
        why = f"the column {column.name!r} holds Eloqua campaign ids"
    else:
        value = {"lookup": "campaign", "column": column.name}
        why = f"the column {column.name!r} holds campaign names, looked up in Eloqua"
    if column.blanks:
        value["required"] = False
        why += "; some cells are blank: those activities get no campaign"
    return FieldSuggestion("campaignId", value, why, _names(found[1:]))


def _preamble_value(preamble: list[list[Cell]], labels: Sequence[str]) -> str | None:
    """A value the title block gives for one of ``labels``: beside it, or below it."""
    for position, cells in enumerate(preamble):
        for index, cell in enumerate(cells):
            label, colon, rest = cell_text(cell).strip().partition(":")
            if label.strip().casefold() not in labels:
                continue
            if colon and rest.strip():
                return rest.strip()  # "Webinar: Data Privacy in 2026" in one cell
            below = preamble[position + 1] if position + 1 < len(preamble) else []
            row_is_labels = all(_is_label(c) for c in cells if not _blank(c))
            if row_is_labels and index < len(below) and not _blank(below[index]):
                return cell_text(below[index]).strip()
            if index + 1 < len(cells) and not _blank(cells[index + 1]):
                return cell_text(cells[index + 1]).strip()
    return None


def _template_safe(text: str) -> str:
    """A constant with braces would read as a {Column} template: double them."""
    return text.replace("{", "{{").replace("}", "}}")


# --- rows left out ----------------------------------------------------------------------------


def _suggest_skips(
    suggestion: Suggestion, columns: list[_Column], rows: list[list[Cell]], options: InitOptions
) -> None:
    registering = bool(options.activity_type and "regist" in options.activity_type.casefold())
    for column in columns:
        texts = {t.casefold(): t for t in column.texts()}
        if column.folded.rstrip("?") == "attended" and set(texts) <= {"yes", "no"}:
            if "no" in texts:
                count = sum(1 for t in column.texts() if t.casefold() == "no")
                why = f"{count} sampled rows say {column.name} No: people who never joined"
                if registering:
                    why += " (kept: a registration is what is imported)"
                rule: dict[str, Any] = {"column": column.name, "equals": texts["no"]}
                suggestion.skip_rules.append(SkipSuggestion(rule, why, active=not registering))
        elif "status" in column.folded:
            leaving = [t for f, t in texts.items() if f in NOT_ATTENDING]
            if leaving:
                rule = {"column": column.name, "in": leaving}
                why = f"{column.name} {' / '.join(leaving)}: not coming, so no activity"
                suggestion.skip_rules.append(SkipSuggestion(rule, why))
            checked_in = [t for t in texts.values() if _CHECKED_IN.fullmatch(t)]
            if checked_in and _means_attendance(options.activity_type):
                suggestion.skip_rules.append(_only_checked_in(column, checked_in, options))
    _suggest_blank_date_rule(suggestion, columns, rows)


def _means_attendance(activity_type: str | None) -> bool:
    """Does the activity type say the person was there (not only registered)?"""
    if not activity_type or "regist" in activity_type.casefold():
        return False
    return bool(_ATTENDANCE.search(activity_type))


def _only_checked_in(
    column: _Column, checked_in: list[str], options: InitOptions
) -> SkipSuggestion:
    """Active: a ticket holder who never checked in did not attend. A row left out is
    reported 'skipped' and can be imported later; an activity created wrongly stays."""
    others: dict[str, int] = {}
    for text in column.texts():
        folded = text.casefold()
        if not _CHECKED_IN.fullmatch(text) and folded not in NOT_ATTENDING:
            others[text] = others.get(text, 0) + 1
    why = f"{options.activity_type!r} means they came, and {column.name} says who checked in"
    if others:
        shown = ", ".join(f"{count} {text!r}" for text, count in others.items())
        why += f"; sampled rows with another status ({shown}) are left out"
    why += ". Remove this rule if check-in was not recorded at this event"
    rule = {"column": column.name, "not_in": checked_in}
    return SkipSuggestion(rule, why)


def _warn_booking_date(
    suggestion: Suggestion, columns: list[_Column], options: InitOptions
) -> None:
    """An order or registration date dates an attendance wrongly: say so, and what to use."""
    date = suggestion.field("activityDate")
    if date is None or not _means_attendance(options.activity_type):
        return
    chosen = str(date.value.get("column", "")) if isinstance(date.value, dict) else ""
    if chosen.startswith(PLACEHOLDER_PREFIX) or not _BOOKING_DATE.search(chosen):
        return
    presence = [name for name in date.alternatives if _PRESENCE_DATE.search(name)]
    presence += [
        c.name
        for c in columns
        if c.name != chosen
        and c.name not in presence
        and _PRESENCE_DATE.search(c.name)
        and re.search(r"date|time", c.folded)
    ]
    warning = (
        f"activityDate reads {chosen!r}, which looks like when the ticket was ordered or the"
        f" place booked, not when the person came: each {options.activity_type!r} activity would"
        " be dated then"
    )
    if not any(s.active and _says_who_came(s.rule) for s in suggestion.skip_rules):
        warning += ", and nothing in the file says who came, so every row would count"
    warning += ". "
    if presence:
        warning += (
            f"If {presence[0]!r} holds when they came, use it: change activityDate's column to"
            f" {presence[0]!r}."
        )
    else:
        warning += (
            "The file has no check-in or join time column: to import these rows as sign-ups, run"
            f" init again with --activity-type {_shown_flag(_registration_type(options))}; or"
            " keep it, knowing the date is not the day they came."
        )
    suggestion.warnings.append(warning)
    date.why += " (WARNING: see the top of this file)"


def _says_who_came(rule: dict[str, Any]) -> bool:
    """Keeps only who checked in (Eventbrite), or leaves out "Attended: No" (Zoom)."""
    return "not_in" in rule or str(rule["column"]).casefold().rstrip("?") == "attended"


def _shown_flag(value: str) -> str:
    return f'"{value}"' if re.search(r"[^\w.-]", value) else value


def _registration_type(options: InitOptions) -> str:
    """The asset type's registration-like activity type in Eloqua, else "Registered"."""
    catalog = options.catalog or {}
    known = catalog.get(options.asset_type or "", [])
    return next((name for name in known if "regist" in name.casefold()), "Registered")


def _suggest_blank_date_rule(
    suggestion: Suggestion, columns: list[_Column], rows: list[list[Cell]]
) -> None:
    date = suggestion.field("activityDate")
    if date is None or date.placeholder:
        return
    by_name = {c.name: c for c in columns}
    index = by_name[date.value["column"]].index
    blanks = {text.casefold() for text in suggestion.blank_values}
    active = [s.rule for s in suggestion.skip_rules if s.active]
    left = 0
    for cells in rows:
        if any(_rule_matches(rule, cells, by_name, blanks) for rule in active):
            continue
        cell = cells[index]
        left += isinstance(cell, str) and (not cell.strip() or cell.strip().casefold() in blanks)
    if left:
        rule = {"column": date.value["column"], "blank": True}
        why = (
            f"{left} sampled rows have no {date.value['column']}: they would be 'invalid';"
            " remove the # to skip them instead"
        )
        suggestion.skip_rules.append(SkipSuggestion(rule, why, active=False))


def _rule_matches(
    rule: dict[str, Any], cells: list[Cell], by_name: dict[str, _Column], blanks: set[str]
) -> bool:
    text = cell_text(cells[by_name[rule["column"]].index]).strip().casefold()
    if "equals" in rule:
        return text == str(rule["equals"]).casefold()
    if "in" in rule:
        return text in {str(v).casefold() for v in rule["in"]}
    if "not_in" in rule:
        return text not in {str(v).casefold() for v in rule["not_in"]}
    return not text or text in blanks


def _used_columns(suggestion: Suggestion) -> set[str]:
    used = {str(s.rule["column"]) for s in suggestion.skip_rules if s.active}
    for item in suggestion.fields:
        if isinstance(item.value, dict) and "column" in item.value:
            used.add(str(item.value["column"]))
    return used


# --- YAML -------------------------------------------------------------------------------------

_FIELD_HELP = {
    "assetName": "the thing the activity happened at: the event or webinar",
    "assetType": "the kind of asset, one of the External Asset Types set up in Eloqua",
    "activityType": "what the person did, one of the asset type's activity types in Eloqua",
    "activityDate": "when it happened",
    "contactId": "which Eloqua contact it belongs to",
    "campaignId": "the Eloqua campaign it counts towards (optional)",
}
_KEY_HELP = {
    "column": "read from this column of the file",
    "lookup": "find the id in Eloqua by what the column holds",
    "format": "how the dates are written (%d day, %m month, %Y year, %H:%M time, %p AM/PM)",
    "timezone": "the clock the times were written in",
    "required": "a blank cell is fine: the field is then left out",
}


def q(value: Any) -> str:
    """One YAML scalar, safely: every text double-quoted (JSON strings are YAML too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _flow(rule: dict[str, Any]) -> str:
    parts = []
    for key, value in rule.items():
        shown = "[" + ", ".join(q(v) for v in value) + "]" if isinstance(value, list) else q(value)
        parts.append(f"{key}: {shown}")
    return "{" + ", ".join(parts) + "}"


def _comment(text: str) -> str:
    return " ".join(text.split())


def render_yaml(
    suggestion: Suggestion, mapping_name: str = "THIS_FILE", *, command: str | None = None
) -> str:
    """The suggested mapping as a YAML file, every line explained for a first-time reader.

    ``command`` is the dry run its first lines show (``init`` passes the one it prints); by
    default one built from the input's and ``mapping_name``'s names.
    """
    lines = _intro(suggestion, command or _dry_run_command(suggestion, mapping_name))
    lines += ["", "version: 1  # the mapping file format; always 1", ""]
    lines.append("source:  # where the table is in the file")
    if suggestion.sheet is not None:
        lines.append(f"  sheet: {q(suggestion.sheet)}  # the Excel sheet to read")
    lines.append(f"  header_row: {suggestion.header_row}  # {_comment(suggestion.header_why)}")
    if suggestion.delimiter is not None:
        lines.append(f"  delimiter: {q(suggestion.delimiter)}  # the character between cells")
    if suggestion.blank_values:
        shown = "[" + ", ".join(q(v) for v in suggestion.blank_values) + "]"
        lines += ["", f"blank_values: {shown}  # {_comment(suggestion.blank_why)}"]
    if suggestion.skip_rules:
        lines += ["", "# Rows left out on purpose: reported 'skipped', never sent, not errors."]
        if any(s.active for s in suggestion.skip_rules):
            lines.append("skip_if:  # a row matching any rule below is skipped")
        else:
            lines.append("# skip_if:  (remove the # here and on a rule below to use it)")
        for skip in suggestion.skip_rules:
            mark = "" if skip.active else "# "
            lines.append(f"  {mark}- {_flow(skip.rule)}  # {_comment(skip.why)}")
    lines += ["", "activity:  # one Eloqua External Activity per row of the table"]
    for item in suggestion.fields:
        lines += _field_lines(item)
    lines += _unused_lines(suggestion)
    return "\n".join(lines) + "\n"


def _dry_run_command(suggestion: Suggestion, mapping_name: str) -> str:
    return f"eloqua-import run {suggestion.input_name} --mapping {mapping_name} --dry-run"


def _intro(suggestion: Suggestion, command: str) -> list[str]:
    name = suggestion.input_name
    lines = [
        f"# Mapping for {name}, suggested by 'eloqua-import init': which cells become which",
        "# Eloqua activity fields. How to read it:",
        "#   - Everything after a # is a comment for you; the importer ignores it.",
        "#   - 'name: value' sets something; lines indented under it belong to it.",
        "#   - Text in double quotes is used exactly as written.",
        f"# Try it without sending anything:  {command}",
    ]
    if suggestion.placeholders:
        lines.append(
            "# STILL TO FILL IN (the import stops until you do): "
            + ", ".join(suggestion.placeholders)
            + ". Search this file for FILL IN."
        )
    for warning in suggestion.warnings:
        lines += _wrapped(f"WARNING: {warning}", "# ")
    lines += [f"# NOTE: {_comment(note)}" for note in suggestion.notes]
    return lines


def _field_lines(item: FieldSuggestion) -> list[str]:
    lines = [""]
    label = "FILL IN" if item.placeholder else "Why"
    lines += _wrapped(f"{label}: {item.why}", "  # ")
    if item.choices:
        lines += _wrapped(f"Eloqua has: {', '.join(item.choices)}", "  # ")
    if item.alternatives:
        lines += _wrapped(f"Other candidates: {', '.join(item.alternatives)}", "  # ")
    help_text = _FIELD_HELP.get(item.name, "")
    if not isinstance(item.value, dict):
        lines.append(f"  {item.name}: {q(item.value)}  # {help_text}")
        return lines
    lines.append(f"  {item.name}:  # {help_text}")
    for key, value in item.value.items():
        lines.append(f"    {key}: {q(value)}  # {_KEY_HELP.get(key, '')}")
    return lines


def _wrapped(text: str, prefix: str) -> list[str]:
    return textwrap.wrap(_comment(text), 96, initial_indent=prefix, subsequent_indent=prefix + "  ")


def _unused_lines(suggestion: Suggestion) -> list[str]:
    if not suggestion.unused:
        return []
    lines = [
        "",
        "# Columns not used (listed so you can check none is missing). To send one to an",
        "# activity field, add under activity: (the id is the field's id in Eloqua)",
        '#   fieldValues:\n#     - {id: "12", column: "Column Name"}',
    ]
    for name, example in suggestion.unused:
        lines.append(f"#   {q(name)}" + (f"  e.g. {q(example)}" if example else "  (blank)"))
    return lines
