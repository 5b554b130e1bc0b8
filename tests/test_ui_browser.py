"""The web page in a real browser: Playwright driving Debian's Chromium against the real server
and the sandbox. Each journey step saves a screenshot under docs/ (the README shows them).

Skipped, with the reason, where Playwright or Chromium is missing (`.ci/run` installs both).
Refresh the README's screenshots with ``ELOQUA_IMPORT_SCREENSHOTS=1 pytest -m browser``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from importer.sandbox.server import SandboxConfig
from importer.ui.server import UiOptions
from tests.ui_support import ThreadedUi

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
DOCS = ROOT / "docs"
CHROMIUM = Path("/usr/lib/chromium/chromium")  # /usr/bin/chromium is a wrapper script
WAIT = 60_000  # ms: generous, timers here wake late

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
expect.set_options(timeout=WAIT)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium (CI does)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium for the module (starting one takes a second or two)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--disable-gpu",
            ],
        )
        yield chromium
        chromium.close()


def start_ui(tmp_path: Path, latency: float = 0.0) -> ThreadedUi:
    """The page on the sandbox, with a copy of mappings/ in the test's (current) folder."""
    assert Path.cwd() == tmp_path  # conftest's `isolated`
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    options = UiOptions(
        sandbox=True,
        mappings=Path("mappings"),
        state=tmp_path / "ui-imports",
        open_browser=False,
        sandbox_config=SandboxConfig(latency=latency),
    )
    return ThreadedUi(options)


@pytest.fixture
def ui(tmp_path) -> Iterator[ThreadedUi]:
    server = start_ui(tmp_path)
    yield server
    server.close()


@pytest.fixture
def page(browser, ui) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(WAIT)
    page = context.new_page()
    page.goto(ui.url)
    expect(page.locator("#connection")).to_contain_text("Sandbox")
    yield page
    context.close()


@pytest.fixture
def shot(tmp_path) -> Callable[[object, str], None]:
    """Screenshot a step: into docs/ (the README's pictures) when ELOQUA_IMPORT_SCREENSHOTS is
    set, else into the test's folder (so a plain test run leaves the worktree as it was)."""
    folder = DOCS if os.environ.get("ELOQUA_IMPORT_SCREENSHOTS") else tmp_path / "shots"

    def take(locator: object, name: str) -> None:
        folder.mkdir(exist_ok=True)
        locator.screenshot(path=str(folder / name))  # type: ignore[attr-defined]
        assert (folder / name).stat().st_size > 0

    return take


def choose_file(page: object, path: Path) -> None:
    page.get_by_label("Spreadsheet", exact=True).set_input_files(str(path))  # type: ignore[attr-defined]
    expect(page.locator("#preview tr").first).to_be_visible()  # type: ignore[attr-defined]


def finished(page: object, where: str) -> None:
    expect(page.locator(f"{where} .progress-line")).to_contain_text(  # type: ignore[attr-defined]
        re.compile("^(finished|failed)")
    )


def test_whole_journey_with_a_saved_mapping_downloads_what_the_sandbox_holds(page, ui, shot):
    started = time.monotonic()
    shot(page.locator("#connection-step"), "ui-1-connection.png")
    choose_file(page, SAMPLES / "attendees.csv")
    shot(page.locator("#spreadsheet-step"), "ui-2-spreadsheet.png")
    page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
    expect(page.locator("#value-assetType")).to_have_value("Tradeshow")
    page.get_by_role("button", name="Check", exact=True).click()
    finished(page, "#check-out")
    expect(page.locator("#check-out dd[data-status=valid]")).to_have_text("60")
    expect(page.locator("#check-out pre.summary")).to_contain_text("row 2 would send")
    shot(page.locator("#check-step"), "ui-4-check.png")
    assert ui.activities == []  # a check sends nothing

    import_button = page.get_by_role("button", name="Import 60 rows")
    expect(import_button).to_be_enabled()
    import_button.click()
    finished(page, "#import-out")
    expect(page.locator("#import-out dd[data-status=created]")).to_have_text("60")
    shot(page.locator("#import-step"), "ui-5-import.png")
    expect(page.locator("#command")).to_have_text(
        "eloqua-import run attendees.csv --mapping mappings/attendees.yaml --sandbox"
    )
    shot(page.locator("#results-step"), "ui-6-results.png")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download results").click()
    downloaded = Path(download_info.value.path())
    with downloaded.open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    held = {a["id"]: a for a in ui.activities}
    assert len(rows) == 60 == len(held)
    assert {row["activity_id"] for row in rows} == set(held)
    for row in rows:
        activity = held[row["activity_id"]]
        assert row["status"] == "created"
        assert str(activity["contactId"]) == row["Contact ID"]
        assert activity["assetName"] == row["Event"]
    print(f"journey: {time.monotonic() - started:.1f}s")


