"""The Eloqua client (importer/eloqua.py), one answer at a time from aioresponses.

How it reads answers (status codes, Retry-After, malformed bodies), discovers the site, pages
through lists and words Eloqua's errors. No retries here: those are test_retry_policy.py's.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from aioresponses import CallbackResult, aioresponses
from mocked_eloqua import (
    ACTIVITY_URL,
    BASE,
    CAMPAIGNS_URL,
    CONTACTS_URL,
    CREDENTIALS,
    ELSEWHERE,
    PAYLOAD,
    mocked_client,
)

from importer.config import Credentials
from importer.eloqua import (
    ASSET_TYPES_PATH,
    ApiResponse,
    describe_error,
    discover_site,
    open_session,
)
from importer.errors import AuthError, ConfigError, ImporterError

LOGIN = "https://login.eloqua.test"
IDENTITY = {
    "site": {"id": 42, "name": "AcmeCorp"},
    "user": {"username": "api.user"},
    "urls": {"base": "https://secure.p07.eloqua.test", "apis": {}},
}


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ('{"id": "12", "name": "Expo"}', {"id": "12", "name": "Expo"}),
        ('[{"type": "ObjectValidationError"}]', [{"type": "ObjectValidationError"}]),
        ("<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        ('{"id": "12", "na', '{"id": "12", "na'),  # cut short
        ("", None),
    ],
    ids=["object", "array", "html", "cut-json", "empty"],
)
async def test_answers_are_parsed_json_else_kept_as_text(text, body):
    async with mocked_client() as (client, mocked):
        mocked.post(ACTIVITY_URL, status=201, body=text)
        answer = await client.create_activity(PAYLOAD)
    assert answer == ApiResponse(201, body, None)


async def test_bytes_that_are_not_utf8_do_not_break_reading_an_answer():
    async with mocked_client() as (client, mocked):
        mocked.post(
            ACTIVITY_URL, status=500, body=b"Server \xff\xfe error", content_type="text/plain"
        )
        answer = await client.create_activity(PAYLOAD)
    assert answer.status == 500 and answer.body == "Server \ufffd\ufffd error"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("1.5", 1.5), ("-3", 0.0), ("Sat, 14 Mar 2026 13:05:30 GMT", 30.0),
     ("soon", None), ("", None)],
)  # fmt: skip
async def test_retry_after_is_read_as_seconds_from_a_number_or_a_date(monkeypatch, header, seconds):
    monkeypatch.setattr("importer.eloqua.time.time", lambda: 1_773_493_500.0)
    async with mocked_client() as (client, mocked):
        mocked.post(ACTIVITY_URL, status=429, headers={"Retry-After": header})
        answer = await client.create_activity(PAYLOAD)
    assert (answer.status, answer.retry_after) == (429, seconds)


async def test_every_request_carries_the_auth_header_and_accepts_json():
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, payload={"elements": []})
        await client.search_contacts("ana+events@example.com")
        ((_, url), (request,)) = next(iter(mocked.requests.items()))
    assert request.kwargs["headers"]["Authorization"] == CREDENTIALS.authorization()
    assert request.kwargs["headers"]["Accept"] == "application/json"
    # + and ' reach Eloqua intact inside its quotes, URL-encoded
    assert url.query["search"] == "emailAddress='ana+events@example.com'"
    assert url.query["depth"] == "minimal"


async def test_campaign_search_asks_for_the_name_in_quotes():
    async with mocked_client() as (client, mocked):
        mocked.get(CAMPAIGNS_URL, payload={"elements": [{"id": "38"}], "total": 1})
        answer = await client.search_campaigns("Webinar Series 2026")
        ((_, url),) = mocked.requests
    assert answer.body["elements"] == [{"id": "38"}]
    assert url.query["search"] == "name='Webinar Series 2026'"


# --- paged lists -------------------------------------------------------------------------------


async def test_list_all_follows_the_pages_until_the_total():
    async with mocked_client() as (client, mocked):
        url = BASE + ASSET_TYPES_PATH
        mocked.get(
            url + "?page=1&count=1000", payload={"elements": [{"id": 1}, {"id": 2}], "total": 3}
        )
        mocked.get(url + "?page=2&count=1000", payload={"elements": [{"id": 3}], "total": 3})
        answer = await client.list_all(ASSET_TYPES_PATH)
    assert answer == ApiResponse(200, {"elements": [{"id": 1}, {"id": 2}, {"id": 3}], "total": 3})


@pytest.mark.parametrize(
    "second_page",
    [{"status": 500, "body": "oops"}, {"status": 200, "body": "<html>maintenance</html>"}],
    ids=["500", "malformed"],
)
async def test_list_all_hands_back_a_bad_page_as_it_came(second_page):
    async with mocked_client() as (client, mocked):
        url = BASE + ASSET_TYPES_PATH
        mocked.get(url + "?page=1&count=1000", payload={"elements": [{"id": 1}], "total": 2})
        mocked.get(url + "?page=2&count=1000", **second_page)
        answer = await client.list_all(ASSET_TYPES_PATH)
    assert (answer.status, answer.body) == (second_page["status"], second_page["body"])


async def test_list_all_stops_on_an_empty_page_whatever_the_total_says():
    async with mocked_client() as (client, mocked):
        url = BASE + ASSET_TYPES_PATH
        mocked.get(url + "?page=1&count=1000", payload={"elements": [{"id": 1}], "total": 99})
        mocked.get(url + "?page=2&count=1000", payload={"elements": [], "total": 99})
        answer = await client.list_all(ASSET_TYPES_PATH)
    assert answer.body == {"elements": [{"id": 1}], "total": 1}


# --- site discovery (/id) ----------------------------------------------------------------------


async def discover(answer: dict, credentials: Credentials = CREDENTIALS) -> tuple[str, str]:
    with aioresponses() as mocked:
        mocked.get(LOGIN + "/id", **answer)
        async with open_session(1) as session:
            return await discover_site(session, LOGIN, credentials)


async def test_discovery_gives_the_base_url_and_the_company():
    assert await discover({"payload": IDENTITY}) == ("https://secure.p07.eloqua.test", "AcmeCorp")


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "body": '"Not authenticated."'},  # what Eloqua really answers
        {"status": 200, "body": "Not authenticated.", "content_type": "text/plain"},
        {"status": 401, "body": ""},
    ],
    ids=["json-string", "text", "401"],
)
async def test_discovery_with_bad_credentials_says_so_without_the_secret(answer):
    with pytest.raises(AuthError) as caught:
        await discover(answer)
    message = str(caught.value)
    assert "did not accept the credentials" in message and "nothing was sent" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "answer",
    [
        {"payload": {"site": {"name": "Acme"}}},
        {"payload": {"urls": "https://secure.p07.eloqua.test"}},
    ],
    ids=["no-urls", "urls-not-an-object"],
)
async def test_discovery_answer_without_a_base_url_asks_to_set_it(answer):
    with pytest.raises(AuthError, match="set ELOQUA_BASE_URL"):
        await discover(answer)


@pytest.mark.parametrize(
    "answer",
    [{"status": 503, "body": "<html>Service Unavailable</html>"}, {"status": 200, "body": "[1]"}],
    ids=["html", "array"],
)
async def test_discovery_answer_that_is_no_json_object_is_an_auth_error(answer):
    with pytest.raises(AuthError, match=rf"/id answered {answer['status']} without the site's"):
        await discover(answer)


async def test_discovered_plain_http_base_url_is_refused():
    identity = {**IDENTITY, "urls": {"base": "http://secure.p07.eloqua.test"}}
    with pytest.raises(ConfigError, match="plain http"):
        await discover({"payload": identity})


async def test_discovery_never_follows_a_redirect():
    followed: list[str] = []

    def elsewhere(url, **kwargs) -> CallbackResult:
        followed.append(str(url))
        return CallbackResult(status=200, body=json.dumps(IDENTITY))

    with aioresponses() as mocked:
        mocked.get(LOGIN + "/id", status=302, headers={"Location": ELSEWHERE})
        mocked.get(ELSEWHERE, callback=elsewhere, repeat=True)
        async with open_session(1) as session:
            with pytest.raises(ImporterError):
                await discover_site(session, LOGIN, CREDENTIALS)
    assert followed == []


async def test_a_read_never_follows_a_redirect():
    followed: list[str] = []

    def elsewhere(url, **kwargs) -> CallbackResult:
        followed.append(str(url))
        return CallbackResult(status=200, payload={"elements": [{"id": "1"}], "total": 1})

    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, status=301, headers={"Location": ELSEWHERE})
        mocked.get(ELSEWHERE, callback=elsewhere, repeat=True)
        with contextlib.suppress(ImporterError):  # an answer of 301, or an error saying so
            await client.search_contacts("ana@example.com")
    assert followed == []


# --- Eloqua's errors in words ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            ApiResponse(400, [
                {"type": "ObjectValidationError", "property": "contactId",
                 "requirement": {"type": "IdRequirement"}, "value": "0"},
                {"type": "ObjectValidationError", "property": "activityDate",
                 "requirement": {"type": "NotNullRequirement"}},
            ]),
            "contactId '0' is not the id of an existing record (IdRequirement); "
            "activityDate is required (NotNullRequirement)",
        ),
        (ApiResponse(400, [{"type": "X", "requirement": {"type": "Odd"}}]),
         "the activity fails Odd (Odd)"),
        (ApiResponse(400, {"Message": "bad"}), "Eloqua answered 400: bad"),
        (ApiResponse(403, None), "this Eloqua user is not allowed to create external activities"
         " (check its security group's API permissions)"),
        (ApiResponse(429, "Too Many Requests"),
         "Eloqua is throttling requests (429 Too Many Requests): Too Many Requests"),
        (ApiResponse(503, ""), "Eloqua is unavailable or timed out (503)"),
        (ApiResponse(500, "x" * 1000), "Eloqua answered 500: " + "x" * 300),
        (ApiResponse(400, ["not", "objects"]), "Eloqua answered 400: ['not', 'objects']"),
    ],
    ids=["validation", "unknown-requirement", "message", "403", "429", "503", "long", "list"],
)  # fmt: skip
def test_errors_are_described_in_words_a_user_can_act_on(answer, words):
    assert describe_error(answer) == words
