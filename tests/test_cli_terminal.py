"""What the terminal says: why rows were not created and what to do next (issue 12 §3).

The real CLI, against the in-process sandbox (``--sandbox``) or the threaded one the
``sandbox`` fixture points the environment at (standing in for production).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from results_csv import read_results

from importer import report
from importer.cli import main
from importer.report import ResultsWriter, shell_quote
from importer.sandbox.seed import CONTACTS

ROOT = Path(__file__).resolve().parent.parent

SCANS_MAPPING = """\
version: 1
activity:
  assetType: Tradeshow
  assetName: Spring Expo
  activityType: {column: Action, map: {visited: Visited Booth, demo: Viewed a Demo}}
  activityDate: {column: Scan Date, format: "%m/%d/%Y %H:%M", timezone: Europe/London}
  contactId: {column: Contact ID}
"""


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding=encoding)
    return path


def summary_of(capsys) -> str:
    return capsys.readouterr().out


def reimport_command(summary: str) -> list[str]:
    line = next(line for line in summary.splitlines() if "import them again:" in line)
    return shlex.split(line.split("import them again: ", 1)[1])


# --- the reasons -----------------------------------------------------------------------------


def scans_with_many_reasons() -> str:
    lines = ["Contact ID,Scan Date,Action"]
    # Rows 2-46: a day-first export read with a month-first format.
    lines += [f"{2001 + n % 100},14/03/2026 09:{n:02d},visited" for n in range(45)]
    lines += [
        "2001,03/14/2026 10:00,danced",  # 47: not in the map
        "2002,03/14/2026 10:01,sang",  # 48
        "2003,03/14/2026 10:02,slept",  # 49
        "99998,03/14/2026 10:03,visited",  # 50: Eloqua knows no such contact
        "99999,03/14/2026 10:04,visited",  # 51
        ",03/14/2026 10:05,visited",  # 52: blank contact
        ",03/14/2026 10:06,visited",  # 53
        "abc,03/14/2026 10:07,visited",  # 54: not an id
        "2004,03/14/2026 10:08,visited",  # 55: created
        "2004,03/14/2026 10:08,visited",  # 56: duplicate of 55
    ]
    return "\n".join(lines) + "\n"


def test_summary_groups_the_reasons_rows_were_not_created_with_counts_and_rows(tmp_path, capsys):
    data = write(tmp_path, "scans.csv", scans_with_many_reasons())
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 1
    summary = summary_of(capsys)
    reasons = summary.split("Why rows were not created:\n", 1)[1].splitlines()
    assert reasons[0] == (
        "  45 invalid   Scan Date: '14/03/2026 09:00' does not match the format"
        ' "%m/%d/%Y %H:%M"; it matches "%d/%m/%Y %H:%M": fix the format (or the value)'
        "  (rows 2-46)"
    )
    assert reasons[1].startswith("   3 invalid   Action: value 'danced' is not in the map")
    assert reasons[1].endswith("(rows 47-49)")
    # Messages that differ only by the value group together; Eloqua's answers too.
    # Equal counts come in the order first seen: the blanks were read before Eloqua answered.
    assert re.match(r"   2 invalid   'Contact ID' is blank .*\(rows 52-53\)$", reasons[2])
    assert re.match(r"   2 rejected  .*9999[89].*\(rows 50-51\)$", reasons[3])
    assert re.match(r"   1 invalid   Contact ID: contactId must be .*\(row 54\)$", reasons[4])
    # Five at most; the rest (here the duplicate, not an error) is counted.
    assert reasons[5] == "  and 1 more row for other reasons: see the results file"
    assert reasons[6].startswith("Results: ")


def test_skipped_rows_get_one_summary_line_per_rule_and_value(tmp_path, capsys):
    data = write(
        tmp_path,
        "orders.csv",
        """\
        Contact ID,Scan Date,Action,Status
        2001,03/14/2026 09:00,visited,Refunded
        2002,03/14/2026 09:01,visited,Not Attending
        2003,03/14/2026 09:02,visited,Refunded
        2004,03/14/2026 09:03,visited,refunded
        2005,03/14/2026 09:04,visited,Attending
        2006,03/14/2026 09:05,visited,
        """,
    )
    rules = (
        "skip_if:\n"
        "  - {column: Status, in: [Refunded, Not Attending]}\n"
        "  - {column: Status, blank: true}\n"
    )
    mapping = write(tmp_path, "map.yaml", rules + SCANS_MAPPING)
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 0
    reasons = summary_of(capsys).split("Why rows were not created:\n", 1)[1].splitlines()
    # Row 3 is "Not Attending": it has a line of its own, not a place among the Refunded.
    assert reasons[:3] == [
        '  3 skipped  skip_if: Status is "Refunded"  (rows 2, 4-5)',
        '  1 skipped  skip_if: Status is "Not Attending"  (row 3)',
        "  1 skipped  skip_if: Status is blank  (row 7)",
    ]
    assert reasons[3].startswith("Results: ")


def test_reasons_keep_a_few_row_numbers_however_many_rows(tmp_path):
    reasons = report.Reasons()
    for row in [*range(2, 10), 20, 30, *range(40, 10_000, 2)]:
        reasons.add("invalid", row, f"Email: '{row}@x' is not valid", column="Email", code="c")
    (reason,) = reasons.groups.values()
    assert reason.count == 8 + 2 + 4980
    assert reason.rows_text() == "rows 2-9, 20, 30, ..."
    assert len(reason.runs) == report.ROW_RUNS
    # Rows sent to Eloqua finish in any order.
    unordered = report.Reason("rejected", "no contact", error=True)
    for row in (51, 53, 50, 52, 60):
        unordered.add(row)
    assert unordered.rows_text() == "rows 50-53, 60"


def test_summary_lists_five_reasons_then_points_to_the_errors_file():
    reasons = report.Reasons()
    for kind in range(7):
        for row in range(10 * kind, 10 * kind + 7 - kind):
            reasons.add("invalid", row, f"problem {kind}", column="C", code=f"k{kind}")
    reasons.add("skipped", 99, "left out on purpose", error=False)
    lines = reasons.render()
    assert len(lines) == 1 + 5 + 1
    assert [line.split()[0] for line in lines[1:6]] == ["7", "6", "5", "4", "3"]
    assert lines[-1] == "  and 4 more rows for other reasons: see the errors file"


# --- the re-import command -------------------------------------------------------------------


def test_reimport_command_keeps_sandbox_and_every_option_that_shaped_the_run(
    tmp_path, sandbox, capsys
):
    """Pasting the printed command after a sandbox trial must not send to production (the
    ``sandbox`` fixture's server, which the environment's credentials point at)."""
    data = write(
        tmp_path,
        "booth scans.csv",
        "Contact ID;Scan Date;Action\n2001;03/14/2026 09:00;visited\n2002;03/14/2026 09:05;x\n",
    )
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    ledger = tmp_path / "my ledger.sqlite3"
    args = ["--concurrency", "3", "--timeout", "30", "--delimiter", ";", "--ledger", str(ledger)]
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet", *args]) == 1
    command = reimport_command(summary_of(capsys))
    errors = tmp_path / "booth scans.errors.csv"
    assert command[:5] == ["eloqua-import", "run", str(errors), "--mapping", str(mapping)]
    assert set(command[5:]) >= {"--sandbox", *args}

    errors.write_text(errors.read_text(encoding="utf-8-sig").replace(";x;", ";demo;"), "utf-8")
    assert main([*command[1:], "--quiet"]) == 0
    assert sandbox.state.request_counts["activity_post"] == 0  # nothing went to "production"
    again = read_results(tmp_path / "booth scans.errors.results.csv")
    assert [line["status"] for line in again.values()] == ["created"]


def test_dry_run_summary_says_would_not_be_created_and_to_check_the_fixed_input_again(
    tmp_path, capsys
):
    data = write(
        tmp_path,
        "booth scans.csv",
        "Exported by BadgeScan\nContact ID;Scan Date;Action\n2001;03/14/2026 09:00;x\n",
    )
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    options = ["--header-row", "2", "--delimiter", ";", "--concurrency", "3", "--sandbox"]
    run = ["run", str(data), "--mapping", str(mapping), "--dry-run", "--quiet", *options]
    assert main(run) == 1
    summary = summary_of(capsys)
    assert "Why rows would not be created:\n" in summary
    assert "Why rows were not created" not in summary
    assert "  Each row that would not be created, with its reason: see the errors file" in summary
    errors = tmp_path / "booth scans.dry-run.errors.csv"
    assert f"Rows that would not be created: {errors}\n" in summary
    # Not "fix them there, then import them again": the input is fixed, then checked whole.
    assert "import them again" not in summary
    line = next(line for line in summary.splitlines() if "check it again: " in line)
    assert line.startswith("  Fix the input file (or the mapping), then check it again: ")
    command = shlex.split(line.split("check it again: ", 1)[1])
    assert command[:5] == ["eloqua-import", "run", str(data), "--mapping", str(mapping)]
    assert command[5] == "--dry-run" and sorted(command[6:]) == sorted(options)

    # Fixed as advised, the printed command checks the file again: every row would be created.
    data.write_text(data.read_text(encoding="utf-8").replace(";x", ";demo"), encoding="utf-8")
    assert main([*command[1:], "--quiet"]) == 0
    assert "would not be created" not in summary_of(capsys)


def test_real_run_summary_points_to_the_errors_file_for_each_row_not_created(tmp_path, capsys):
    data = write(tmp_path, "scans.csv", "Contact ID,Scan Date,Action\n2001,03/14/2026 09:00,x\n")
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 1
    summary = summary_of(capsys)
    assert "Why rows were not created:\n" in summary
    assert "  Each row not created, with its reason: see the errors file\n" in summary
    assert "Every row with its reason" not in summary
    assert reimport_command(summary)[2] == str(tmp_path / "scans.errors.csv")


def test_reimport_command_reads_the_utf8_errors_file_despite_the_mappings_encoding(
    tmp_path, capsys
):
    data = write(
        tmp_path,
        "salon.csv",
        "Contact ID;Scan Date;Action\n2001;03/14/2026 09:00;visité\n",
        encoding="cp1252",
    )
    mapping = write(
        tmp_path,
        "map.yaml",
        SCANS_MAPPING.replace("activity:", 'source: {encoding: cp1252, delimiter: ";"}\nactivity:'),
    )
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 1
    command = reimport_command(summary_of(capsys))
    assert command[-2:] == ["--encoding", "utf-8"] or "--encoding" in command
    assert main([*command[1:], "--quiet"]) == 1
    again = read_results(tmp_path / "salon.errors.results.csv")
    assert again[2]["Action"] == "visité"  # read as UTF-8, not as cp1252 mojibake


def test_shell_quoting_for_posix_and_windows():
    assert shell_quote("my file.csv", windows=False) == "'my file.csv'"
    assert shell_quote(";", windows=False) == "';'"
    assert shell_quote(r"C:\Data\scans.csv", windows=True) == r"C:\Data\scans.csv"
    assert shell_quote(r"C:\My Data\a.csv", windows=True) == r'"C:\My Data\a.csv"'
    assert shell_quote('say "hi"', windows=True) == '"say ""hi"""'
    assert shell_quote(";", windows=True) == '";"'