def test_zoom_export_gets_a_suggested_mapping_and_imports_without_yaml(page, ui, shot):
    started = time.monotonic()
    choose_file(page, SAMPLES / "zoom-attendees.csv")
    # The column names are found below the report's preamble.
    expect(page.get_by_label("Header row", exact=True)).to_have_value("12")
    expect(page.get_by_label("Mapping", exact=True)).to_have_value("@suggested")
    expect(page.locator("#mapping-status")).to_contain_text("Still to choose: assetType")
    page.locator("#value-assetType").select_option("Webinar")
    page.locator("#value-activityType").select_option("Attended")
    page.get_by_label("Time zone", exact=True).fill("America/New_York")
    page.get_by_label("Time zone", exact=True).press("Enter")  # commits the change as Tab would
    page.get_by_label("Time zone", exact=True).blur()
    expect(page.locator("#yaml")).to_have_value(re.compile("timezone: America/New_York"))
    expect(page.locator("#date-preview")).to_contain_text("UTC")
    shot(page.locator("#mapping-step"), "ui-3-mapping.png")
    page.get_by_role("button", name="Check", exact=True).click()
    finished(page, "#check-out")
    expect(page.get_by_role("button", name=re.compile(r"Import \d+ rows"))).to_be_enabled()
    page.get_by_role("button", name=re.compile(r"Import \d+ rows")).click()
    finished(page, "#import-out")
    created = int(page.locator("#import-out dd[data-status=created]").inner_text())
    assert created == len(ui.activities) > 0
    assert {a["assetType"] for a in ui.activities} == {"Webinar"}
    print(f"zoom journey: {time.monotonic() - started:.1f}s")


def test_editing_the_date_format_changes_the_preview(page):
    choose_file(page, SAMPLES / "attendees.csv")
    page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
    preview = page.locator("#date-preview")
    expect(preview).to_contain_text("2026-03-07 09:15 EST")
    page.get_by_label("Date format", exact=True).fill("%d/%m/%Y %H:%M")
    page.get_by_label("Date format", exact=True).press("Tab")
    expect(preview).to_contain_text("2026-07-03 09:15 EDT")  # day and month swapped
    expect(page.locator("#yaml")).to_have_value(re.compile(r"format: '%d/%m/%Y %H:%M'"))


def test_the_page_without_the_token_is_403(browser, ui):
    context = browser.new_context()
    try:
        page = context.new_page()
        answer = page.goto(ui.base + "/")
        assert answer is not None and answer.status == 403
        expect(page.locator("body")).to_contain_text("403 Forbidden")
    finally:
        context.close()


def test_a_cell_of_html_shows_as_text(page, tmp_path):
    evil = "<img src=x onerror=alert(1)>"
    data = tmp_path / "evil.csv"
    data.write_text(f"Email,Note\na@example.com,{evil}\n", encoding="utf-8")
    alerts: list[str] = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    choose_file(page, data)
    expect(page.locator("#preview td", has_text=evil)).to_have_text(evil)
    assert page.locator("#preview img").count() == 0
    assert alerts == []


