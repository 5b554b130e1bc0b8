"""Contact and campaign lookups (importer/lookup.py), one Eloqua answer at a time (aioresponses).

A search only reads, so any network error may be retried; what each answer makes of the row
(an id, `rejected`, `failed`, a stopped run) is checked here. The lookups end to end against
the sandbox are in test_lookups.py.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from mocked_eloqua import BASE, CAMPAIGNS_URL, CONTACTS_URL, mocked_client, refused

from importer.errors import Unauthorized
from importer.fields import Lookup
from importer.lookup import DRY_RUN_NEW_CONTACT, LookupFailed, Resolver
from importer.retry import RetryPolicy

ANA = Lookup("contact", "Ana@Example.com")
CONTACT_URL = BASE + "/api/REST/1.0/data/contact"


def found(*contacts: tuple[str, str]) -> dict:
    elements = [{"id": cid, "emailAddress": email} for cid, email in contacts]
    return {"payload": {"elements": elements, "page": 1, "pageSize": 100, "total": len(elements)}}


async def look_up(fake_sleep, lookup: Lookup, *answers: dict, attempts: int = 4, **options):
    """The id ``lookup`` resolves to (or the error), and how many searches were made."""
    async with mocked_client() as (client, mocked):
        url = CAMPAIGNS_URL if lookup.kind == "campaign" else CONTACTS_URL
        for answer in answers:
            mocked.get(url, **answer)
        resolver = Resolver(client, RetryPolicy(max_attempts=attempts, sleep=fake_sleep), **options)
        try:
            result: int | BaseException = await resolver.id_of(lookup)
        except (LookupFailed, Unauthorized) as exc:
            result = exc
        return result, sum(len(calls) for calls in mocked.requests.values())


async def test_one_matching_contact_gives_its_id(fake_sleep):
    result, searches = await look_up(fake_sleep, ANA, found(("2405", "ana@example.com")))
    assert (result, searches) == (2405, 1)


async def test_the_same_email_is_searched_once_however_many_rows_carry_it(fake_sleep):
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, **found(("2405", "ana@example.com")))
        resolver = Resolver(client, RetryPolicy(sleep=fake_sleep))
        ids = await asyncio.gather(
            *(resolver.id_of(Lookup("contact", email)) for email in ["ana@example.com"] * 5),
            resolver.id_of(ANA),
        )
    assert ids == [2405] * 6 and resolver.stats.contact_searches == 1


async def test_a_campaign_name_gives_its_id(fake_sleep):
    answer = {"payload": {"elements": [{"id": "38", "name": "Webinar Series 2026"}], "total": 1}}
    result, _ = await look_up(fake_sleep, Lookup("campaign", "webinar series 2026"), answer)
    assert result == 38


@pytest.mark.parametrize(
    "answer",
    [
        found(),
        found(("2405", "ana.maria@example.com")),  # Eloqua's search also matches wildcards
        found(("not-a-number", "ana@example.com")),
    ],
    ids=["none", "other-email", "bad-id"],
)
async def test_no_exact_match_rejects_the_row_with_the_fix(fake_sleep, answer):
    result, _ = await look_up(fake_sleep, ANA, answer)
    assert isinstance(result, LookupFailed) and result.status == "rejected"
    assert str(result).startswith("no Eloqua contact with email 'Ana@Example.com'; check the")
    assert "create_missing: true" in str(result)


async def test_several_matches_are_rejected_unless_the_mapping_takes_the_lowest_id(fake_sleep):
    two = found(("3001", "ana@example.com"), ("2405", "ANA@example.com"))
    result, _ = await look_up(fake_sleep, ANA, two)
    assert isinstance(result, LookupFailed) and result.status == "rejected"
    assert "2 Eloqua contacts match 'Ana@Example.com' (ids 2405, 3001)" in str(result)
    lowest = Lookup("contact", "ana@example.com", on_multiple="lowest_id")
    assert (await look_up(fake_sleep, lowest, two))[0] == 2405


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_a_search_answered_with_a_retry_status_is_asked_again(fake_sleep, status):
    result, searches = await look_up(
        fake_sleep, ANA, {"status": status}, found(("2405", "ana@example.com"))
    )
    assert (result, searches) == (2405, 2)
    assert len(fake_sleep.waits) == 1


@pytest.mark.parametrize(
    "error",
    [refused(), aiohttp.ServerDisconnectedError(), TimeoutError()],
    ids=["refused", "disconnected", "timeout"],
)
async def test_a_search_that_lost_its_connection_is_asked_again_as_it_only_reads(fake_sleep, error):
    result, searches = await look_up(
        fake_sleep, ANA, {"exception": error}, found(("2405", "ana@example.com"))
    )
    assert (result, searches) == (2405, 2)


async def test_no_answer_after_every_attempt_fails_the_row_safe_to_rerun(fake_sleep):
    drops = [{"exception": aiohttp.ServerDisconnectedError()}] * 3
    result, searches = await look_up(fake_sleep, ANA, *drops, attempts=3)
    assert isinstance(result, LookupFailed) and result.status == "failed"
    assert "Eloqua did not answer (ServerDisconnectedError); rerun" in str(result)
    assert searches == 3 and len(fake_sleep.waits) == 2


async def test_throttled_after_every_attempt_fails_the_row_not_rejects_it(fake_sleep):
    result, _ = await look_up(fake_sleep, ANA, *[{"status": 429}] * 3, attempts=3)
    assert isinstance(result, LookupFailed)
    assert (result.status, result.http_status) == ("failed", 429)


@pytest.mark.parametrize("status", [400, 403, 404])
async def test_a_search_eloqua_refuses_rejects_the_row_at_once(fake_sleep, status):
    result, searches = await look_up(fake_sleep, ANA, {"status": status, "body": "no"})
    assert isinstance(result, LookupFailed)
    assert (result.status, result.http_status, searches) == ("rejected", status, 1)
    assert str(result).startswith("could not look up the contact 'Ana@Example.com': ")


async def test_401_on_a_search_stops_the_run(fake_sleep):
    result, _ = await look_up(fake_sleep, ANA, {"status": 401, "body": "Not authenticated."})
    assert isinstance(result, Unauthorized)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "body": "<html>maintenance</html>"},
        {"status": 200, "body": '["not", "an", "object"]'},
        {"status": 200, "body": ""},
    ],
    ids=["html", "array", "empty"],
)
async def test_a_malformed_search_answer_fails_the_row_without_a_guess(fake_sleep, answer):
    result, _ = await look_up(fake_sleep, ANA, answer)
    assert isinstance(result, LookupFailed) and result.status == "failed"
    assert "could not look up the contact 'Ana@Example.com': Eloqua answered 200" in str(result)


async def test_elements_that_are_not_objects_are_ignored(fake_sleep):
    ana = {"id": "2406", "emailAddress": "ana@example.com"}
    answer = {"payload": {"elements": ["2405", None, ana]}}
    assert (await look_up(fake_sleep, ANA, answer))[0] == 2406


async def test_a_failed_search_is_not_asked_again_by_the_next_row(fake_sleep):
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, status=400, body="bad search", repeat=True)
        resolver = Resolver(client, RetryPolicy(sleep=fake_sleep))
        for _ in range(3):
            with pytest.raises(LookupFailed):
                await resolver.id_of(ANA)
    assert resolver.stats.contact_searches == 1


# --- create_missing ----------------------------------------------------------------------------


async def test_create_missing_creates_the_contact_once_and_uses_its_id(fake_sleep):
    names = (("firstName", "Ada"),)
    lookup = Lookup("contact", "new@example.com", create_missing=True, names=names)
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, **found())
        mocked.post(CONTACT_URL, status=201, payload={"id": "7001"})
        resolver = Resolver(client, RetryPolicy(sleep=fake_sleep))
        assert await resolver.id_of(lookup) == 7001
        ((_, sent),) = [(k, v) for k, v in mocked.requests.items() if k[0] == "POST"]
    assert resolver.stats.contacts_created == 1
    assert b'"emailAddress": "new@example.com"' in sent[0].kwargs["data"]


async def test_create_missing_in_a_dry_run_creates_nothing(fake_sleep):
    lookup = Lookup("contact", "new@example.com", create_missing=True)
    result, searches = await look_up(fake_sleep, lookup, found(), dry_run=True)
    assert (result, searches) == (DRY_RUN_NEW_CONTACT, 1)


async def test_a_contact_created_meanwhile_409_is_found_by_searching_again(fake_sleep):
    lookup = Lookup("contact", "new@example.com", create_missing=True)
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, **found())
        mocked.post(CONTACT_URL, status=409, body="exists")
        mocked.get(CONTACTS_URL, **found(("7002", "new@example.com")))
        resolver = Resolver(client, RetryPolicy(sleep=fake_sleep))
        assert await resolver.id_of(lookup) == 7002


async def test_a_contact_eloqua_will_not_create_rejects_the_row(fake_sleep):
    lookup = Lookup("contact", "new@example.com", create_missing=True)
    async with mocked_client() as (client, mocked):
        mocked.get(CONTACTS_URL, **found())
        refusal = [
            {
                "type": "ObjectValidationError",
                "property": "emailAddress",
                "requirement": {"type": "NotNullRequirement"},
            }
        ]
        mocked.post(CONTACT_URL, status=400, body=json.dumps(refusal))
        resolver = Resolver(client, RetryPolicy(sleep=fake_sleep))
        with pytest.raises(LookupFailed) as caught:
            await resolver.id_of(lookup)
    assert caught.value.status == "rejected"
    assert "could not create the contact 'new@example.com': emailAddress is required" in str(
        caught.value
    )
