"""Date parsing: every accepted form, every refusal and its reason, and DST edges."""

from __future__ import annotations

import datetime
import math

import pytest

from importer.dates import DateError, load_timezone, to_epoch_seconds

UTC = datetime.UTC
NEW_YORK = load_timezone("America/New_York")
MARCH_4_1430_UTC = 1614868200  # 2021-03-04 14:30:00 UTC
MARCH_4_1430_NEW_YORK = MARCH_4_1430_UTC + 5 * 3600  # EST, UTC-5


def epoch(*args: int) -> int:
    return int(datetime.datetime(*args, tzinfo=UTC).timestamp())


# --- text without a format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-03-04T14:30:00Z", MARCH_4_1430_UTC),
        ("2021-03-04T14:30:00z", MARCH_4_1430_UTC),
        ("2021-03-04T09:30:00-05:00", MARCH_4_1430_UTC),
        ("2021-03-04 14:30", MARCH_4_1430_UTC),
        ("  2021-03-04 14:30:00.999  ", MARCH_4_1430_UTC),  # trimmed, sub-second floored
        ("2021-03-04", epoch(2021, 3, 4)),
        ("1614868200", MARCH_4_1430_UTC),
        ("946684800", epoch(2000, 1, 1)),  # 9 digits
    ],
)
def test_iso_8601_and_epoch_seconds_text_is_accepted(text: str, expected: int) -> None:
    assert to_epoch_seconds(text) == expected


def test_text_without_offset_is_local_to_the_given_zone() -> None:
    assert to_epoch_seconds("2021-03-04 14:30", tz=NEW_YORK) == MARCH_4_1430_NEW_YORK
    assert to_epoch_seconds("2021-03-04T14:30:00Z", tz=NEW_YORK) == MARCH_4_1430_UTC


def test_epoch_milliseconds_are_refused_with_divide_by_1000_hint() -> None:
    with pytest.raises(DateError, match=r"'1614868200000' looks like epoch milliseconds; divide"):
        to_epoch_seconds("1614868200000")


def test_day_month_order_is_never_guessed() -> None:
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("03/04/2021")
    assert str(caught.value) == (
        "'03/04/2021' is ambiguous (day/month order); add format: \"%m/%d/%Y\" or "
        '"%d/%m/%Y" to this column\'s mapping'
    )


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("13/04/2021", '"%d/%m/%Y"'),
        ("04/13/2021", '"%m/%d/%Y"'),
        ("3-4-21", '"%m-%d-%y" or "%d-%m-%y"'),
        ("13.04.2021 14:30", '"%d.%m.%Y %H:%M"'),
        ("4/13/2021 2:30:05 PM", '"%m/%d/%Y %I:%M:%S %p"'),
    ],
)
def test_even_an_obvious_day_month_date_is_refused_with_the_right_format(
    text: str, suggestion: str
) -> None:
    with pytest.raises(DateError, match="ambiguous") as caught:
        to_epoch_seconds(text)
    assert f"add format: {suggestion} to this column's mapping" in str(caught.value)


@pytest.mark.parametrize("text", ["next Tuesday", "2021/03/04", "12345", "March 4th"])
def test_unrecognised_text_asks_for_a_format(text: str) -> None:
    with pytest.raises(DateError, match=f"'{text}' is not a recognised date; add format"):
        to_epoch_seconds(text)


def test_blank_text_is_refused() -> None:
    with pytest.raises(DateError, match="blank"):
        to_epoch_seconds("   ")


# --- text with formats -------------------------------------------------------------------------


def test_first_matching_format_wins() -> None:
    formats = ["%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M"]
    assert to_epoch_seconds("04/03/2021 14:30", formats=formats) == MARCH_4_1430_UTC
    assert to_epoch_seconds("03/25/2021 14:30", formats=formats) == epoch(2021, 3, 25, 14, 30)


def test_format_result_is_local_to_the_zone_unless_it_has_an_offset() -> None:
    fmt = ["%m/%d/%Y %H:%M"]
    assert to_epoch_seconds("03/04/2021 14:30", formats=fmt, tz=NEW_YORK) == MARCH_4_1430_NEW_YORK
    with_offset = ["%m/%d/%Y %H:%M %z"]
    stamp = to_epoch_seconds("03/04/2021 14:30 +0000", formats=with_offset, tz=NEW_YORK)
    assert stamp == MARCH_4_1430_UTC


def test_a_single_format_string_is_accepted() -> None:
    assert to_epoch_seconds("2021|03|04", formats="%Y|%m|%d") == epoch(2021, 3, 4)


def test_value_matching_no_format_lists_the_formats_tried() -> None:
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("2021-03-04", formats=["%m/%d/%Y", "%d.%m.%Y"])
    assert str(caught.value) == (
        '\'2021-03-04\' does not match the format "%m/%d/%Y" or "%d.%m.%Y"; '
        'it matches "%Y-%m-%d": fix the format (or the value)'
    )


def test_value_matching_no_format_names_a_format_it_does_match() -> None:
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("14/03/2026 09:07", formats=["%m/%d/%Y %H:%M"])
    assert 'it matches "%d/%m/%Y %H:%M"' in str(caught.value)
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("03/04/2026 09:07", formats=["%Y-%m-%d %H:%M"])
    # Both orders fit: both are named, the user decides.
    assert 'it matches "%m/%d/%Y %H:%M" or "%d/%m/%Y %H:%M"' in str(caught.value)
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("soon", formats=["%Y-%m-%d"])
    assert "it matches" not in str(caught.value)


# --- date and time cells -----------------------------------------------------------------------


