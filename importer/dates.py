"""Dates and times -> Unix epoch seconds, with explicit formats and time zones.

Eloqua links an activity to a contact by its date, and an activity can never be corrected
afterwards, so this module refuses to guess: a day/month order, a local time that a clock
change skips or repeats, or a number that might be milliseconds is an error that says how to
make the value unambiguous.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import difflib
import functools
import math
import re
import zoneinfo
from collections.abc import Sequence

from importer.table import Cell

UTC = datetime.UTC

EPOCH_SECONDS_MIN = 100_000_000  # 1973-03-03: smaller numbers are not plausible epoch times
EPOCH_SECONDS_MAX = 10_000_000_000  # year 2286: larger ones are milliseconds or nonsense
# Excel serial numbers are read as dates only from 1970 to 2173: a number like 2026 or 930 in a
# date column is far more likely a year or a typo than a date in 1905 or 1902.
EXCEL_SERIAL_MIN = 25_569  # 1970-01-01
EXCEL_SERIAL_MAX = 100_000  # year 2173

_DIGITS = re.compile(r"\d+")
# d/m/y or m/d/y with any common separator, optionally followed by a time.
_DAY_MONTH = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T](.*))?")
_TIME = re.compile(r"\d{1,2}:\d{2}(:\d{2})?(\s*[AaPp][Mm])?")
_EXAMPLE_FORMAT = '"%m/%d/%Y %H:%M"'

# The date and time layouts exports use, as strptime formats. Order is preference: month-first
# before day-first (only values over 12 tell them apart), %b before %B ("May" is both).
_DATE_LAYOUTS = (
    "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%m-%d-%Y", "%d-%m-%Y", "%Y/%m/%d",
    "%m/%d/%y", "%d/%m/%y", "%d.%m.%y", "%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y",
    "%d-%b-%Y", "%d-%b-%y", "%Y%m%d",
)  # fmt: skip
_TIME_LAYOUTS = (
    "", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p", " %I:%M%p", " %I:%M:%S%p",
    ", %I:%M %p", ", %I:%M:%S %p", " %H:%M:%S.%f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S.%f",
)  # fmt: skip
#: Every format ``formats_matching`` knows: each date layout, with each time layout, and
#: the ISO-looking ones also with a UTC offset (``Z``, ``+01:00``).
KNOWN_FORMATS: tuple[str, ...] = tuple(
    date + time + zone
    for date in _DATE_LAYOUTS
    for time in _TIME_LAYOUTS
    for zone in (("", "%z", " %z") if date == "%Y-%m-%d" and time else ("",))
)
_ANY_DIGIT = re.compile(r"\d")


class DateError(ValueError):
    """A value is not a usable date. ``str()`` is the user-facing reason; ``code`` names the
    kind of problem (stable, for grouping)."""

    def __init__(self, message: str, code: str = "bad-date") -> None:
        super().__init__(message)
        self.code = code


def to_epoch_seconds(value: Cell, *, formats: Sequence[str] = (), tz: datetime.tzinfo = UTC) -> int:
    """Convert a cell to Unix epoch seconds (floored).

    Values without an offset are local times in ``tz``. Raises DateError with the fix.
    """
    if isinstance(formats, str):
        formats = (formats,)  # one format given where a list was expected
    if isinstance(value, bool):
        raise DateError(f"{value!r} is not a date")
    if isinstance(value, datetime.datetime):
        return _epoch(_aware(value, tz, value.isoformat(sep=" ")))
    if isinstance(value, datetime.date):
        midnight = datetime.datetime.combine(value, datetime.time())
        return _epoch(_aware(midnight, tz, value.isoformat()))
    if isinstance(value, datetime.time):
        raise DateError(f"'{value.isoformat()}' is a time of day without a date")
    if isinstance(value, int | float):
        if formats and math.isfinite(value) and float(value).is_integer():
            # 20260314 typed into a cell Excel keeps as a number, with format "%Y%m%d".
            with contextlib.suppress(DateError):
                return _from_text(str(int(value)), formats, tz)
        return _from_number(value, tz)
    return _from_text(value, formats, tz)


def formats_matching(text: str) -> list[str]:
    """The known strptime formats (see KNOWN_FORMATS) that read ``text``, best first.

    Cheap enough to call for every bad value of a large file: the formats whose layout fits
    are found once per shape of value (digits aside), then only those are tried.
    """
    text = text.strip()
    if not text or len(text) > 64:
        return []
    candidates = _formats_for_shape(_ANY_DIGIT.sub("1", text))
    return [fmt for fmt in candidates if _reads(text, fmt)]


@functools.lru_cache(maxsize=1024)
def _formats_for_shape(shape: str) -> tuple[str, ...]:
    # Every digit is 1, valid in any numeric field (month 11, hour 11, year 1111): a format
    # that fails here fails on layout, for every value of this shape.
    return tuple(fmt for fmt in KNOWN_FORMATS if _reads(shape, fmt))


def _reads(text: str, fmt: str) -> bool:
    try:
        datetime.datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _matches_hint(text: str) -> str:
    return " or ".join(f'"{fmt}"' for fmt in matching_formats(text))


def load_timezone(name: str) -> zoneinfo.ZoneInfo:
    """Return the IANA zone called ``name``; ValueError with suggestions if there is none."""
    key = name.strip()
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    known = zoneinfo.available_timezones()
    folded = {zone.casefold(): zone for zone in known}
    if key.casefold() in folded:
        return zoneinfo.ZoneInfo(folded[key.casefold()])  # "america/new_york" is clear enough
    close = difflib.get_close_matches(key, sorted(known), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(
        f"unknown time zone {name!r}: {hint}use an IANA name such as America/New_York, "
        "Europe/London or UTC"
    )


# --- time zones --------------------------------------------------------------------------------


def _epoch(moment: datetime.datetime) -> int:
    # timegm works on whole seconds, which floors the sub-second part.
    return calendar.timegm(moment.utctimetuple())


def _aware(moment: datetime.datetime, tz: datetime.tzinfo, shown: str) -> datetime.datetime:
    """Attach ``tz`` to a naive local time, refusing times a clock change skips or repeats."""
    if moment.tzinfo is not None:
        return moment
    first = moment.replace(tzinfo=tz, fold=0)
    if isinstance(tz, zoneinfo.ZoneInfo):
        second = moment.replace(tzinfo=tz, fold=1)
        if first.utcoffset() != second.utcoffset():
            back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
            if back != moment:
                raise DateError(
                    f"'{shown}' does not exist in {tz.key} (clocks go forward); check the "
                    "time, or add a UTC offset to the value (e.g. -05:00)"
                )
            raise DateError(
                f"'{shown}' happens twice in {tz.key} (clocks go back); add an offset or use UTC"
            )
    return first


# --- numbers -----------------------------------------------------------------------------------


def _from_number(value: float, tz: datetime.tzinfo) -> int:
    if not math.isfinite(value):
        raise DateError(f"{value!r} is not a date")
    if EPOCH_SECONDS_MIN <= value < EPOCH_SECONDS_MAX:
        return math.floor(value)
    if EPOCH_SECONDS_MAX * 10 <= value < EPOCH_SECONDS_MAX * 10_000:
        raise DateError(_milliseconds_reason(f"{value:.0f}"))
    if EXCEL_SERIAL_MIN <= value < EXCEL_SERIAL_MAX:
        local = _excel_serial(value)
        return _epoch(_aware(local, tz, local.isoformat(sep=" ")))
    if 0 < value < 1:
        raise DateError(f"{value!r} is a time of day without a date")
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    raise DateError(
        f"{shown} is not a date: numbers are read as Excel dates (1970 to 2173) or epoch"
        " seconds (9-10 digits); format the cell as a date in Excel, or set format: for this"
        ' column (e.g. "%Y%m%d" for 20260314)'
    )


def _excel_serial(value: float) -> datetime.datetime:
    """Excel's 1900 date system (serials from 1970 on, past its fake 29 February 1900)."""
    day = math.floor(value)
    # Round the time of day: 12:30 is stored as 0.520833... and must not become 12:29:59.
    seconds = round((value - day) * 86_400)
    return datetime.datetime(1899, 12, 30) + datetime.timedelta(days=day, seconds=seconds)


