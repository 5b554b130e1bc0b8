"""The library API (importer.import_file / import_records) against the real sandbox."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import tracemalloc
from decimal import Decimal
from functools import partial
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from results_csv import read_results

import importer
from importer.eloqua import USER_AGENT
from importer.errors import ConfigError, ExitStatus, InputError, MappingError
from importer.identity import FirstSeen
from importer.mapping import load_mapping

ROOT = Path(__file__).resolve().parent.parent
NEW_YORK = ZoneInfo("America/New_York")

MAPPING = {
    "activity": {
        "name": "{Event} - {Action}",
        "assetName": {"column": "Event"},
        "assetType": "Tradeshow",
        "activityType": {
            "column": "Action",
            "map": {"visited": "Visited Booth", "demo": "Viewed a Demo"},
        },
        "activityDate": {"column": "Scanned", "timezone": "America/New_York"},
        "contactId": {"column": "Contact"},
        "campaignId": {"column": "Campaign", "required": False},
        "fieldValues": [
            {"id": "12", "column": "Booth", "required": False},
            {"id": "31", "column": "Minutes", "required": False},
        ],
    }
}


def epoch(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()))


def every_dtype_frame() -> pd.DataFrame:
    """One column per dtype a CRM export brings; row 3 has no contact, row 4 no date."""
    return pd.DataFrame(
        {
            "Contact": pd.array([2001, 2002, None, 2004], dtype="Int64"),
            "Campaign": [37.0, float("nan"), 38.0, 39.0],  # float64 with NaN
            "Action": pd.Categorical(["visited", "demo", "visited", "demo"]),
            "Event": pd.array(["Spring Expo"] * 4, dtype="string"),
            "Booth": pd.array(["B15", None, "B20", "B08"], dtype="string"),
            "Minutes": [2405.0, 12.5, float("nan"), 30.0],
            "Scanned": pd.to_datetime(
                ["2026-03-07 09:15:00", "2026-07-04 12:00:59", "2026-03-07 10:00:00", None]
            ),  # naive datetime64: read in the mapping's timezone
        },
        index=pd.Index(["scan-a", "scan-b", "scan-c", "scan-d"], name="scan"),
    )


def test_dataframe_of_every_dtype_imports_with_exact_payloads(sandbox, capsys):
    result = importer.import_records(every_dtype_frame(), mapping=MAPPING, name="crm-export")

    assert result.counts == {"created": 2, "invalid": 2}
    assert result.exit_status == ExitStatus.ROWS_NOT_CREATED
    assert [o.row for o in result.outcomes] == [1, 2, 3, 4]
    assert [o.index for o in result.outcomes] == ["scan-a", "scan-b", "scan-c", "scan-d"]
    first, second, no_contact, no_date = result.outcomes
    assert sandbox.state.activity(first.activity_id) | {"id": ""} == {
        "type": "ExternalActivities",
        "depth": "complete",
        "id": "",
        "name": "Spring Expo - visited",
        "assetName": "Spring Expo",
        "assetType": "Tradeshow",
        "activityType": "Visited Booth",
        "activityDate": epoch(dt.datetime(2026, 3, 7, 9, 15, tzinfo=NEW_YORK)),  # EST
        "contactId": 2001,
        "campaignId": 37,  # 37.0 in a float column
        "fieldValues": [
            {"type": "FieldValue", "id": "12", "value": "B15"},
            {"type": "FieldValue", "id": "31", "value": "2405"},  # 2405.0: a whole number
        ],
    }
    sent = sandbox.state.activity(second.activity_id)
    assert sent["activityDate"] == epoch(dt.datetime(2026, 7, 4, 12, 0, 59, tzinfo=NEW_YORK))
    assert "campaignId" not in sent  # NaN is blank, and the campaign is optional
    assert sent["fieldValues"] == [{"type": "FieldValue", "id": "31", "value": "12.5"}]  # NA
    assert no_contact.status == "invalid" and "'Contact' is blank" in no_contact.error
    assert no_date.status == "invalid" and "'Scanned' is blank" in no_date.error
    assert first.record["Contact"] == 2001 and first.record["Action"] == "visited"
    assert (first.http_status, first.attempts, first.error) == (201, 1, "")
    assert capsys.readouterr() == ("", "")  # library code never prints


def test_dataframe_payloads_keep_their_python_types():
    frame = every_dtype_frame().iloc[:2]
    result = importer.import_records(frame, mapping=MAPPING, dry_run=True)  # offline
    payloads = dict(result.summary.preview)
    assert payloads[1]["activityDate"] == epoch(dt.datetime(2026, 3, 7, 9, 15, tzinfo=NEW_YORK))
    assert payloads[1]["contactId"] == 2001 and type(payloads[1]["contactId"]) is int
    assert payloads[1]["campaignId"] == 37 and type(payloads[1]["campaignId"]) is int
    assert result.counts == {"valid": 2}


@pytest.mark.parametrize(
    "scanned",
    [
        pd.to_datetime(["2026-03-07 15:15"]).tz_localize("Europe/Paris"),
        pd.to_datetime(["2026-03-07 14:15"]).tz_localize("UTC").as_unit("ns"),
    ],
    ids=["paris", "utc-ns"],
)
def test_tz_aware_datetime64_keeps_its_own_zone(scanned):
    frame = every_dtype_frame().iloc[:1].copy()
    frame["Scanned"] = scanned
    result = importer.import_records(frame, mapping=MAPPING, dry_run=True)
    (_, payload), *_ = result.summary.preview
    # 14:15 UTC whatever the mapping's timezone (America/New_York) says.
    assert payload["activityDate"] == epoch(dt.datetime(2026, 3, 7, 14, 15, tzinfo=dt.UTC))


def test_dicts_with_python_dates_ints_and_decimals(sandbox):
    records = [
        {
            "Contact": 2001,
            "Event": "Expo",
            "Action": "demo",
            "Scanned": dt.date(2026, 3, 7),
            "Campaign": 37,
            "Minutes": None,
            "Booth": "",
        },
        {
            "Contact": Decimal("2002"),
            "Event": "Expo",
            "Action": "visited",
            "Scanned": dt.datetime(2026, 3, 7, 8, 0, tzinfo=dt.UTC),
            "Campaign": None,
            "Minutes": Decimal("1.50"),
        },
    ]
    mapping = {**MAPPING, "activity": {**MAPPING["activity"], "name": "Expo visit"}}
    result = importer.import_records(records, mapping=mapping)
    assert result.counts == {"created": 2}
    first, second = (sandbox.state.activity(o.activity_id) for o in result.outcomes)
    assert first["activityDate"] == epoch(dt.datetime(2026, 3, 7, tzinfo=NEW_YORK))  # midnight
    assert second["activityDate"] == epoch(dt.datetime(2026, 3, 7, 8, 0, tzinfo=dt.UTC))
    assert (first["contactId"], first["campaignId"], "fieldValues" in first) == (2001, 37, False)
    assert second["contactId"] == 2002
    assert second["fieldValues"] == [{"type": "FieldValue", "id": "31", "value": "1.50"}]
    assert result.outcomes[1].record is records[1]  # the record given, not a copy
    assert result.outcomes[0].index is None


def test_records_header_is_the_first_records_keys():
    records = iter(
        [
            {"Contact": 2001, "Event": "Expo", "Action": "demo", "Scanned": "2026-03-07 09:00"},
            {"Contact": 2002, "Event": "Expo", "Action": "demo"},  # no Scanned: blank
            ("not", "a", "dict"),
            {"Contact": 2003, "Event": "Expo", "Action": "demo", "Scanned": "2026-03-08 09:00"},
        ]
    )
    mapping = {"activity": {**MAPPING["activity"], "fieldValues": []}}
    mapping["activity"].pop("campaignId")
    result = importer.import_records(records, mapping=mapping, dry_run=True)
    assert [o.status for o in result.outcomes] == ["valid", "invalid", "invalid", "valid"]
    assert "'Scanned' is blank" in result.outcomes[1].error
    assert result.outcomes[2].error.startswith("record 3 is a tuple, not a dict")

    with pytest.raises(MappingError) as missing:
        importer.import_records([{"Contact": 1}], mapping=MAPPING, dry_run=True)
    assert str(missing.value).startswith(
        "the mapping dict: the mapping does not fit the records (the first one's keys):\n"
        "  name: column 'Event' is not in the records (columns: Contact)\n"
    )
    assert str(missing.value).endswith("give the records those columns.")


def test_an_empty_batch_imports_nothing():
    result = importer.import_records([], mapping=MAPPING, dry_run=True)
    assert result.counts == {} and result.outcomes == [] and result.exit_status == ExitStatus.OK


def test_mapping_dict_is_checked_like_a_mapping_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nactivty:\n  name: x\n", encoding="utf-8")
    with pytest.raises(MappingError) as from_file:
        load_mapping(path)
    with pytest.raises(MappingError) as from_dict:
        importer.import_records([{"a": 1}], mapping={"activty": {"name": "x"}}, dry_run=True)
    assert str(from_file.value) == (
        f"{path}: unknown key 'activty' in the top level; did you mean 'activity'?"
    )
    assert str(from_dict.value) == str(from_file.value).replace(str(path), "the mapping dict")


def test_errors_before_sending_raise_documented_exceptions(monkeypatch, capsys):
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD", "ELOQUA_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    rows = [{"Contact": 1}]
    with pytest.raises(ConfigError, match="set ELOQUA_COMPANY"):
        importer.import_records(every_dtype_frame(), mapping=MAPPING)  # no credentials
    with pytest.raises(ConfigError, match="concurrency must be a whole number from 1 to 64"):
        importer.import_records(rows, mapping=MAPPING, concurrency=0)
    with pytest.raises(InputError, match=r"use importer\.import_file"):
        importer.import_records("attendees.csv", mapping=MAPPING, dry_run=True)
    with pytest.raises(InputError, match=r"wrap it in a list"):
        importer.import_records({"Contact": 1}, mapping=MAPPING, dry_run=True)
    with pytest.raises(TypeError, match="'dryrun'; did you mean 'dry_run'"):
        importer.import_records(rows, mapping=MAPPING, dryrun=True)
    # Every option checked by name is one the type hints (ImportOptions) know.
    assert set(importer.ImportOptions.__annotations__) == set(importer.api._OPTIONS)
    with pytest.raises(InputError, match="not found"):
        importer.import_file("missing.csv", mapping=MAPPING, dry_run=True)
    assert capsys.readouterr() == ("", "")


async def test_sync_call_in_a_running_loop_says_to_await_the_async_variant():
    with pytest.raises(ConfigError, match=r"await importer\.import_records_async\(\.\.\.\)"):
        importer.import_records([], mapping=MAPPING)
    result = await importer.import_records_async(every_dtype_frame(), mapping=MAPPING, dry_run=True)
    assert result.counts == {"valid": 2, "invalid": 2}


def test_import_file_from_python_like_the_cli(sandbox, tmp_path):
    seen = []
    progress = []
    result = importer.import_file(
        ROOT / "samples" / "attendees.csv",
        mapping=ROOT / "mappings" / "attendees.yaml",
        results=tmp_path / "out.results.csv",
        on_outcome=seen.append,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert result.exit_status == ExitStatus.OK and result.ok
    rows = result.summary.rows
    assert result.counts["created"] + result.counts["duplicate"] == rows
    assert [o.row for o in result.outcomes] == sorted(o.row for o in seen)  # input order
    assert result.outcomes[0].row == 2  # as Excel shows it: the header is row 1
    assert result.outcomes[0].record["Email"] == "kavya.menon@example.net"
    assert set(read_results(tmp_path / "out.results.csv")) == {o.row for o in result.outcomes}
    assert progress[-1] == (rows, rows)
    assert sorted(os.listdir(tmp_path)) == ["out.results.csv", "state"]  # nothing else written


def test_results_csv_only_when_asked(tmp_path):
    result = importer.import_records(every_dtype_frame(), mapping=MAPPING, dry_run=True)
    assert not list(tmp_path.glob("*.csv"))
    shown = result.summary.render()
    assert "Why rows would not be created:" in shown and "file" not in shown  # none was written

    result = importer.import_records(
        every_dtype_frame(), mapping=MAPPING, dry_run=True, errors=tmp_path / "e.csv"
    )
    assert result.errors_path == tmp_path / "e.csv" and result.errors_path.exists()
    assert "see the errors file" in result.summary.render()


def test_sandbox_true_runs_in_process_with_a_ledger_of_its_own(tmp_path):
    result = importer.import_records(every_dtype_frame(), mapping=MAPPING, sandbox=True)
    assert result.counts == {"created": 2, "invalid": 2}
    again = importer.import_records(every_dtype_frame(), mapping=MAPPING, sandbox=True)
    assert again.counts == {"created": 2, "invalid": 2}  # a fresh sandbox, a fresh ledger
    assert not (tmp_path / "state").exists()  # the per-user ledger was not touched

    ledger = tmp_path / "ledger.sqlite3"
    importer.import_records(every_dtype_frame(), mapping=MAPPING, sandbox=True, ledger=ledger)
    assert ledger.exists()


def test_on_outcome_error_stops_the_run_and_is_raised(sandbox):
    def fail(outcome):
        raise ValueError("sink is full")

    with pytest.raises(ValueError, match="sink is full"):
        importer.import_records(every_dtype_frame(), mapping=MAPPING, on_outcome=fail)


@pytest.mark.slow
def test_collect_false_keeps_no_outcomes_and_memory_stays_flat(monkeypatch):
    # The in-file duplicate index keeps its recent keys in memory: keep them few, so that
    # what remains to measure is what the API keeps per record.
    monkeypatch.setattr("importer.pipeline.FirstSeen", partial(FirstSeen, in_memory=500))
    base = dt.datetime(2026, 3, 14, tzinfo=dt.UTC)
    mapping = {"activity": {**MAPPING["activity"], "fieldValues": []}}
    mapping["activity"].pop("campaignId")

    def peak(count: int) -> int:
        records = (
            {"Contact": 2000 + i, "Event": "Expo", "Action": "demo", "Scanned": base}
            for i in range(count)
        )
        tracemalloc.start()
        try:
            result = importer.import_records(records, mapping=mapping, dry_run=True, collect=False)
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert result.outcomes == [] and result.counts == {"valid": count}
        return used

    peak(100)  # imports and caches warmed up
    # Kept outcomes would cost about 400 bytes a record: 4 MB more for 10,000 more records.
    assert peak(12_000) - peak(2_000) < 1_000_000


def test_version_comes_from_the_package_metadata_and_goes_in_the_user_agent():
    assert importer.__version__ == metadata.version("eloqua-import")
    assert f"eloqua-import/{importer.__version__} " in USER_AGENT
    assert {"import_file", "import_records", "Result", "RecordOutcome"} <= set(importer.__all__)
    assert all(hasattr(importer, name) for name in importer.__all__)


@pytest.mark.slow
def test_import_importer_loads_each_module_only_when_one_of_its_names_is_used():
    code = (
        "import sys, importer\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('importer'))\n"
        "print(loaded())\n"
        "importer.Status, importer.__version__\n"
        "print(loaded())\n"
        "print(set(importer.__all__) <= set(dir(importer)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        "['importer']",
        "['importer', 'importer._version', 'importer.status']",
        "True",
    ]


@pytest.mark.slow
def test_pandas_is_not_imported_for_dicts_nor_tqdm_by_the_library():
    code = (
        "import sys, importer\n"
        "importer.import_records([{'a': 1}], mapping={'activity': {'assetName': 'x',"
        " 'assetType': 'Tradeshow', 'activityType': 'Registered', 'activityDate': 1773000000,"
        " 'contactId': {'column': 'a'}}}, dry_run=True)\n"
        "print(sorted(m for m in ('pandas', 'tqdm') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELOQUA_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from Python", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert example is not None
    monkeypatch.chdir(ROOT)  # the example names the sample files by relative paths
    exec(compile(example.group(1), "README.md", "exec"), {})
    assert "created" in capsys.readouterr().out


def test_a_long_stretch_of_rows_that_send_nothing_still_lets_the_event_loop_run():
    # 3,000 invalid rows after a valid one: while they are read and recorded, signals (Ctrl-C)
    # and the answers of requests in flight must still be handled, every few hundred rows.
    import asyncio

    seen_by_loop: list[int] = []
    outcomes: list[int] = []

    def on_outcome(outcome) -> None:
        outcomes.append(outcome.row)
        if outcome.row == 1:
            asyncio.get_running_loop().call_soon(lambda: seen_by_loop.append(len(outcomes)))

    mapping = {
        "activity": {
            "assetName": "Expo",
            "assetType": "Tradeshow",
            "activityType": "Visited Booth",
            "activityDate": {"column": "when"},
            "contactId": {"column": "contact"},
        }
    }
    rows = [{"contact": 2001, "when": "2026-03-14 09:00"}]
    rows += [{"contact": "", "when": "2026-03-14 09:00"}] * 3000
    result = importer.import_records(
        rows, mapping=mapping, sandbox=True, dry_run=True, on_outcome=on_outcome
    )
    assert result.counts["invalid"] == 3000
    assert seen_by_loop and seen_by_loop[0] < 3001
