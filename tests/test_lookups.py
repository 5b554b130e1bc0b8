"""Contact and campaign lookups, preflight checks and `eloqua-import check`, against the
real sandbox (and a small aiohttp server on 127.0.0.1 for one narrow retry case)."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
from aiohttp import web
from results_csv import read_results

from importer.cli import main
from importer.config import Credentials
from importer.eloqua import EloquaClient, open_session
from importer.fields import Lookup
from importer.lookup import Resolver
from importer.retry import RetryPolicy
from importer.sandbox.seed import CONTACTS

ROOT = Path(__file__).resolve().parent.parent
EMAIL_IDS = {email.casefold(): cid for cid, _, _, email in CONTACTS}

MAPPING = """\
version: 1
source: {header_row: 4}
activity:
  assetType: Webinar
  assetName: Data Privacy in 2026
  activityType: {column: Status, map: {attended: Attended, "no show": Registered}}
  activityDate: {column: Joined, format: "%Y-%m-%d %H:%M", timezone: Europe/London}
  contactId: {lookup: contact, column: Email}
  campaignId: {lookup: campaign, value: Webinar Series 2026}
"""

# A preamble above the table; emails in mixed case and padded; one unknown; one malformed;
# one repeated email (a second attendance).
REPORT = """\
Webinar attendee report
Data Privacy in 2026,,
,,
Email,Status,Joined
  JOSE.NUNEZ@example.com ,attended,2026-04-02 15:00
zoe.muller+events@EXAMPLE.org,attended,2026-04-02 15:02
Conor.O'Brien@example.ie,no show,2026-03-20 09:00
nobody.here@example.com,attended,2026-04-02 15:05
not-an-email,attended,2026-04-02 15:06
jose.nunez@example.com,attended,2026-04-02 16:30
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(tmp_path: Path, data: Path, mapping: Path, *args: str) -> int:
    return main(
        ["run", str(data), "--mapping", str(mapping), "--quiet",
         "--results", str(tmp_path / "results.csv"), *args]
    )  # fmt: skip


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path, "report.csv", REPORT), write(tmp_path, "map.yaml", MAPPING)


def test_emails_become_the_right_contact_ids_with_one_search_each(tmp_path, report, sandbox):
    data, mapping = report
    assert run(tmp_path, data, mapping) == 1
    lines = read_results(tmp_path / "results.csv")
    assert {n: line["status"] for n, line in lines.items()} == {
        5: "created", 6: "created", 7: "created", 8: "rejected", 9: "invalid", 10: "created"
    }  # fmt: skip
    assert lines[8]["error"].startswith("no Eloqua contact with email 'nobody.here@example.com'")
    assert "not a valid email address" in lines[9]["error"]
    sent = {a["id"]: a for a in sandbox.state.activities}
    expected = {
        5: EMAIL_IDS["jose.nunez@example.com"],
        6: EMAIL_IDS["zoe.muller+events@example.org"],
        7: EMAIL_IDS["conor.o'brien@example.ie"],
        10: EMAIL_IDS["jose.nunez@example.com"],
    }
    for number, contact in expected.items():
        activity = sent[lines[number]["activity_id"]]
        assert activity["contactId"] == contact
        assert activity["campaignId"] == 38
    # 4 distinct valid emails (jose twice), one campaign: no more searches than that.
    assert sandbox.state.request_counts["contacts_search"] == 4
    assert sandbox.state.request_counts["campaigns_search"] == 1


def test_dry_run_looks_everything_up_and_creates_nothing(tmp_path, report, sandbox):
    data, mapping = report
    assert run(tmp_path, data, mapping, "--dry-run") == 1
    statuses = {n: line["status"] for n, line in read_results(tmp_path / "results.csv").items()}
    assert statuses == {5: "valid", 6: "valid", 7: "valid", 8: "rejected", 9: "invalid",
                        10: "valid"}  # fmt: skip
    assert sandbox.state.activities == []
    assert sandbox.state.request_counts["contacts_search"] == 4


