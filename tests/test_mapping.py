"""The mapping stage: YAML checks, binding to a header, row -> payload."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from importer.errors import MappingError, RowError
from importer.mapping import Mapping, load_mapping
from importer.table import Row

HEADER = ["First Name", "Email", "Contact ID", "Event", "Action", "Scan Time", "Booth", "Campaign"]

BASIC = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")


def write_mapping(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def bound(tmp_path: Path, text: str = BASIC, header: list[str] = HEADER) -> Mapping:
    mapping = load_mapping(write_mapping(tmp_path, text))
    mapping.bind(header)
    return mapping


def row(**cells: object) -> Row:
    values = {
        "First Name": "Zoë",
        "Email": "zoe@example.org",
        "Contact ID": "2005",
        "Event": "Spring Expo",
        "Action": "visited",
        "Scan Time": "03/14/2026 09:05",
        "Booth": "B12",
        "Campaign": "37",
    }
    values.update({key.replace("_", " "): value for key, value in cells.items()})
    return Row(number=2, cells=[values[name] for name in HEADER])


def test_row_becomes_the_exact_eloqua_payload(tmp_path):
    payload = bound(tmp_path).payload(row())
    assert payload == {
        "name": "Spring Expo - visited",
        "assetName": "Spring Expo",
        "assetType": "Tradeshow",
        "activityType": "Visited Booth",
        # 09:05 in New York on 14 March 2026 is EDT (UTC-4): 13:05 UTC.
        "activityDate": str(int(dt.datetime(2026, 3, 14, 13, 5, tzinfo=dt.UTC).timestamp())),
        "contactId": 2005,
        "campaignId": 37,
        "fieldValues": [{"type": "FieldValue", "id": "12", "value": "B12"}],
    }


def test_dates_on_either_side_of_daylight_saving_use_the_right_offset(tmp_path):
    mapping = bound(tmp_path)
    before = int(mapping.payload(row(Scan_Time="03/07/2026 09:00"))["activityDate"])
    after = int(mapping.payload(row(Scan_Time="03/09/2026 09:00"))["activityDate"])
    assert before == int(dt.datetime(2026, 3, 7, 14, 0, tzinfo=dt.UTC).timestamp())  # EST
    assert after == int(dt.datetime(2026, 3, 9, 13, 0, tzinfo=dt.UTC).timestamp())  # EDT


def test_map_keys_match_case_insensitively_and_cells_are_trimmed(tmp_path):
    payload = bound(tmp_path).payload(row(Action="  DEMO "))
    assert payload["activityType"] == "Viewed a Demo"


def test_value_not_in_map_makes_row_invalid_naming_choices(tmp_path):
    with pytest.raises(RowError) as error:
        bound(tmp_path).payload(row(Action="vistied"))
    message = str(error.value)
    assert "Action" in message and "'vistied'" in message
    assert "visited, demo" in message and "map:" in message
    assert error.value.column == "Action"


def test_optional_blank_field_is_omitted(tmp_path):
    payload = bound(tmp_path).payload(row(Campaign=" "))
    assert "campaignId" not in payload


def test_required_blank_field_is_invalid_with_fix(tmp_path):
    with pytest.raises(RowError, match="'Contact ID' is blank but contactId is required"):
        bound(tmp_path).payload(row(Contact_ID=""))


def test_excel_style_integers_become_ids_and_text_is_refused(tmp_path):
    mapping = bound(tmp_path)
    assert mapping.payload(row(Contact_ID=2405.0))["contactId"] == 2405
    assert mapping.payload(row(Contact_ID="2405.0"))["contactId"] == 2405
    with pytest.raises(RowError, match="positive whole number"):
        mapping.payload(row(Contact_ID="24o5"))


def test_ambiguous_date_without_format_is_invalid_with_hint(tmp_path):
    text = BASIC.replace('    format: "%m/%d/%Y %H:%M"\n', "")
    with pytest.raises(RowError) as error:
        bound(tmp_path, text).payload(row(Scan_Time="03/04/2026"))
    assert "Scan Time" in str(error.value) and "format" in str(error.value)


def test_name_defaults_to_asset_name(tmp_path):
    text = BASIC.replace('  name: "{Event} - {Action}"\n', "")
    assert bound(tmp_path, text).payload(row())["name"] == "Spring Expo"


def test_literal_braces_and_constants(tmp_path):
    text = BASIC.replace('"{Event} - {Action}"', '"{{Expo}} {Event}"').replace(
        "assetType: Tradeshow", 'assetType: "{{Tradeshow}}"'
    )
    payload = bound(tmp_path, text).payload(row())
    assert payload["name"] == "{Expo} Spring Expo"
    assert payload["assetType"] == "{Tradeshow}"


def test_a_template_keeps_percent_signs_and_trims_each_cell(tmp_path):
    text = BASIC.replace('"{Event} - {Action}"', '"100% {Event} %s {Booth}%%"')
    payload = bound(tmp_path, text).payload(row(Event="  Spring Expo ", Booth="B12 "))
    assert payload["name"] == "100% Spring Expo %s B12%%"


def test_default_is_used_when_cell_is_blank(tmp_path):
    text = BASIC.replace(
        '- {id: "12", column: Booth}', '- {id: "12", column: Booth, default: none}'
    )
    payload = bound(tmp_path, text).payload(row(Booth=""))
    assert payload["fieldValues"] == [{"type": "FieldValue", "id": "12", "value": "none"}]


def test_yes_no_map_keys_mean_the_words(tmp_path):
    text = BASIC.replace(
        "{visited: Visited Booth, demo: Viewed a Demo}", "{yes: Attended, no: Registered}"
    )
    assert bound(tmp_path, text).payload(row(Action="Yes"))["activityType"] == "Attended"


def test_columns_match_case_insensitively_when_not_exact(tmp_path):
    mapping = bound(tmp_path, BASIC.replace("column: Event", "column: event"))
    assert mapping.payload(row())["assetName"] == "Spring Expo"


def test_missing_column_names_closest_match(tmp_path):
    mapping = load_mapping(write_mapping(tmp_path, BASIC.replace("column: Booth", "column: Boot")))
    with pytest.raises(MappingError) as error:
        mapping.bind(HEADER, file="scans.csv")
    assert "'Boot' is not in the file" in str(error.value)
    assert "closest existing column: 'Booth'" in str(error.value)
    assert "scans.csv" in str(error.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write_mapping(tmp_path, "version: 1\nactivity:\n  name: [oops\n  assetType: X\n")
    with pytest.raises(MappingError, match=r"line \d+, column \d+"):
        load_mapping(path)


def test_unknown_activity_field_suggests_the_right_name(tmp_path):
    path = write_mapping(tmp_path, BASIC.replace("assetType:", "assetTyp:"))
    with pytest.raises(
        MappingError, match="unknown key 'assetTyp' in activity; did you mean 'assetType'"
    ):
        load_mapping(path)


def test_unknown_spec_key_is_refused(tmp_path):
    path = write_mapping(tmp_path, BASIC.replace("{column: Event}", "{column: Event, colour: red}"))
    with pytest.raises(MappingError, match="unknown key 'colour'"):
        load_mapping(path)


def test_missing_required_fields_and_version_are_reported(tmp_path):
    with pytest.raises(MappingError, match="version' must be 1"):
        load_mapping(write_mapping(tmp_path, BASIC.replace("version: 1", "version: 2")))
    with pytest.raises(MappingError, match="missing contactId"):
        load_mapping(
            write_mapping(tmp_path, BASIC.replace("  contactId: {column: Contact ID}\n", ""))
        )


def test_unknown_timezone_is_a_mapping_error(tmp_path):
    path = write_mapping(tmp_path, BASIC.replace("America/New_York", "Eastern Time"))
    with pytest.raises(MappingError, match="timezone"):
        load_mapping(path)


def test_required_false_on_a_field_eloqua_needs_is_refused(tmp_path):
    path = write_mapping(
        tmp_path, BASIC.replace("{column: Contact ID}", "{column: Contact ID, required: false}")
    )
    with pytest.raises(MappingError, match="contactId cannot be 'required: false'"):
        load_mapping(path)


def test_structurally_broken_row_is_invalid(tmp_path):
    broken = Row(number=7, cells=row().cells, error="row has 9 cells but the header has 8 columns")
    with pytest.raises(RowError, match="9 cells"):
        bound(tmp_path).payload(broken)


def test_missing_mapping_file_says_so(tmp_path):
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("{visited: Visited Booth", "{visited: ", "'map' entry visited: None"),
        ("{visited: Visited Booth", "{visited: [a, b]", "'map' entry visited: ['a', 'b']"),
        ("{column: Event}", "{column: Event, default: [1, 2]}", "'default' must be a single"),
        ('- {id: "12", column: Booth}', "- {id: , column: Booth}", "needs an 'id'"),
        ("version: 1", "version: true", "'version' must be 1"),
        ("activity:", "source: {encoding: 5}\nactivity:", "source.encoding must be text"),
        ("activity:", "source: {sheet: true}\nactivity:", "source.sheet must be"),
        ("{column: Event}", "{value: [x]}", "'value' must be a single"),
    ],
)
def test_wrongly_typed_mapping_values_are_refused_when_loading(tmp_path, replace, by, message):
    path = write_mapping(tmp_path, BASIC.replace(replace, by, 1))
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert message in str(error.value)


def test_true_false_map_keys_match_excel_boolean_cells(tmp_path):
    text = BASIC.replace(
        "{visited: Visited Booth, demo: Viewed a Demo}", "{true: Attended, false: Registered}"
    )
    mapping = bound(tmp_path, text)
    assert mapping.payload(row(Action=True))["activityType"] == "Attended"
    assert mapping.payload(row(Action="FALSE"))["activityType"] == "Registered"


def test_on_off_keys_and_unquoted_dates_are_words_not_yaml_types(tmp_path):
    text = BASIC.replace(
        "{visited: Visited Booth, demo: Viewed a Demo}", "{on: Visited Booth, off: Registered}"
    ).replace("activityDate:\n    column: Scan Time\n", "activityDate:\n    value: 2026-03-14\n")
    text = text.replace('    format: "%m/%d/%Y %H:%M"\n', "")
    payload = bound(tmp_path, text).payload(row(Action="ON"))
    assert payload["activityType"] == "Visited Booth"
    # 2026-03-14 midnight in New York (EDT since 8 March) is 04:00 UTC.
    assert payload["activityDate"] == str(
        int(dt.datetime(2026, 3, 14, 4, 0, tzinfo=dt.UTC).timestamp())
    )


def _activity() -> dict:
    return {
        "assetName": "Expo",
        "assetType": "Tradeshow",
        "activityType": "Visited Booth",
        "activityDate": {"column": "Scan Time"},
        "contactId": {"column": "Contact ID"},
    }


def test_mapping_dict_nested_too_deep_is_a_mapping_error_not_recursion_error():
    # A dict given to the library API gets the bounds a YAML file has (issue 10 #16).
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["map"] = {}
        inner = inner["map"]
    activity = {**_activity(), "assetType": {"column": "Type", "map": deep}}
    with pytest.raises(MappingError, match="nested more than 50 levels deep"):
        load_mapping({"version": 1, "activity": activity})


def test_mapping_dict_that_contains_itself_is_a_mapping_error():
    activity = _activity()
    activity["assetType"] = {"column": "Type", "map": activity}
    with pytest.raises(MappingError, match="contains itself"):
        load_mapping({"version": 1, "activity": activity})


def test_mapping_dict_sharing_values_billions_of_times_is_refused_at_once():
    # Python objects can be shared like YAML aliases: 9 levels of 9 shared lists.
    shared: list = ["lol"] * 9
    for _ in range(9):
        shared = [shared] * 9
    activity = {**_activity(), "assetName": {"value": "Expo", "default": shared}}
    with pytest.raises(MappingError, match="more than 100,000 values"):
        load_mapping({"version": 1, "activity": activity})