# --- an earlier run's files are kept ---------------------------------------------------------


def test_a_rerun_moves_the_earlier_results_and_errors_aside_and_says_so(tmp_path, capsys):
    data = write(tmp_path, "scans.csv", "Contact ID,Scan Date,Action\n2001,03/14/2026 09:00,x\n")
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    command = ["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]
    assert main(command) == 1
    results, errors = tmp_path / "scans.results.csv", tmp_path / "scans.errors.csv"
    first_results, first_errors = results.read_bytes(), errors.read_bytes()
    when = dt.datetime(2026, 3, 14, 9, 5, 1).timestamp()  # local time, as the user sees it
    for path in (results, errors):
        os.utime(path, (when, when))
    taken = tmp_path / "scans.results.2026-03-14T090501.csv"
    taken.write_text("someone else's file", encoding="utf-8")  # never overwritten
    capsys.readouterr()

    assert main(command) == 1
    summary = summary_of(capsys)
    assert (tmp_path / "scans.results.2026-03-14T090501-2.csv").read_bytes() == first_results
    assert taken.read_text(encoding="utf-8") == "someone else's file"
    assert (tmp_path / "scans.errors.2026-03-14T090501.csv").read_bytes() == first_errors
    assert "The earlier scans.results.csv was kept: moved to" in summary
    assert "scans.results.2026-03-14T090501-2.csv" in summary
    assert "scans.errors.2026-03-14T090501.csv" in summary
    assert read_results(results)[2]["status"] == "invalid"  # the new run's own results


def test_results_files_open_without_posix_locks(tmp_path, monkeypatch):
    """Windows has no fcntl: writing results must not depend on it."""
    monkeypatch.setattr(report, "fcntl", None)
    monkeypatch.setattr(report, "msvcrt", None)
    path = tmp_path / "r.csv"
    path.write_text("old", encoding="utf-8")
    writer = ResultsWriter(path, ["Email"])
    writer.write(2, "created", ["a@b.com"], activity_id="7")
    writer.close()
    assert read_results(path)[2]["activity_id"] == "7"
    assert writer.moved_aside is not None and writer.moved_aside.read_text() == "old"


@pytest.mark.slow
def test_run_and_check_need_no_posix_only_module(tmp_path):
    """As on Windows: fcntl cannot be imported, and run and check still work."""
    data = write(tmp_path, "scans.csv", "Contact ID,Scan Date,Action\n2001,03/14/2026 09:00,demo\n")
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    script = (
        "import sys; sys.modules['fcntl'] = None\n"  # `import fcntl` now raises ImportError
        "from importer.cli import main\n"
        f"assert main(['run', {str(data)!r}, '--mapping', {str(mapping)!r}, '--sandbox']) == 0\n"
        "assert main(['check', '--sandbox']) == 0\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert read_results(tmp_path / "scans.results.csv")[2]["status"] == "created"


# --- the errors file -------------------------------------------------------------------------


def test_errors_file_uses_the_inputs_delimiter_bom_and_cells_as_read(tmp_path, capsys):
    cells = ["007", "  spaced  ", 'say "hi"; bye', "line\nbreak"]
    with (tmp_path / "scans.csv").open("w", encoding="cp1252", newline="") as file:
        out = csv.writer(file, delimiter=";")
        out.writerow(["Contact ID", "Scan Date", "Action", "Note", "Other", "More", "Last"])
        out.writerow(["2001", "03/14/2026 09:00", "nope", *cells])
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    code = main(["run", str(tmp_path / "scans.csv"), "--mapping", str(mapping), "--sandbox"])
    assert code == 1
    raw = (tmp_path / "scans.errors.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").startswith("Contact ID;Scan Date;Action;Note;")
    with (tmp_path / "scans.errors.csv").open(encoding="utf-8-sig", newline="") as file:
        header, line = list(csv.reader(file, delimiter=";"))
    assert line[:7] == ["2001", "03/14/2026 09:00", "nope", *cells]
    assert header[-2:] == ["error", "source_row"]


def test_reimported_errors_file_gives_results_one_error_column_and_its_previous_error(
    tmp_path, capsys
):
    data = write(tmp_path, "scans.csv", "Contact ID,Scan Date,Action\n2001,03/14/2026 09:00,x\n")
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 1
    with (tmp_path / "scans.errors.csv").open(encoding="utf-8-sig", newline="") as file:
        old_error = next(csv.DictReader(file))["error"]
    command = reimport_command(summary_of(capsys))
    assert main([*command[1:], "--quiet"]) == 1  # not fixed: invalid again
    summary = summary_of(capsys)
    assert "note: column 4 'error' (the reason this errors file gives) is called" in summary

    with (tmp_path / "scans.errors.results.csv").open(encoding="utf-8-sig", newline="") as file:
        header, line = list(csv.reader(file))
    assert header.count("error") == 1 and header[5] == "error"  # the results' own
    assert header[-2:] == ["previous error", "source_row"]
    assert line[-2:] == [old_error, "2"]  # the cells as the errors file has them
    assert line[-2].startswith("invalid: Action: value 'x' is not in the map")
    assert line[5].startswith("Action: value 'x' is not in the map")

    # And the next errors file, read again, still gives one error column.
    again = tmp_path / "scans.errors.errors.csv"
    assert main(["run", str(again), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 1
    with (tmp_path / "scans.errors.errors.results.csv").open(encoding="utf-8-sig") as file:
        assert next(csv.reader(file)).count("error") == 1


# --- hints and names -------------------------------------------------------------------------


def test_blank_email_for_required_contact_never_suggests_required_false(tmp_path, sandbox):
    data = write(tmp_path, "r.csv", "Email,When,Booth\n,2026-03-14 10:00,\n")
    mapping = write(
        tmp_path,
        "m.yaml",
        """\
        version: 1
        activity:
          assetType: Tradeshow
          assetName: Spring Expo
          activityType: Visited Booth
          activityDate: {column: When}
          contactId: {lookup: contact, column: Email}
          fieldValues:
            - {id: "12", column: Booth}
        """,
    )
    results = tmp_path / "results.csv"
    assert main(["run", str(data), "--mapping", str(mapping), "--results", str(results)]) == 1
    error = read_results(results)[2]["error"]
    assert error.startswith("'Email' is blank but contactId is required")
    assert "required: false" not in error
    # A field Eloqua does not require may still be made optional.
    data.write_text("Email,When,Booth\njose.nunez@example.com,2026-03-14 10:00,\n", "utf-8")
    assert main(["run", str(data), "--mapping", str(mapping), "--results", str(results)]) == 1
    assert "(or 'required: false')" in read_results(results)[2]["error"]


def test_unknown_campaign_name_lists_the_nearest_names(tmp_path, capsys):
    data = write(tmp_path, "c.csv", "Contact,When\n2001,2026-03-14 10:00\n")
    mapping = write(
        tmp_path,
        "c.yaml",
        """\
        version: 1
        activity:
          assetType: Tradeshow
          assetName: Spring Expo
          activityType: Visited Booth
          activityDate: {column: When}
          contactId: {column: Contact}
          campaignId: {lookup: campaign, value: Spring Expo 2025}
        """,
    )
    assert main(["run", str(data), "--mapping", str(mapping), "--sandbox", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "no Eloqua campaign named 'Spring Expo 2025' (did you mean 'Spring Expo 2026'?)" in error


def test_check_sandbox_and_sandbox_help_say_what_the_sandbox_holds(capsys):
    out = io.StringIO()
    assert main(["check", "--sandbox"], stdout=out) == 0
    for text in ("2001", "jose.nunez@example.com", "ids 2001 to 2120", "37 'Spring Expo 2026'"):
        assert text in out.getvalue()
    with pytest.raises(SystemExit):
        main(["sandbox", "--help"])
    help_text = capsys.readouterr().out
    assert "jose.nunez@example.com" in help_text and "Webinar Series 2026" in help_text
    # The rest of the contacts: a command to run, not a source file to read.
    for shown in (out.getvalue(), help_text):
        assert "To list every contact: eloqua-import check --sandbox --contacts" in shown
        assert "seed.py" not in shown


def test_check_sandbox_contacts_lists_every_contact_with_id_email_and_name(capsys):
    out = io.StringIO()
    assert main(["check", "--sandbox", "--contacts"], stdout=out) == 0
    listed = out.getvalue()
    for cid, first, last, email in CONTACTS:
        assert f"    {cid}  {email}  ({first} {last})\n" in listed
    assert "To list every contact" not in listed
    # Eloqua's own contacts are not listed (there may be millions).
    assert main(["check", "--contacts"], stdout=out) == 2
    assert "--contacts lists the built-in sandbox's contacts: add --sandbox" in (
        capsys.readouterr().err
    )


def test_dry_run_preview_shows_the_ids_the_lookups_found(tmp_path, capsys):
    data = write(
        tmp_path,
        "r.csv",
        "Email,When\nJOSE.NUNEZ@example.com,2026-03-14 10:00\nnew.person@example.com,"
        "2026-03-14 10:05\n",
    )
    mapping = write(
        tmp_path,
        "m.yaml",
        """\
        version: 1
        activity:
          assetType: Webinar
          assetName: Data Privacy
          activityType: Attended
          activityDate: {column: When}
          contactId: {lookup: contact, column: Email, create_missing: true}
          campaignId: {lookup: campaign, value: Webinar Series 2026}
        """,
    )
    command = ["run", str(data), "--mapping", str(mapping), "--sandbox", "--dry-run", "--quiet"]
    assert main(command) == 0
    previews = [line for line in summary_of(capsys).splitlines() if "would send" in line]
    assert '"contactId": 2001' in previews[0] and '"campaignId": 38' in previews[0]
    assert "<the " not in previews[0]
    assert "<a new contact for 'new.person@example.com', created by the real run>" in previews[1]


# --- a closed pipe ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["check", "--sandbox"],
        ["sandbox", "--help"],
        ["run", "DATA", "--mapping", "MAPPING", "--sandbox"],
    ],
    ids=["check", "help", "run"],
)
def test_output_into_a_closed_pipe_exits_quietly(tmp_path, args):
    data = write(tmp_path, "scans.csv", "Contact ID,Scan Date,Action\n2001,03/14/2026 09:00,x\n")
    mapping = write(tmp_path, "map.yaml", SCANS_MAPPING)
    args = [{"DATA": str(data), "MAPPING": str(mapping)}.get(arg, arg) for arg in args]
    reader, writer = os.pipe()
    os.close(reader)  # like `| head -1` that has already read its line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "importer", *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.stderr.decode() == ""
    # argparse itself ignores a closed pipe while printing --help: then it ends as usual.
    assert done.returncode in ((0, 141) if "--help" in args else (141,))
    if args[0] == "run":  # the import itself finished and says so in its results
        assert read_results(tmp_path / "scans.results.csv")[2]["status"] == "invalid"