def test_dry_run_of_a_lookup_mapping_needs_credentials(tmp_path, report, monkeypatch, capsys):
    for name in ("ELOQUA_COMPANY", "ELOQUA_USERNAME", "ELOQUA_PASSWORD", "ELOQUA_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    data, mapping = report
    assert run(tmp_path, data, mapping, "--dry-run") == 2
    assert "even a dry run needs credentials" in capsys.readouterr().err


def test_several_contacts_with_one_email_are_rejected_unless_the_mapping_chooses(
    tmp_path, report, sandbox
):
    sandbox.state.contacts[3001] = {
        "firstName": "José", "lastName": "Núñez (old)", "emailAddress": "Jose.Nunez@example.com"
    }  # fmt: skip
    data, mapping = report
    run(tmp_path, data, mapping)
    line = read_results(tmp_path / "results.csv")[5]
    assert line["status"] == "rejected"
    assert "2 Eloqua contacts match" in line["error"] and "3001" in line["error"]

    chosen = "{lookup: contact, column: Email, on_multiple: lowest_id}"
    lowest = write(
        tmp_path, "lowest.yaml", MAPPING.replace("{lookup: contact, column: Email}", chosen)
    )
    run(tmp_path, data, lowest)
    line = read_results(tmp_path / "results.csv")[5]
    assert line["status"] == "created"
    sent = {a["id"]: a for a in sandbox.state.activities}
    assert sent[line["activity_id"]]["contactId"] == EMAIL_IDS["jose.nunez@example.com"]


def test_create_missing_creates_the_contact_with_its_names(tmp_path, sandbox):
    data = write(tmp_path, "new.csv", "Email,First,Last,Joined\n"
                 "new.person@example.com,Ada,Lovelace,2026-04-02 15:00\n")  # fmt: skip
    mapping = write(tmp_path, "map.yaml", MAPPING.replace("source: {header_row: 4}\n", "")
                    .replace("{column: Status, map: {attended: Attended, \"no show\": Registered}}",
                             "Attended")
                    .replace("{lookup: contact, column: Email}",
                             "{lookup: contact, column: Email, create_missing: true,"
                             " firstName: {column: First}, lastName: {column: Last}}"))  # fmt: skip
    assert run(tmp_path, data, mapping) == 0
    created = [c for cid, c in sandbox.state.contacts.items() if cid > 2120]
    assert created == [
        {"firstName": "Ada", "lastName": "Lovelace", "emailAddress": "new.person@example.com"}
    ]
    new_id = next(cid for cid in sandbox.state.contacts if cid > 2120)
    assert sandbox.state.activities[0]["contactId"] == new_id


def test_unknown_constant_campaign_stops_before_anything_is_sent(tmp_path, report, sandbox, capsys):
    data, _ = report
    mapping = write(tmp_path, "m.yaml", MAPPING.replace("Webinar Series 2026", "Webinar Serie"))
    assert run(tmp_path, data, mapping) == 2
    assert "no Eloqua campaign named 'Webinar Serie'" in capsys.readouterr().err
    assert sandbox.state.request_counts["activity_post"] == 0


def test_campaign_names_in_a_column_are_looked_up_once_each(tmp_path, sandbox):
    data = write(tmp_path, "c.csv", "Contact,Campaign,When\n"
                 "2001,Spring Expo 2026,2026-03-14 10:00\n"
                 "2002,spring expo 2026,2026-03-14 10:05\n"
                 "2003,Customer Summit 2026,2026-03-14 10:10\n"
                 "2004,Nope,2026-03-14 10:15\n"
                 "2005,38,2026-03-14 10:20\n")  # fmt: skip
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
          campaignId: {lookup: campaign, column: Campaign}
        """,
    )
    assert run(tmp_path, data, mapping) == 1
    lines = read_results(tmp_path / "results.csv")
    assert [lines[n]["status"] for n in (2, 3, 4, 5, 6)] == ["created"] * 3 + [
        "rejected",
        "created",
    ]
    # An id in the column (38) is used as it is, not looked up as a name.
    assert sorted(a["campaignId"] for a in sandbox.state.activities) == [37, 37, 38, 39]
    # Three names searched once each, and one read of every name to suggest the nearest to Nope.
    assert sandbox.state.request_counts["campaigns_search"] == 4


def test_constant_asset_type_not_set_up_is_exit_2_listing_what_exists(
    tmp_path, report, sandbox, capsys
):
    data, _ = report
    mapping = write(tmp_path, "m.yaml", MAPPING.replace("assetType: Webinar", "assetType: Webnar"))
    assert run(tmp_path, data, mapping) == 2
    err = capsys.readouterr().err
    assert "assetType 'Webnar' is not set up in Eloqua (did you mean 'Webinar'?)" in err
    assert "Tradeshow: Visited Booth" in err
    assert sandbox.state.request_counts["activity_post"] == 0
    assert sandbox.state.request_counts["contacts_search"] == 0


def test_column_driven_activity_types_are_checked_per_row(tmp_path, sandbox):
    data = write(tmp_path, "t.csv", "Contact,Action,When\n2001,Attended,2026-03-14 10:00\n"
                 "2002,Danced,2026-03-14 10:05\n2003,visited booth,2026-03-14 10:10\n")  # fmt: skip
    mapping = write(
        tmp_path,
        "t.yaml",
        """\
        version: 1
        activity:
          assetType: Tradeshow
          assetName: Spring Expo
          activityType: {column: Action}
          activityDate: {column: When}
          contactId: {column: Contact}
        """,
    )
    assert run(tmp_path, data, mapping) == 1
    lines = read_results(tmp_path / "results.csv")
    assert lines[3]["status"] == "invalid"
    assert "'Danced' is not set up for the asset type 'Tradeshow'" in lines[3]["error"]
    assert "Visited Booth, Viewed a Demo, Registered, Attended" in lines[3]["error"]
    # A different case is fixed to Eloqua's spelling rather than refused.
    assert lines[4]["status"] == "created"
    assert sorted(a["activityType"] for a in sandbox.state.activities) == [
        "Attended",
        "Visited Booth",
    ]
    assert sandbox.state.request_counts["activity_post"] == 2


def test_webinar_report_sample_imports_cleanly(tmp_path, sandbox):
    data = ROOT / "samples" / "webinar-report.csv"
    assert run(tmp_path, data, ROOT / "mappings" / "webinar-report.yaml") == 0
    lines = read_results(tmp_path / "results.csv")
    with data.open(encoding="utf-8") as file:
        emails = {r[1].strip().casefold() for r in list(csv.reader(file))[6:]}
    assert {line["status"] for line in lines.values()} == {"created"}
    assert sandbox.state.request_counts["contacts_search"] == len(emails)
    for line in lines.values():
        activity = next(a for a in sandbox.state.activities if a["id"] == line["activity_id"])
        assert activity["contactId"] == EMAIL_IDS[line["Email"].strip().casefold()]


def test_check_prints_site_user_and_types(sandbox, capsys, monkeypatch):
    monkeypatch.setenv("ELOQUA_LOGIN_URL", sandbox.base_url)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "Credentials: accepted" in out and "Site:        Sandbox (id 42)" in out
    assert "Webinar: Registered, Attended, Watched Recording" in out
    assert sandbox.base_url in out


def test_check_with_a_wrong_password_is_exit_3(sandbox, monkeypatch, capsys):
    monkeypatch.setenv("ELOQUA_PASSWORD", "wrong-secret")
    assert main(["check"]) == 3
    err = capsys.readouterr().err
    assert "did not accept the credentials" in err and "wrong-secret" not in err


async def test_contact_search_is_retried_on_server_errors(no_backoff):
    answers = [web.Response(status=503, text="busy")]
    seen: list[str] = []

    async def contacts(request: web.Request) -> web.Response:
        seen.append(request.query["search"])
        if answers:
            return answers.pop(0)
        return web.json_response(
            {"elements": [{"id": "77", "emailAddress": "A+B%c@example.com"}], "total": 1}
        )

    app = web.Application()
    app.router.add_get("/api/REST/1.0/data/contacts", contacts)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with open_session(1) as session:
            client = EloquaClient(session, base, Credentials("Acme", "u", "p"))
            resolver = Resolver(client, RetryPolicy())
            assert await resolver.id_of(Lookup("contact", "a+b%c@example.com")) == 77
            assert await resolver.id_of(Lookup("contact", "A+B%C@example.com")) == 77
    finally:
        await runner.cleanup()
    # "+" and "%" arrive intact (URL-encoded on the way), one retry after the 503, and the
    # second spelling of the same address asked nothing more.
    assert seen == ["emailAddress='a+b%c@example.com'"] * 2
    assert len(no_backoff.waits) == 1
