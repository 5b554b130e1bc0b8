"""Bad input and usage: a clear message naming the problem, exit 2, no traceback, nothing sent.
(That every command's help has examples: test_docs.py.)"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from importer.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "attendees.csv"
MAPPING = ROOT / "mappings" / "attendees.yaml"


def run_cli(tmp_path: Path, *args: str) -> int:
    return main(["run", *args, "--results", str(tmp_path / "r.csv"), "--quiet"])


@pytest.mark.slow
def test_python_dash_m_importer_shows_help():
    done = subprocess.run(
        [sys.executable, "-m", "importer", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert "run" in done.stdout and "sandbox" in done.stdout


def test_missing_input_file_is_exit_2_naming_it(tmp_path, sandbox, capsys):
    assert run_cli(tmp_path, str(tmp_path / "nope.csv"), "--mapping", str(MAPPING)) == 2
    err = capsys.readouterr().err
    assert "nope.csv" in err and "not found" in err and "Traceback" not in err
    assert sum(sandbox.state.request_counts.values()) == 0


def test_yaml_syntax_error_is_exit_2_with_line(tmp_path, sandbox, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nactivity:\n  assetType: Tradeshow\n   name: x\n", encoding="utf-8")
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "line 4" in err
    assert sum(sandbox.state.request_counts.values()) == 0


def test_missing_sheet_lists_the_sheets(tmp_path, capsys):
    workbook = ROOT / "samples" / "webinar.xlsx"
    mapping = ROOT / "mappings" / "webinar.yaml"
    args = [str(workbook), "--mapping", str(mapping), "--sheet", "Registrants", "--dry-run"]
    assert run_cli(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert "Registrants" in err and "Attendees" in err and "Summary" in err


def test_header_only_file_is_not_an_error(tmp_path, sandbox, capsys):
    data = tmp_path / "empty.csv"
    data.write_text(SAMPLE.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert run_cli(tmp_path, str(data), "--mapping", str(MAPPING)) == 0
    assert "no data rows" in capsys.readouterr().out
    assert sandbox.state.activities == []


def test_results_path_in_missing_folder_is_exit_2(tmp_path, capsys):
    args = ["run", str(SAMPLE), "--mapping", str(MAPPING), "--dry-run", "--quiet"]
    assert main([*args, "--results", str(tmp_path / "no" / "such" / "r.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_results_path_may_not_overwrite_the_input(tmp_path, capsys):
    data = tmp_path / "a.csv"
    data.write_bytes(SAMPLE.read_bytes())
    args = ["run", str(data), "--mapping", str(MAPPING), "--dry-run", "--quiet"]
    assert main([*args, "--results", str(data)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert data.read_bytes() == SAMPLE.read_bytes()


def test_dry_run_needs_no_credentials_and_keeps_real_results(tmp_path, monkeypatch, capsys):
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD", "ELOQUA_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "attendees.results.csv").write_text("a real run's results", encoding="utf-8")
    assert main(["run", str(SAMPLE), "--mapping", str(MAPPING), "--dry-run", "--quiet"]) == 0
    assert (tmp_path / "attendees.results.csv").read_text(encoding="utf-8") == (
        "a real run's results"
    )
    assert (tmp_path / "attendees.dry-run.results.csv").exists()


def test_bad_option_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", str(SAMPLE), "--mapping", str(MAPPING), "--concurrency", "0"])
    assert done.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err


def test_a_results_file_that_cannot_be_written_stops_before_sending(tmp_path, sandbox, capsys):
    full = "/dev/full"  # every write fails with "No space left on device"
    args = ["run", str(SAMPLE), "--mapping", str(MAPPING), "--quiet", "--results", full]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot write /dev/full" in err and "Traceback" not in err
    assert sandbox.state.request_counts.get("activity_post", 0) == 0


def test_two_runs_never_write_into_the_same_results_file(tmp_path, capsys):
    import fcntl

    results = tmp_path / "r.csv"
    results.write_text("the other run's lines\n", encoding="utf-8")
    with results.open("a") as other:  # another run holds it
        fcntl.flock(other, fcntl.LOCK_EX)
        args = ["run", str(SAMPLE), "--mapping", str(MAPPING), "--dry-run", "--quiet"]
        assert main([*args, "--results", str(results)]) == 2
    assert "another run is writing" in capsys.readouterr().err
    assert results.read_text(encoding="utf-8") == "the other run's lines\n"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ELOQUA_ACCESS_TOKEN", "tok-SECRET\nrest"),
        ("ELOQUA_PASSWORD", "pw-SECRET\r\n"),
        ("ELOQUA_USERNAME", "api.user\x1bSECRET"),
        ("ELOQUA_COMPANY", "Acme\tSECRET"),
    ],
)
def test_a_credential_with_a_line_break_is_exit_2_naming_the_variable_never_the_value(
    tmp_path, sandbox, monkeypatch, capsys, variable, value
):
    if variable == "ELOQUA_ACCESS_TOKEN":
        monkeypatch.delenv("ELOQUA_PASSWORD")
    monkeypatch.setenv(variable, value)
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(MAPPING)) == 2
    err = capsys.readouterr().err
    assert f"{variable} contains a line break or another control character" in err
    assert "SECRET" not in err and "unexpected" not in err and "Traceback" not in err
    assert sum(sandbox.state.request_counts.values()) == 0


def test_check_with_a_token_holding_a_newline_is_exit_2(sandbox, monkeypatch, capsys):
    monkeypatch.setenv("ELOQUA_ACCESS_TOKEN", "sandbox\n-token")
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "ELOQUA_ACCESS_TOKEN" in err and "sandbox\n-token" not in err


def _mapping_with_asset_name(tmp_path: Path, asset_name: str) -> Path:
    text = MAPPING.read_text(encoding="utf-8")
    lines = [
        f"  assetName: {asset_name}" if line.startswith("  assetName:") else line
        for line in text.splitlines()
    ]
    assert lines != text.splitlines(), "the sample mapping names assetName on one line"
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_mapping_nested_thousands_deep_is_exit_2_not_a_crash(tmp_path, sandbox, capsys):
    depth = 100_000
    mapping = _mapping_with_asset_name(tmp_path, "[" * depth + "]" * depth)
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(mapping)) == 2
    err = capsys.readouterr().err
    assert "m.yaml" in err and "nested more than" in err and "Traceback" not in err
    assert sum(sandbox.state.request_counts.values()) == 0


def test_alias_bomb_in_a_default_is_refused_quickly_in_bounded_memory(tmp_path, sandbox, capsys):
    # "Billion laughs": each level repeats the one before 9 times; 9**7 values in a few lines.
    levels = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    for level in range(1, 7):
        levels.append(f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    bomb = "{column: Booth, default: [" + ", ".join(levels) + "]}"
    mapping = _mapping_with_asset_name(tmp_path, bomb)
    tracemalloc.start()
    try:
        assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(mapping)) == 2
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert "m.yaml" in err and "aliases (*name) expand to more than" in err
    assert len(err) < 1000, "the expanded value is never written into the message"
    assert peak < 50 * 1024 * 1024
    assert sum(sandbox.state.request_counts.values()) == 0


def test_long_values_in_mapping_messages_are_cut_to_an_excerpt(tmp_path, capsys):
    long_list = "[" + "x" * 500_000 + "]"
    mapping = _mapping_with_asset_name(tmp_path, "{column: Booth, default: " + long_list + "}")
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(mapping), "--dry-run") == 2
    err = capsys.readouterr().err
    assert "'default' must be a single text or number" in err and len(err) < 1000


def test_mapping_file_larger_than_a_megabyte_is_refused(tmp_path, capsys):
    mapping = _mapping_with_asset_name(tmp_path, "'" + "x" * 2_000_000 + "'")
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(mapping), "--dry-run") == 2
    err = capsys.readouterr().err
    assert "larger than 1024 KB" in err and len(err) < 1000


def test_aliases_that_stay_small_still_work(tmp_path, capsys):
    text = MAPPING.read_text(encoding="utf-8")
    assert text.count("version: 1") == 1 and "\nsource:" not in text
    mapping = tmp_path / "m.yaml"
    aliased = text.replace("version: 1", "version: &one 1\nsource: {header_row: *one}")
    mapping.write_text(aliased, encoding="utf-8")
    assert run_cli(tmp_path, str(SAMPLE), "--mapping", str(mapping), "--dry-run") == 0
