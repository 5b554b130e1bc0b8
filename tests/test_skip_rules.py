"""Mapping-wide `blank_values` and `skip_if`: rows left out on purpose, placeholder cells."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from results_csv import read_results

from importer.cli import main
from importer.errors import MappingError, RowError, RowSkipped
from importer.mapping import parse_mapping
from importer.table import Row

BASE = {
    "version": 1,
    "activity": {
        "assetName": "Launch",
        "assetType": "Webinar",
        "activityType": "Attended",
        "activityDate": {"column": "Join Time", "format": "%Y-%m-%d %H:%M"},
        "contactId": {"column": "Contact ID"},
    },
}
HEADER = ["Contact ID", "Attended", "Status", "Join Time"]


def mapping(**top):
    loaded = parse_mapping({**BASE, **top}, Path("m.yaml"))
    loaded.bind(HEADER)
    return loaded


def test_skip_if_equals_is_case_blind_and_trimmed_and_names_the_rule():
    rules = mapping(skip_if=[{"column": "Attended", "equals": "No"}])
    with pytest.raises(RowSkipped) as caught:
        rules.payload(Row(2, ["2001", "  no ", "", "2026-03-14 09:00"]))
    assert str(caught.value) == 'skip_if: Attended is "no"'
    assert caught.value.status == "skipped"
    assert rules.payload(Row(3, ["2001", "Yes", "", "2026-03-14 09:00"]))["contactId"] == 2001


def test_skip_if_in_matches_any_listed_value():
    rules = mapping(skip_if=[{"column": "Status", "in": ["Refunded", "Not Attending"]}])
    with pytest.raises(RowSkipped, match='skip_if: Status is "NOT ATTENDING"'):
        rules.payload(Row(2, ["2001", "Yes", "NOT ATTENDING", "2026-03-14 09:00"]))


def test_skip_if_not_in_leaves_out_every_other_value_and_blanks():
    rules = mapping(skip_if=[{"column": "Status", "not_in": ["Checked In", "Attended"]}])
    assert rules.payload(Row(2, ["2001", "", " checked in ", "2026-03-14 09:00"]))
    with pytest.raises(RowSkipped) as caught:
        rules.payload(Row(3, ["2001", "", "Attending", "2026-03-14 09:00"]))
    assert str(caught.value) == 'skip_if: Status is "Attending", not "Checked In" or "Attended"'
    with pytest.raises(RowSkipped, match='skip_if: Status is blank, not "Checked In"'):
        rules.payload(Row(4, ["2001", "", "", "2026-03-14 09:00"]))


def test_skip_if_blank_applies_after_blank_values():
    rules = mapping(blank_values=["--", "N/A"], skip_if=[{"column": "Join Time", "blank": True}])
    with pytest.raises(RowSkipped, match="skip_if: Join Time is blank"):
        rules.payload(Row(2, ["2001", "Yes", "", " -- "]))


def test_blank_values_make_a_required_cell_blank_not_a_bad_value():
    rules = mapping(blank_values=["--"])
    with pytest.raises(RowError, match="'Join Time' is blank but activityDate is required"):
        rules.payload(Row(2, ["2001", "Yes", "", "--"]))


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"column": "Attended", "blank": False}], "write 'blank: true'"),
        ([{"column": "Attended", "equals": "No", "in": ["No"]}], "exactly one of"),
        ([{"column": "Attended", "equal": "No"}], "did you mean 'equals'"),
        ([{"equals": "No"}], "needs a column and one test"),
        ({"column": "Attended"}, "skip_if must be a list"),
        ([{"column": "Attended", "in": []}], "'in' needs a list"),
        ([{"column": "Attended", "not_in": "Yes"}], "'not_in' needs a list, e.g. not_in:"),
        ([{"column": "Attended", "in": ["No"], "not_in": ["Yes"]}], "'in', 'not_in' or"),
    ],
)
def test_bad_skip_rules_are_mapping_errors(rules, message):
    with pytest.raises(MappingError, match=message):
        parse_mapping({**BASE, "skip_if": rules}, Path("m.yaml"))


def test_blank_values_must_be_texts():
    with pytest.raises(MappingError, match="blank_values must be a list of texts"):
        parse_mapping({**BASE, "blank_values": [["--"]]}, Path("m.yaml"))


def test_skip_if_column_missing_names_the_closest_one(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("Contact ID,Attended,Join Time\n2001,Yes,2026-03-14 09:00\n", encoding="utf-8")
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(
        textwrap.dedent(
            """\
            version: 1
            skip_if:
              - {column: Atended, equals: "No"}
            activity:
              assetName: Launch
              assetType: Webinar
              activityType: Attended
              activityDate: {column: Join Time, format: "%Y-%m-%d %H:%M"}
              contactId: {column: Contact ID}
            """
        ),
        encoding="utf-8",
    )
    assert main(["run", str(data), "--mapping", str(mapping_file), "--dry-run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "skip_if: column 'Atended' is not in the file" in err
    assert "(closest existing column: 'Attended')" in err


def test_skipped_rows_exit_0_are_counted_and_stay_out_of_the_errors_file(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text(
        "Contact ID,Attended,Join Time\n2001,Yes,2026-03-14 09:00\n2002,No,--\n2003,Yes,N/A\n",
        encoding="utf-8",
    )
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(
        textwrap.dedent(
            """\
            version: 1
            blank_values: ["--", "N/A"]
            skip_if:
              - {column: Attended, equals: "No"}
              - {column: Join Time, blank: true}
            activity:
              assetName: Launch
              assetType: Webinar
              activityType: Attended
              activityDate: {column: Join Time, format: "%Y-%m-%d %H:%M"}
              contactId: {column: Contact ID}
            """
        ),
        encoding="utf-8",
    )
    args = ["run", str(data), "--mapping", str(mapping_file), "--dry-run", "--quiet"]
    assert main([*args, "--results", "r.csv", "--errors", "e.csv"]) == 0
    assert "skipped                2" in capsys.readouterr().out
    results = read_results(Path("r.csv"))
    assert {n: (r["status"], r["error"]) for n, r in results.items()} == {
        2: ("valid", ""),
        3: ("skipped", 'skip_if: Attended is "No"'),
        4: ("skipped", "skip_if: Join Time is blank"),
    }
    assert results[4]["Join Time"] == "N/A"  # the cell as it was read
    assert not Path("e.csv").exists()


def test_skip_if_equals_a_value_listed_in_blank_values_still_skips():
    # blank_values: ["--"] with skip_if {equals: "--"}: the rule must match the cell as read,
    # not be silently defeated by the blanking (the row would turn invalid instead).
    rules = mapping(
        blank_values=["--"],
        skip_if=[{"column": "Join Time", "equals": "--"}, {"column": "Status", "in": ["N/A"]}],
    )
    with pytest.raises(RowSkipped, match='skip_if: Join Time is "--"'):
        rules.payload(Row(2, ["2001", "No", "", " -- "]))
    rules = mapping(blank_values=["N/A"], skip_if=[{"column": "Status", "in": ["n/a"]}])
    with pytest.raises(RowSkipped, match='skip_if: Status is "N/A"'):
        rules.payload(Row(3, ["2001", "No", "N/A", "2026-03-14 09:00"]))


def test_summary_names_each_skipped_value_with_its_own_rows(tmp_path, capsys):
    # One `in:` rule, two values: the summary must not show 3 rows as "Refunded" when one was
    # "Not Attending".
    data = tmp_path / "d.csv"
    data.write_text(
        "Contact ID,Status,Join Time\n"
        "2001,Refunded,2026-03-14 09:00\n"
        "2002,Not Attending,2026-03-14 09:00\n"
        "2003,refunded,2026-03-14 09:00\n"
        "2004,Attending,2026-03-14 09:00\n",
        encoding="utf-8",
    )
    mapping_file = tmp_path / "m.yaml"
    mapping_file.write_text(
        textwrap.dedent(
            """\
            version: 1
            skip_if:
              - {column: Status, in: [Refunded, Not Attending]}
            activity:
              assetName: Launch
              assetType: Webinar
              activityType: Attended
              activityDate: {column: Join Time, format: "%Y-%m-%d %H:%M"}
              contactId: {column: Contact ID}
            """
        ),
        encoding="utf-8",
    )
    args = ["run", str(data), "--mapping", str(mapping_file), "--dry-run", "--quiet"]
    assert main([*args, "--results", str(tmp_path / "r.csv")]) == 0
    out = capsys.readouterr().out
    assert '2 skipped  skip_if: Status is "Refunded"  (rows 2, 4)' in out
    assert '1 skipped  skip_if: Status is "Not Attending"  (row 3)' in out