def _milliseconds_reason(digits: str) -> str:
    return (
        f"'{digits}' looks like epoch milliseconds; divide it by 1000 to get seconds "
        "(or use an ISO 8601 date such as 2021-03-04T14:30:00Z)"
    )


# --- text --------------------------------------------------------------------------------------


def _from_text(value: str, formats: Sequence[str], tz: datetime.tzinfo) -> int:
    text = value.strip()
    if not text:
        raise DateError("the date is blank")
    if formats:
        return _epoch(_aware(_strptime(text, formats), tz, text))
    if _DIGITS.fullmatch(text) and len(text) != 8:  # 8 digits: ISO basic date, 20210304
        return _from_digits(text)
    try:
        parsed = datetime.datetime.fromisoformat(_zulu_to_offset(text))
    except ValueError:
        code = "date-ambiguous" if _DAY_MONTH.fullmatch(text) else "date-unrecognised"
        raise DateError(_unrecognised_reason(text), code) from None
    return _epoch(_aware(parsed, tz, text))


def _strptime(text: str, formats: Sequence[str]) -> datetime.datetime:
    for fmt in formats:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    if _is_placeholder(text):
        raise DateError(_placeholder_reason(text), "date-placeholder")
    tried = " or ".join(f'"{fmt}"' for fmt in formats)
    matches = " or ".join(f'"{fmt}"' for fmt in matching_formats(text, exclude=formats))
    if matches:
        raise DateError(
            f"'{text}' does not match the format {tried}; it matches {matches}: fix the"
            " format (or the value)",
            "date-format",
        )
    raise DateError(
        f"'{text}' does not match the format {tried}; fix the value or the format", "date-format"
    )


