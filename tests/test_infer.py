"""The inference behind `eloqua-import init`: header rows, date formats, safe YAML."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from importer.dates import formats_matching, to_epoch_seconds
from importer.infer import (
    InitOptions,
    date_formats,
    find_header_row,
    guess_date_format,
    locate_columns,
    render_yaml,
    suggest_mapping,
)
from importer.mapping import load_mapping
from importer.table import Row

ZOOM_ROWS = [
    ["Attendee Report"],
    ["Report Generated:", "Mar 14, 2026 11:42 AM"],
    ["Topic", "Webinar ID", "Actual Start Time", "Actual Duration (minutes)", "# Registered"],
    ["Spring Launch", "841 2207 5531", "Mar 14, 2026 08:58 AM", "65", "24"],
    ["Host Details"],
    ["Attended", "User Name (Original Name)", "Email", "Join Time", "Leave Time"],
    ["Yes", "Marketing", "host@example.com", "Mar 14, 2026 08:52 AM", "Mar 14, 2026 10:04 AM"],
    ["Panelist Details"],
    ["Attended", "User Name (Original Name)", "Email", "Join Time", "Leave Time"],
    ["Yes", "Dana", "dana@example.com", "Mar 14, 2026 08:55 AM", "Mar 14, 2026 10:04 AM"],
    ["Attendee Details"],
    ["Attended", "User Name (Original Name)", "Email", "Join Time", "Leave Time", "Country"],
    ["Yes", "Ann", "ann@example.com", "Mar 14, 2026 09:01 AM", "Mar 14, 2026 09:40 AM", "Spain"],
    ["No", "Bob", "bob@example.com", "--", "--", "France"],
    ["Yes", "Cy", "cy@example.com", "Mar 14, 2026 09:05 AM", "Mar 14, 2026 09:41 AM", ""],
]


def test_header_is_the_attendee_table_below_title_host_and_panelist_blocks():
    assert find_header_row(ZOOM_ROWS) == 12


def test_header_on_row_one_when_the_file_is_a_plain_table():
    rows = [["Name", "Email", "When"], ["Ann", "ann@example.com", "2026-03-14"]]
    assert find_header_row(rows) == 1


def test_header_is_found_under_a_title_and_a_blank_row():
    rows = [["Webinar: Data Privacy"], [], ["Contact ID", "Joined At", "Attended"]]
    rows += [[2001 + n, dt.datetime(2026, 4, 2, 14, n), "Yes"] for n in range(5)]
    assert find_header_row(rows) == 3


def test_header_is_not_a_data_row_whose_cells_are_all_words():
    rows = [["First", "Last", "Company"], ["Ann", "Lee", "Acme"], ["Bob", "Ray", "Initech"]]
    assert find_header_row(rows) == 1


def test_header_row_of_a_file_with_nothing_tabular_is_one():
    assert find_header_row([]) == 1
    assert find_header_row([["just a title"]]) == 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Mar 14, 2026 09:05:12 AM", "Mar 15, 2026 11:40:00 PM"], "%b %d, %Y %I:%M:%S %p"),
        (["2026-03-14 09:05:00", "2026-03-15 17:00:00"], "%Y-%m-%d %H:%M:%S"),
        (["14/03/2026 09:05", "03/04/2026 10:00"], "%d/%m/%Y %H:%M"),
        (["03/14/2026 09:05", "04/03/2026 10:00"], "%m/%d/%Y %H:%M"),
        (["2026-03-14T09:05:00Z", "2026-03-14T10:05:00+01:00"], "%Y-%m-%dT%H:%M:%S%z"),
        (["14.03.2026", "1.4.2026"], "%d.%m.%Y"),
        (["March 3, 2026 9:05 PM"], "%B %d, %Y %I:%M %p"),
    ],
)
def test_date_format_fits_every_value_and_the_real_date_code_reads_them(values, expected):
    assert guess_date_format(values) == expected
    for value in values:
        to_epoch_seconds(value, formats=[expected])


def test_day_first_or_month_first_is_decided_by_a_value_over_12():
    assert date_formats(["03/04/2026", "05/06/2026"]) == ["%m/%d/%Y", "%d/%m/%Y"]
    assert guess_date_format(["03/04/2026"]) == "%m/%d/%Y"
    assert guess_date_format(["03/04/2026"], day_first=True) == "%d/%m/%Y"
    assert guess_date_format(["03/04/2026", "13/04/2026"], day_first=False) == "%d/%m/%Y"


def test_no_format_for_values_in_different_layouts_or_not_dates():
    assert guess_date_format(["2026-03-14", "14/03/2026"]) is None
    assert guess_date_format(["hello"]) is None
    assert guess_date_format([dt.datetime(2026, 3, 14)]) is None  # Excel cells need none


def test_formats_matching_is_found_per_value():
    assert formats_matching("14/03/2026 09:07") == ["%d/%m/%Y %H:%M"]
    assert formats_matching("no date here") == []


def test_yaml_keeps_awkward_column_names_and_constants_exactly(tmp_path):
    names = ["Contact ID", "Scan: time # local", 'It\'s "quoted"', "{Booth}", "Campaign"]
    data = tmp_path / "odd.csv"
    lines = [",".join(f'"{n}"'.replace('"quoted"', '""quoted""') for n in names)]
    lines.append("2001,03/14/2026 09:05,x,B1,Spring: {Expo} #1")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = InitOptions(
        asset_type="Tradeshow",
        activity_type="Visited Booth",
        asset_name="Q&A {live}: #1 \"quoted\" 'too'",
        timezone="UTC",
    )
    suggestion = suggest_mapping(data, options)
    mapping_path = tmp_path / "odd.yaml"
    mapping_path.write_text(render_yaml(suggestion), encoding="utf-8")

    mapping = load_mapping(mapping_path)
    assert mapping.fields["activityDate"].source == "Scan: time # local"
    assert mapping.fields["campaignId"].source == "Campaign"
    assert mapping.fields["campaignId"].lookup == "campaign"
    header = [n.replace('"quoted"', '"quoted"') for n in names]
    mapping.bind(header)
    payload = mapping.payload(Row(2, ["2001", "03/14/2026 09:05", "x", "B1", "Spring: {Expo} #1"]))
    assert payload["assetName"] == "Q&A {live}: #1 \"quoted\" 'too'"
    when = dt.datetime(2026, 3, 14, 9, 5, tzinfo=dt.UTC)
    assert payload["activityDate"] == str(int(when.timestamp()))
    assert payload["campaignId"].key == "Spring: {Expo} #1"
    unused = [name for name, _ in suggestion.unused]
    assert unused == ['It\'s "quoted"', "{Booth}"]


def test_every_mapping_line_is_commented(tmp_path):
    suggestion = suggest_mapping(Path(__file__).parent.parent / "samples" / "zoom-attendees.csv")
    for line in render_yaml(suggestion).splitlines():
        assert not line.strip() or "#" in line, line


def test_locate_columns_prefers_the_longest_table():
    samples = Path(__file__).parent.parent / "samples"
    assert locate_columns(samples / "zoom-attendees.csv", ["Email", "Join Time"]) == 12
    assert locate_columns(samples / "zoom-attendees.csv", ["Nope"]) is None


@pytest.mark.parametrize("twin", ["webinar.xls", "webinar.ods"])
def test_xls_and_ods_twins_get_the_mapping_the_xlsx_gets(twin):
    root = Path(__file__).parent.parent
    options = InitOptions(asset_type="Webinar", activity_type="Attended", timezone="UTC")
    expected = suggest_mapping(root / "samples" / "webinar.xlsx", options).document()
    assert suggest_mapping(root / "tests" / "fixtures" / twin, options).document() == expected
    assert expected["source"] == {"sheet": "Attendees", "header_row": 3}
