"""The web page's server over HTTP (no browser): its safety rules, uploads, saving, jobs.

Each safety rule of issue 13 has a test here; the browser tests (test_ui_browser.py) cover
the page itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import importer
from importer import cli
from importer.sandbox.server import SANDBOX_PASSWORD, SandboxConfig, SandboxServer
from importer.ui.security import COOKIE, TOKEN_HEADER
from importer.ui.server import UiOptions, UiServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
MAPPINGS = ROOT / "mappings"


class Page:
    """A logged-in client of the page's server: the cookie from the URL, the token header."""

    def __init__(self, ui: UiServer, session: aiohttp.ClientSession) -> None:
        self.ui, self.session = ui, session
        self.base = ui.url.split("/?")[0]
        self.headers = {TOKEN_HEADER: ui.token}

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body, headers=self.headers) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.json()

    async def upload(self, path: Path, name: str | None = None) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", path.read_bytes(), filename=name or path.name)
        url = self.base + "/api/upload"
        async with self.session.post(url, data=form, headers=self.headers) as r:
            return r.status, await r.json()

    async def finish(self, job: dict[str, Any]) -> dict[str, Any]:
        """Follow the job's server-sent events to its end; the last snapshot."""
        last: dict[str, Any] = {}
        async with self.session.get(f"{self.base}/api/jobs/{job['id']}/events") as events:
            async for line in events.content:
                if line.startswith(b"data:"):
                    last = json.loads(line[5:])
        return last