def test_naive_datetime_cell_is_local_to_the_zone() -> None:
    cell = datetime.datetime(2021, 3, 4, 14, 30)
    assert to_epoch_seconds(cell) == MARCH_4_1430_UTC
    assert to_epoch_seconds(cell, tz=NEW_YORK) == MARCH_4_1430_NEW_YORK


def test_aware_datetime_is_converted_not_reinterpreted() -> None:
    cell = datetime.datetime(2021, 3, 4, 15, 30, tzinfo=load_timezone("Europe/Paris"))
    assert to_epoch_seconds(cell, tz=NEW_YORK) == MARCH_4_1430_UTC


def test_date_cell_is_midnight_in_the_zone() -> None:
    assert to_epoch_seconds(datetime.date(2021, 3, 4), tz=NEW_YORK) == epoch(2021, 3, 4, 5)


def test_time_cell_without_a_date_is_refused() -> None:
    with pytest.raises(DateError, match="'14:30:00' is a time of day without a date"):
        to_epoch_seconds(datetime.time(14, 30))


# --- numeric cells ------------------------------------------------------------------------------


def test_epoch_seconds_numbers_are_floored() -> None:
    assert to_epoch_seconds(1614868200) == MARCH_4_1430_UTC
    assert to_epoch_seconds(1614868200.9) == MARCH_4_1430_UTC


def test_excel_serial_dates_use_the_1900_system_and_the_zone() -> None:
    assert to_epoch_seconds(44259) == epoch(2021, 3, 4)
    assert to_epoch_seconds(44259.604166666664) == MARCH_4_1430_UTC  # 14:30, float noise rounded
    assert to_epoch_seconds(44259.604166666664, tz=NEW_YORK) == MARCH_4_1430_NEW_YORK


@pytest.mark.parametrize("number", [2026, 930, 1, 60])
def test_small_numbers_are_not_taken_for_dates_around_1900(number: int) -> None:
    with pytest.raises(DateError, match="not a date"):
        to_epoch_seconds(number)


def test_numbers_are_read_with_the_columns_format_first() -> None:
    assert to_epoch_seconds(20210304, formats=["%Y%m%d"]) == epoch(2021, 3, 4)
    # A real Excel serial still works in a column whose text cells have a format.
    assert to_epoch_seconds(44259, formats=["%d/%m/%Y"]) == epoch(2021, 3, 4)


@pytest.mark.parametrize("number", [0, 0.5, -3, 100_000, 99_999_999, 12_345_678_901, math.nan])
def test_numbers_that_are_no_plausible_date_are_refused(number: float) -> None:
    with pytest.raises(DateError):
        to_epoch_seconds(number)


def test_epoch_milliseconds_numbers_are_refused() -> None:
    with pytest.raises(DateError, match="looks like epoch milliseconds"):
        to_epoch_seconds(1614868200000)


def test_booleans_are_not_dates() -> None:
    with pytest.raises(DateError, match="True is not a date"):
        to_epoch_seconds(True)


# --- daylight saving time -----------------------------------------------------------------------


def test_spring_forward_gap_is_invalid_with_reason() -> None:
    with pytest.raises(DateError) as caught:
        to_epoch_seconds("2026-03-08 02:30", tz=NEW_YORK)
    assert str(caught.value).startswith(
        "'2026-03-08 02:30' does not exist in America/New_York (clocks go forward); "
    )


def test_fall_back_overlap_is_invalid_with_reason() -> None:
    with pytest.raises(DateError) as caught:
        to_epoch_seconds(datetime.datetime(2026, 11, 1, 1, 30), tz=NEW_YORK)
    assert str(caught.value) == (
        "'2026-11-01 01:30:00' happens twice in America/New_York (clocks go back); "
        "add an offset or use UTC"
    )


def test_times_next_to_a_clock_change_and_values_with_offsets_are_fine() -> None:
    assert to_epoch_seconds("2026-03-08 01:59", tz=NEW_YORK) == epoch(2026, 3, 8, 6, 59)
    assert to_epoch_seconds("2026-03-08 03:00", tz=NEW_YORK) == epoch(2026, 3, 8, 7, 0)
    assert to_epoch_seconds("2026-11-01T01:30:00-04:00", tz=NEW_YORK) == epoch(2026, 11, 1, 5, 30)
    assert to_epoch_seconds("2026-03-08 02:30") == epoch(2026, 3, 8, 2, 30)  # UTC has no gaps


# --- time zones ---------------------------------------------------------------------------------


def test_load_timezone_accepts_iana_names_in_any_case() -> None:
    assert load_timezone("Europe/London").key == "Europe/London"
    assert load_timezone(" america/new_york ").key == "America/New_York"


def test_unknown_timezone_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Amerca/New_York'") as caught:
        load_timezone("Amerca/New_York")
    assert "America/New_York" in str(caught.value)
    with pytest.raises(ValueError, match="such as America/New_York, Europe/London"):
        load_timezone("Mars/Olympus_Mons")


@pytest.mark.parametrize("formats", [(), ("%m/%d/%Y %H:%M",)])
@pytest.mark.parametrize("text", ["--", "N/A", "n.a.", "-"])
def test_a_placeholder_cell_is_pointed_to_blank_values_never_to_a_date_format(
    text: str, formats: tuple[str, ...]
) -> None:
    # '--' holds no date at all: suggesting a strptime format would send the user the wrong way.
    with pytest.raises(DateError) as caught:
        to_epoch_seconds(text, formats=formats)
    message = str(caught.value)
    assert f'blank_values: ["{text}"]' in message
    assert "add format" not in message and "fix the value or the format" not in message