def test_stop_mid_import_then_import_again_creates_nothing_twice(browser, tmp_path):
    ui = start_ui(tmp_path, latency=0.6)  # slow answers, so Stop lands mid-import
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        page.goto(ui.url)
        choose_file(page, SAMPLES / "attendees.csv")
        page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
        page.get_by_role("button", name="Check", exact=True).click()
        finished(page, "#check-out")
        page.get_by_role("button", name="Import 60 rows").click()
        expect(page.locator("#import-out pre.summary")).to_have_text("")
        expect(page.locator("#import-out .progress-line")).to_contain_text("running")

        # Closing the tab stops nothing; the page opened again shows the running import.
        page.close()
        page = context.new_page()
        page.goto(ui.base + "/")
        expect(page.locator("#import-out .progress-line")).to_contain_text(
            re.compile("^running: [1-9]")  # some rows done, most to come
        )
        page.get_by_role("button", name="Stop", exact=True).click()
        finished(page, "#import-out")
        first = len(ui.activities)
        assert 0 < first < 60
        expect(page.locator("#import-out pre.summary")).to_contain_text("Stopped early")
        expect(page.get_by_role("link", name="Download errors")).to_be_visible()  # rows not sent

        # Import again, from the same page (the file is still chosen): only the rest is sent.
        choose_file(page, SAMPLES / "attendees.csv")
        page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
        page.get_by_role("button", name="Check", exact=True).click()
        finished(page, "#check-out")
        page.get_by_role("button", name=re.compile(r"Import \d+ rows")).click()
        finished(page, "#import-out")
        expect(page.locator("#import-out dd[data-status=already_created]")).to_have_text(str(first))
        keys = [(a["contactId"], a["activityDate"], a["activityType"]) for a in ui.activities]
        assert len(keys) == len(set(keys)) == 60
    finally:
        context.close()
        ui.close()


def test_form_edits_value_maps_and_rows_to_leave_out(page):
    choose_file(page, SAMPLES / "attendees.csv")
    page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
    yaml_box = page.locator("#yaml")
    expect(yaml_box).to_have_value(re.compile("demo: Viewed a Demo"))
    page.get_by_role("button", name="Activity type: remove demo").click()
    expect(yaml_box).not_to_have_value(re.compile("demo:"))
    expect(yaml_box).to_have_value(re.compile("visited: Visited Booth"))

    page.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Leave out rule 1: column").select_option("Action")
    page.get_by_label("Leave out rule 1: value").fill("registered")
    page.get_by_label("Leave out rule 1: value").press("Tab")
    expect(yaml_box).to_have_value(re.compile(r"skip_if:\s+- column: Action\s+equals: registered"))
    page.get_by_role("button", name="Check", exact=True).click()
    finished(page, "#check-out")
    expect(page.locator("#check-out dd[data-status=skipped]")).to_have_text(
        str(sum(1 for line in (SAMPLES / "attendees.csv").open() if ",registered," in line))
    )


def test_form_edits_a_rule_keeping_only_some_values(page):
    """`init` writes `not_in:` rules (keep only who checked in): the form shows and edits them."""
    choose_file(page, SAMPLES / "attendees.csv")
    page.get_by_label("Mapping", exact=True).select_option("attendees.yaml")
    yaml_box = page.locator("#yaml")
    page.get_by_role("button", name="Add a rule").click()
    page.get_by_label("Leave out rule 1: column").select_option("Action")
    page.get_by_label("Leave out rule 1: test").select_option("not_in")
    page.get_by_label("Leave out rule 1: value").fill("visited, demo")
    page.get_by_label("Leave out rule 1: value").press("Tab")
    expect(yaml_box).to_have_value(
        re.compile(r"skip_if:\s+- column: Action\s+not_in:\s+- visited\s+- demo")
    )
    page.get_by_role("button", name="Check", exact=True).click()
    finished(page, "#check-out")
    actions = [line.split(",")[6] for line in (SAMPLES / "attendees.csv").open()][1:]
    expect(page.locator("#check-out dd[data-status=skipped]")).to_have_text(
        str(sum(1 for action in actions if action not in ("visited", "demo")))
    )
    expect(page.get_by_label("Leave out rule 1: value")).to_have_value("visited, demo")


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((node) => !(node.labels && node.labels.length) && !node.getAttribute("aria-label")
        && !node.textContent.trim())
    .map((node) => node.outerHTML)"""


def test_every_control_has_a_label_and_the_keyboard_reaches_them(page):
    choose_file(page, SAMPLES / "attendees.csv")
    mapping = page.get_by_label("Mapping", exact=True)
    mapping.focus()
    mapping.select_option("attendees.yaml")  # as arrow keys on the focused select would
    expect(page.locator("#value-assetType")).to_have_value("Tradeshow")
    check = page.get_by_role("button", name="Check", exact=True)
    check.focus()
    page.keyboard.press("Enter")
    finished(page, "#check-out")
    assert page.evaluate(UNLABELLED) == []