def matching_formats(text: str, exclude: Sequence[str] = (), limit: int = 2) -> list[str]:
    """The first ``limit`` known formats (see :func:`formats_matching`) that ``text`` matches."""
    return [fmt for fmt in formats_matching(text) if fmt not in exclude][:limit]


def _from_digits(text: str) -> int:
    if len(text) in (9, 10):
        return int(text)
    if len(text) in (12, 13, 14):
        raise DateError(_milliseconds_reason(text))
    raise DateError(_unrecognised_reason(text))


def _zulu_to_offset(text: str) -> str:
    return text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text


#: A short cell of one word without a single digit ("--", "N/A", "TBD") holds no date.
_PLACEHOLDER_CHARS = 8


def _is_placeholder(text: str) -> bool:
    return len(text) <= _PLACEHOLDER_CHARS and not any(
        char.isdigit() or char.isspace() for char in text
    )


def _placeholder_reason(text: str) -> str:
    """A placeholder is no badly written date: point to blank_values, never to a format."""
    listed = f'["{text}"]' if '"' not in text and "\\" not in text else '["..."]'
    return (
        f"'{text}' is not a date; if it means \"no value\", add blank_values: {listed} at the"
        " top of the mapping (then a skip_if rule with blank: true, or a default:, for these"
        " rows)"
    )


def _unrecognised_reason(text: str) -> str:
    if _is_placeholder(text):
        return _placeholder_reason(text)
    match = _DAY_MONTH.fullmatch(text)
    if match:
        return _day_month_reason(text, match)
    matches = _matches_hint(text)
    if matches:
        return f"'{text}' is not a recognised date; add format: {matches} to this column's mapping"
    return (
        f"'{text}' is not a recognised date; add format: {_EXAMPLE_FORMAT} (a strptime "
        "format matching the values) to this column's mapping, or use ISO 8601 such as "
        "2021-03-04 14:30"
    )


def _day_month_reason(text: str, match: re.Match[str]) -> str:
    first, sep, second, year, rest = match.groups()
    tail = sep + ("%Y" if len(year) == 4 else "%y") + _time_format(rest)
    month_first, day_first = f'"%m{sep}%d{tail}"', f'"%d{sep}%m{tail}"'
    if int(first) > 12 >= int(second):
        suggestion = day_first
    elif int(second) > 12 >= int(first):
        suggestion = month_first
    else:
        suggestion = f"{month_first} or {day_first}"
    # Even 13/04/2021 is refused: one unambiguous row does not tell the order of the others.
    return (
        f"'{text}' is ambiguous (day/month order); add format: {suggestion} to this "
        "column's mapping"
    )


def _time_format(rest: str | None) -> str:
    """The strptime format of a time after the date, for the hint ("" if there is none)."""
    match = _TIME.fullmatch(rest.strip()) if rest else None
    if not match:
        return ""
    seconds, ampm = match.groups()
    if ampm:
        return " %I:%M" + (":%S" if seconds else "") + (" %p" if ampm[0].isspace() else "%p")
    return " %H:%M" + (":%S" if seconds else "")
