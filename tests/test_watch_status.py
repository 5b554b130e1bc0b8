"""`watch --status-file PATH`: what a scheduler or a health check reads, kept up to date and
replaced atomically; `--log-format json` lines carry the same fields (under "totals")."""

from __future__ import annotations

import json
from pathlib import Path

from test_watch import events, scans

from importer.cli import main
from importer.config import connection_from_env
from importer.sandbox.server import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from importer.watch import EventLog, Watcher, WatchOptions, write_status

MAPPING = (Path(__file__).parent / "fixtures" / "booth_scans.yaml").read_text(encoding="utf-8")


def watch_once(tmp_path: Path, *args: str) -> int:
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    return main(
        ["watch", str(tmp_path / "inbox"), "--mapping", str(tmp_path / "map.yaml"), "--once",
         "--settle", "0", "--status-file", str(tmp_path / "status.json"), *args]
    )  # fmt: skip


def test_status_file_shows_files_rows_and_the_last_error(tmp_path, sandbox):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    scans(inbox / "clean.csv", 4)
    bad = scans(inbox / "bad.csv", 2, first=100)
    bad.write_text(bad.read_text() + "Ann,2003,Spring Expo,danced,03/09/2026 10:00,B12,\n")

    assert watch_once(tmp_path) == 1

    status = json.loads((tmp_path / "status.json").read_text())
    assert (status["state"], status["exit_status"]) == ("stopped", 1)
    assert (status["files_done"], status["files_failed"]) == (1, 1)
    assert status["rows"] == {"created": 6, "invalid": 1}
    assert "bad.csv" in status["last_error"]["message"] and status["last_error"]["time"]
    assert status["last_pass"] and status["updated_at"] and status["pid"]
    assert status["token_expires_at"] is None  # Basic auth: no token to expire
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_json_log_lines_carry_the_same_fields(tmp_path, sandbox, capsys):
    (tmp_path / "inbox").mkdir()
    scans(tmp_path / "inbox" / "a.csv", 3)
    assert watch_once(tmp_path, "--log-format", "json") == 0
    logged = {e["event"]: e for e in events(capsys.readouterr().err)}
    status = json.loads((tmp_path / "status.json").read_text())
    assert logged["file_finished"]["totals"]["files_done"] == 1
    totals = logged["watch_stopped"]["totals"]
    assert totals == {k: v for k, v in status.items() if k not in ("updated_at", "pid", "inbox")}


def test_status_file_shows_when_the_oauth2_token_expires(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)  # OAuth2 password grant
    monkeypatch.setenv("ELOQUA_CLIENT_ID", SANDBOX_CLIENT_ID)
    monkeypatch.setenv("ELOQUA_CLIENT_SECRET", SANDBOX_CLIENT_SECRET)
    monkeypatch.setenv("ELOQUA_TOKEN_FILE", str(tmp_path / "token.json"))
    (tmp_path / "inbox").mkdir()
    scans(tmp_path / "inbox" / "a.csv", 2)
    assert watch_once(tmp_path) == 0
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["token_expires_at"].endswith("Z")


async def test_a_long_running_watcher_writes_the_status_after_every_pass(tmp_path, sandbox):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "map.yaml").write_text(MAPPING, encoding="utf-8")
    seen = []

    async def between_passes(seconds: float) -> None:
        if seconds != 60:  # the settle time, within a pass
            return
        seen.append(json.loads((tmp_path / "status.json").read_text()))
        if len(seen) == 2:
            watcher._request_stop("test over")

    options = WatchOptions(
        inbox=inbox,
        mapping_path=tmp_path / "map.yaml",
        interval=60,
        settle=0,
        ledger_path=tmp_path / "ledger.sqlite3",
        status_file=tmp_path / "status.json",
    )
    watcher = Watcher(options, connection_from_env(), EventLog("json"), sleep=between_passes)
    scans(inbox / "a.csv", 2)
    assert await watcher.run() == 0
    assert [s["state"] for s in seen] == ["watching", "watching"]
    assert seen[0]["files_done"] == 1 and seen[0]["last_pass"]
    final = json.loads((tmp_path / "status.json").read_text())
    assert (final["state"], final["exit_status"]) == ("stopped", 0)


def test_the_status_file_is_replaced_never_rewritten_in_place(tmp_path):
    path = tmp_path / "status.json"
    write_status(path, {"files_done": 1})
    before = path.stat().st_ino
    write_status(path, {"files_done": 2})
    assert json.loads(path.read_text()) == {"files_done": 2}
    assert path.stat().st_ino != before  # a new file renamed over the old: never half-written