@contextlib.asynccontextmanager
async def logged_in(options: UiOptions) -> AsyncIterator[Page]:
    """The page's server, and a client that opened the printed address (so holds the cookie)."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with UiServer(options) as ui, aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(ui.url) as answer:
            assert answer.status == 200
        yield Page(ui, session)


@pytest.fixture
async def page(tmp_path) -> AsyncIterator[Page]:
    options = UiOptions(sandbox=True, mappings=MAPPINGS, state=tmp_path / "ui", open_browser=False)
    async with logged_in(options) as page:
        yield page


def fake_serve(served: list[UiOptions]) -> Any:
    return lambda options, announce: served.append(options)


async def test_the_printed_url_sets_a_strict_httponly_cookie_then_leaves_the_address(tmp_path):
    options = UiOptions(sandbox=True, state=tmp_path, open_browser=False)
    async with UiServer(options) as ui, aiohttp.ClientSession() as session:
        answer = await session.get(ui.url, allow_redirects=False)
        assert answer.status == 303 and answer.headers["Location"] == "/"
        cookie = answer.headers["Set-Cookie"]
        answer.release()
    assert f"{COOKIE}={ui.token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


@pytest.mark.parametrize("path", ["/", "/api/connection", "/api/jobs", "/static/app.js"])
async def test_every_request_without_the_token_is_refused(tmp_path, path):
    async with UiServer(UiOptions(sandbox=True, state=tmp_path, open_browser=False)) as ui:
        base = ui.url.split("/?")[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(base + path) as answer:
                assert answer.status == 403
            async with session.get(base + "/?token=wrong") as answer:
                assert answer.status == 403
            async with session.get(base + path, cookies={COOKIE: "guess"}) as answer:
                assert answer.status == 403


async def test_another_host_name_is_refused_even_with_the_cookie(page):
    """DNS rebinding: evil.example resolving to 127.0.0.1 would send Host: evil.example."""
    port = page.ui.port
    async with page.session.get(
        f"{page.base}/api/connection", headers={"Host": f"evil.example:{port}"}
    ) as answer:
        assert answer.status == 403
    status, _ = await page.get("/api/connection")
    assert status == 200


async def test_a_change_without_the_token_header_is_refused(page):
    """CSRF: a form of another site can make the browser send the cookie, not the header."""
    async with page.session.post(
        page.base + "/api/save", json={"name": "x.yaml", "yaml": "version: 1"}
    ) as answer:
        assert answer.status == 403
    async with page.session.get(page.base + "/api/save") as answer:
        assert answer.status in (404, 405)  # never a change by GET


async def test_answers_forbid_framing_and_foreign_scripts(page):
    async with page.session.get(page.base + "/") as answer:
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        html = await answer.text()
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


async def test_upload_names_never_become_paths(page, tmp_path):
    status, answer = await page.upload(SAMPLES / "attendees.csv", name="../../../etc/evil.csv")
    assert status == 200
    upload = page.ui.uploads[answer["upload"]]
    assert upload.path.parent == page.ui.upload_dir()
    assert ".." not in upload.path.name and "evil" not in upload.path.name
    folder = page.ui.upload_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "etc").exists()


async def test_an_upload_over_the_limit_is_refused_and_not_kept(tmp_path):
    options = UiOptions(sandbox=True, state=tmp_path, upload_limit=1000, open_browser=False)
    async with logged_in(options) as page:
        status, answer = await page.upload(SAMPLES / "attendees.csv")
        assert status == 413
        assert "limit" in answer["error"]
        assert list(page.ui.upload_dir().iterdir()) == []


async def test_a_file_that_is_not_a_spreadsheet_is_refused_by_its_type(page):
    status, answer = await page.upload(SAMPLES / "attendees.csv", name="run.sh")
    assert status == 400 and "CSV, XLSX" in answer["error"]


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("application/json", b"{}"),
        ("multipart/form-data", b"xx"),  # no boundary
        ("multipart/form-data; boundary=zz", b"garbage"),  # the boundary never comes
    ],
)
async def test_an_upload_that_is_not_a_form_is_a_clear_400(page, content_type, body):
    headers = {**page.headers, "Content-Type": content_type}
    async with page.session.post(page.base + "/api/upload", data=body, headers=headers) as r:
        assert r.status == 400
        assert "no file in the upload" in (await r.json())["error"]
    assert list(page.ui.upload_dir().iterdir()) == []


async def test_the_preview_finds_the_header_below_a_zoom_preamble(page):
    status, answer = await page.upload(SAMPLES / "zoom-attendees.csv")
    assert status == 200
    assert answer["detected_header_row"] == 12
    number, cells = answer["rows"][0]
    assert number == 12 and "Email" in cells


async def test_saving_a_mapping_never_overwrites_without_asking(page, tmp_path):
    page.ui.options.mappings = tmp_path / "maps"
    text = (MAPPINGS / "attendees.yaml").read_text()
    status, answer = await page.post("/api/save", {"name": "booth.yaml", "yaml": text})
    assert status == 200 and (tmp_path / "maps" / "booth.yaml").read_text() == text
    status, answer = await page.post("/api/save", {"name": "booth.yaml", "yaml": "version: 1\n"})
    assert status == 409 and answer["exists"]
    assert (tmp_path / "maps" / "booth.yaml").read_text() == text
    status, _ = await page.post(
        "/api/save", {"name": "booth.yaml", "yaml": "version: 1\n", "overwrite": True}
    )
    assert status == 200 and (tmp_path / "maps" / "booth.yaml").read_text() == "version: 1\n"


@pytest.mark.parametrize("name", ["../escape.yaml", "/tmp/x.yaml", "sub/x.yaml", "x.txt", ".yaml"])
async def test_a_mapping_is_saved_only_by_plain_name(page, tmp_path, name):
    page.ui.options.mappings = tmp_path / "maps"
    status, _ = await page.post("/api/save", {"name": name, "yaml": "version: 1\n"})
    assert status == 400
    assert not (tmp_path / "escape.yaml").exists()


async def test_a_mapping_is_opened_only_from_the_list(page):
    status, _ = await page.post("/api/mapping", {"name": "../pyproject.toml"})
    assert status == 404
    status, answer = await page.post("/api/mapping", {"name": "attendees.yaml"})
    assert status == 200 and answer["document"]["activity"]["assetType"] == "Tradeshow"


async def test_check_then_import_through_the_page_creates_each_row_once(page):
    _, upload = await page.upload(SAMPLES / "attendees.csv")
    _, mapping = await page.post("/api/mapping", {"name": "attendees.yaml"})
    body = {"upload": upload["upload"], "yaml": mapping["yaml"], "mapping_name": "x.yaml"}
    status, job = await page.post("/api/check", body)
    assert status == 200
    checked = await page.finish(job)
    assert checked["counts"] == {"valid": 60} and page.ui.sandbox.state.activities == []
    _, job = await page.post("/api/import", body)
    done = await page.finish(job)
    assert done["counts"] == {"created": 60}
    _, job = await page.post("/api/import", body)
    again = await page.finish(job)
    assert again["counts"] == {"already_created": 60}
    assert len(page.ui.sandbox.state.activities) == 60


async def test_one_import_per_file_at_a_time(tmp_path):
    options = UiOptions(
        sandbox=True,
        mappings=MAPPINGS,
        state=tmp_path,
        open_browser=False,
        sandbox_config=SandboxConfig(latency=0.5),
    )
    async with logged_in(options) as page:
        _, first = await page.upload(SAMPLES / "attendees.csv")
        _, second = await page.upload(SAMPLES / "attendees.csv", name="copy.csv")
        _, mapping = await page.post("/api/mapping", {"name": "attendees.yaml"})
        body = {"upload": first["upload"], "yaml": mapping["yaml"]}
        status, job = await page.post("/api/import", body)
        assert status == 200
        status, answer = await page.post("/api/import", {**body, "upload": second["upload"]})
        assert status == 409 and "is running" in answer["error"]
        await page.post(f"/api/jobs/{job['id']}/stop", {})
        await page.finish(job)


async def test_recent_imports_are_listed_after_a_restart(tmp_path):
    options = UiOptions(sandbox=True, mappings=MAPPINGS, state=tmp_path, open_browser=False)
    for _ in range(2):
        async with logged_in(options) as page:
            _, upload = await page.upload(SAMPLES / "attendees.csv")
            _, mapping = await page.post("/api/mapping", {"name": "attendees.yaml"})
            _, job = await page.post(
                "/api/check", {"upload": upload["upload"], "yaml": mapping["yaml"]}
            )
            await page.finish(job)
            _, recent = await page.get("/api/jobs")
    assert [j["state"] for j in recent["jobs"]] == ["finished", "finished"]
    assert all(j["file"] == "attendees.csv" for j in recent["jobs"])


async def test_library_stop_event_stops_like_ctrl_c_and_reports_every_row(tmp_path):
    stop = asyncio.Event()
    seen: list[str] = []

    def outcome(item: importer.RecordOutcome) -> None:
        seen.append(item.status)
        if len(seen) == 3:
            stop.set()

    async with SandboxServer(SandboxConfig(latency=0.05)) as sandbox:
        result = await importer.import_file_async(
            SAMPLES / "attendees.csv",
            mapping=MAPPINGS / "attendees.yaml",
            connection=importer.sandbox_connection(sandbox.base_url),
            ledger=tmp_path / "ledger.sqlite3",
            concurrency=2,
            on_outcome=outcome,
            stop=stop,
        )
        created = len(sandbox.state.activities)
    assert result.exit_status == importer.ExitStatus.INTERRUPTED
    assert sum(result.counts.values()) == 60  # every row reported
    assert 3 <= result.counts["created"] == created < 60


async def test_a_stop_before_sending_sends_nothing(tmp_path):
    stop = asyncio.Event()
    stop.set()
    async with SandboxServer() as sandbox:
        with pytest.raises(importer.Interrupted):
            await importer.import_file_async(
                SAMPLES / "attendees.csv",
                mapping=MAPPINGS / "attendees.yaml",
                connection=importer.sandbox_connection(sandbox.base_url),
                ledger=tmp_path / "ledger.sqlite3",
                stop=stop,
            )
        assert sandbox.state.activities == []


def test_a_public_host_needs_an_explicit_flag(capsys, monkeypatch):
    served: list[UiOptions] = []
    monkeypatch.setattr("importer.ui.server.serve", fake_serve(served))
    assert cli.main(["ui", "--host", "0.0.0.0", "--no-browser", "--sandbox"]) == 2
    assert "--allow-remote" in capsys.readouterr().err and served == []
    args = ["ui", "--host", "0.0.0.0", "--allow-remote", "--no-browser", "--sandbox"]
    assert cli.main(args) == 0
    assert "warning" in capsys.readouterr().err and served[0].host == "0.0.0.0"


def test_loopback_is_the_default(monkeypatch):
    served: list[UiOptions] = []
    monkeypatch.setattr("importer.ui.server.serve", fake_serve(served))
    assert cli.main(["ui", "--no-browser", "--sandbox"]) == 0
    assert served[0].host == "127.0.0.1" and not served[0].open_browser


def test_static_files_ship_with_the_package():
    from importlib import resources

    static = resources.files("importer.ui").joinpath("static")
    names = {entry.name for entry in static.iterdir()}
    assert {"index.html", "app.js", "style.css"} <= names
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"importer.ui" = ["static/*.html", "static/*.css", "static/*.js"]' in pyproject
    assert os.fspath(static)  # a real folder, not a zip member, in a normal install


def test_a_page_and_a_cli_run_share_the_ledger_so_nothing_is_created_twice(sandbox, tmp_path):
    """Not --sandbox: the credentials and the default ledger of the environment, as `run`."""
    data = SAMPLES / "attendees.csv"
    args = ["run", str(data), "--mapping", str(MAPPINGS / "attendees.yaml"), "--quiet"]
    assert cli.main(args) == 0
    assert len(sandbox.state.activities) == 60

    async def import_on_the_page() -> dict[str, Any]:
        options = UiOptions(mappings=MAPPINGS, state=tmp_path / "ui", open_browser=False)
        async with logged_in(options) as page:
            _, upload = await page.upload(data)
            _, mapping = await page.post("/api/mapping", {"name": "attendees.yaml"})
            body = {"upload": upload["upload"], "yaml": mapping["yaml"]}
            _, job = await page.post("/api/import", body)
            return await page.finish(job)

    done = asyncio.run(import_on_the_page())
    assert done["counts"] == {"already_created": 60}
    assert len(sandbox.state.activities) == 60


async def test_the_credentials_never_reach_the_browser(sandbox_factory, monkeypatch, tmp_path):
    sandbox_factory()
    options = UiOptions(mappings=MAPPINGS, state=tmp_path / "ui", open_browser=False)
    async with logged_in(options) as page:
        status, info = await page.get("/api/connection")
        async with page.session.get(page.base + "/") as answer:
            html = await answer.text()
    assert status == 200 and info["ok"] and "api.user" in info["label"]
    assert set(info) == {"ok", "sandbox", "label", "catalog", "limit"}
    assert SANDBOX_PASSWORD not in info["label"] and TOKEN_HEADER not in html

    monkeypatch.setenv("ELOQUA_PASSWORD", "wrong-Secret-123")
    async with logged_in(options) as page:
        _, info = await page.get("/api/connection")
    assert not info["ok"] and "did not accept the credentials" in info["message"]
    assert "wrong-Secret-123" not in json.dumps(info)


async def test_a_workbook_previews_the_sheet_with_the_table_and_lists_the_others(page):
    status, answer = await page.upload(SAMPLES / "webinar.xlsx")
    assert status == 200
    assert answer["sheets"] == ["Summary", "Attendees"] and answer["sheet"] == "Attendees"
    status, summary = await page.post(
        "/api/preview", {"upload": answer["upload"], "sheet": "Summary"}
    )
    assert status == 200 and summary["sheet"] == "Summary"


@pytest.mark.slow
def test_ui_command_names_its_mappings_folder_and_stops_on_ctrl_c(tmp_path):
    """The README: the terminal stays open while the page is used, Ctrl-C there stops it,
    and `mappings/` is the folder inside the one the command was started in."""
    import queue
    import signal
    import subprocess
    import sys
    import threading

    started = tmp_path / "where I started"
    started.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "ui", "--sandbox", "--no-browser", "--port", "0"],
        cwd=started,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    lines: queue.Queue[str] = queue.Queue()
    output = process.stdout
    assert output is not None
    threading.Thread(target=lambda: [lines.put(line) for line in output], daemon=True).start()
    try:
        said = [lines.get(timeout=60) for _ in range(3)]
        assert said[0].startswith("The import page is at http://127.0.0.1:")
        assert "Ctrl-C stops the page" in said[1]
        assert said[2] == f"Mapping files are read from and saved to {started / 'mappings'}\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
