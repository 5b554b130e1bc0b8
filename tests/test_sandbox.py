"""The Eloqua-compatible sandbox, exercised over a real loopback socket with a real client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from importer.sandbox import (
    SANDBOX_COMPANY,
    SANDBOX_PASSWORD,
    SANDBOX_TOKEN,
    SANDBOX_USERNAME,
    SandboxConfig,
    SandboxServer,
)
from importer.sandbox.seed import CONTACTS

BASIC = {
    "Authorization": aiohttp.encode_basic_auth(
        f"{SANDBOX_COMPANY}\\{SANDBOX_USERNAME}", SANDBOX_PASSWORD
    )
}
ACTIVITY = "/api/REST/2.0/data/activity"


def activity(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Spring Expo 2026 - Visited Booth",
        "assetName": "Spring Expo 2026",
        "assetType": "Tradeshow",
        "activityType": "Visited Booth",
        "activityDate": "1773493500",
        "contactId": 2001,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with SandboxServer() as running:
        yield running


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(server.base_url, headers=BASIC) as session:
        yield session


async def call(
    base_url: str, method: str, path: str, headers: dict[str, str] = BASIC, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    """One request in its own session: (status, headers, JSON body or text)."""
    async with (
        aiohttp.ClientSession(base_url, headers=headers) as session,
        session.request(method, path, **kwargs) as resp,
    ):
        text = await resp.text()
        is_json = resp.content_type == "application/json"
        return resp.status, dict(resp.headers), json.loads(text) if is_json else text


async def faulty(config: SandboxConfig, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """POST one activity to a fresh server with ``config``; (status, headers, activities)."""
    async with SandboxServer(config) as srv:
        status, headers, _ = await call(srv.base_url, "POST", ACTIVITY, json=body)
        return status, headers, list(srv.state.activities)


# --- create / read ------------------------------------------------------------------------


async def test_create_activity_answers_201_and_reads_back(client: aiohttp.ClientSession) -> None:
    body = activity(campaignId="37", fieldValues=[{"type": "FieldValue", "id": "12", "value": 7}])
    async with client.post(ACTIVITY, json=body) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created == {
        "type": "ExternalActivities",
        "id": "100001",
        "depth": "complete",
        "name": "Spring Expo 2026 - Visited Booth",
        "activityDate": "1773493500",
        "activityType": "Visited Booth",
        "assetName": "Spring Expo 2026",
        "assetType": "Tradeshow",
        "contactId": 2001,
        "campaignId": 37,
        "fieldValues": [{"type": "FieldValue", "id": "12", "value": "7"}],
    }
    async with client.get(f"/api/rest/2.0/data/activity/{created['id']}") as resp:
        assert resp.status == 200
        assert await resp.json() == created


async def test_ids_increase_and_optional_fields_are_omitted(client: aiohttp.ClientSession) -> None:
    ids = []
    for contact in (2001, "2002"):
        async with client.post(ACTIVITY, json=activity(contactId=contact, name=None)) as resp:
            created = await resp.json()
            ids.append(created["id"])
    assert ids == ["100001", "100002"]
    assert created["contactId"] == 2002
    assert created["name"] == "Spring Expo 2026"  # defaults to assetName
    assert "campaignId" not in created and "fieldValues" not in created


async def test_unknown_properties_are_ignored(client: aiohttp.ClientSession) -> None:
    async with client.post(ACTIVITY, json=activity(color="blue")) as resp:
        assert resp.status == 201
        assert "color" not in await resp.json()


async def test_read_unknown_activity_is_404(client: aiohttp.ClientSession) -> None:
    async with client.get(f"{ACTIVITY}/999999") as resp:
        assert resp.status == 404


async def test_sandbox_activities_lists_creations_in_order(
    server: SandboxServer, client: aiohttp.ClientSession
) -> None:
    for contact in (2003, 2001, 2002):
        async with client.post(ACTIVITY, json=activity(contactId=contact)) as resp:
            assert resp.status == 201
    async with aiohttp.ClientSession() as anonymous:  # no credentials needed
        async with anonymous.get(server.base_url + "/sandbox/activities") as resp:
            listed = await resp.json()
        async with anonymous.get(server.base_url + "/sandbox/stats") as resp:
            stats = await resp.json()
    assert [a["contactId"] for a in listed] == [2003, 2001, 2002]
    assert listed == server.state.activities
    assert stats["requests"]["activity_post"] == 3
    assert stats["in_flight"] == 0 and stats["max_in_flight"] >= 1


# --- validation ---------------------------------------------------------------------------


async def post_errors(client: aiohttp.ClientSession, body: Any) -> list[dict[str, Any]]:
    async with client.post(ACTIVITY, json=body) as resp:
        assert resp.status == 400
        return await resp.json()


def requirements(errors: list[dict[str, Any]]) -> dict[str, str]:
    assert all(e["type"] == "ObjectValidationError" for e in errors)
    return {e["property"]: e["requirement"]["type"] for e in errors}


async def test_unknown_contact_is_id_requirement(client: aiohttp.ClientSession) -> None:
    errors = await post_errors(client, activity(contactId=0))
    assert errors == [
        {
            "type": "ObjectValidationError",
            "property": "contactId",
            "requirement": {"type": "IdRequirement"},
            "value": "0",
        }
    ]
    assert requirements(await post_errors(client, activity(contactId=9999))) == {
        "contactId": "IdRequirement"
    }


async def test_float_contact_id_is_rejected(client: aiohttp.ClientSession) -> None:
    errors = await post_errors(client, activity(contactId=2001.0))
    assert requirements(errors) == {"contactId": "IdRequirement"}


async def test_unknown_campaign_is_id_requirement(client: aiohttp.ClientSession) -> None:
    errors = await post_errors(client, activity(campaignId=36))
    assert requirements(errors) == {"campaignId": "IdRequirement"}


async def test_missing_required_properties_all_reported_at_once(
    client: aiohttp.ClientSession,
) -> None:
    errors = await post_errors(client, {"name": "x", "assetName": "  "})
    assert requirements(errors) == {
        prop: "NotNullRequirement"
        for prop in ("assetType", "activityType", "assetName", "activityDate", "contactId")
    }


async def test_asset_type_not_set_up(client: aiohttp.ClientSession) -> None:
    (error,) = await post_errors(client, activity(assetType="Trade Show"))
    assert error["property"] == "assetType" and error["value"] == "Trade Show"
    assert error["requirement"] == {
        "type": "ExternalAssetTypeRequirement",
        "values": ["Conference", "Tradeshow", "Webinar"],
    }


async def test_activity_type_not_allowed_for_asset_type(client: aiohttp.ClientSession) -> None:
    (error,) = await post_errors(client, activity(activityType="Watched Recording"))
    assert error["property"] == "activityType"
    assert error["requirement"]["type"] == "ExternalActivityTypeRequirement"
    assert "Visited Booth" in error["requirement"]["values"]


@pytest.mark.parametrize("date", ["2026-03-14T09:05:00", "1773493500000", "17.5", True])
async def test_activity_date_must_be_epoch_seconds(
    client: aiohttp.ClientSession, date: Any
) -> None:
    errors = await post_errors(client, activity(activityDate=date))
    assert requirements(errors) == {"activityDate": "DateRequirement"}


async def test_bad_field_values_are_reported(client: aiohttp.ClientSession) -> None:
    body = activity(fieldValues=[{"type": "FieldValue", "id": "abc", "value": None}])
    assert requirements(await post_errors(client, body)) == {
        "fieldValues[0].id": "IdRequirement",
        "fieldValues[0].value": "NotNullRequirement",
    }


async def test_several_problems_in_one_array(client: aiohttp.ClientSession) -> None:
    errors = await post_errors(client, activity(contactId=1, campaignId=1, activityDate="soon"))
    assert set(requirements(errors)) == {"contactId", "campaignId", "activityDate"}


async def test_malformed_json_is_400_and_creates_nothing(
    server: SandboxServer, client: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    async with client.post(ACTIVITY, data=b'{"name": ', headers=headers) as resp:
        assert resp.status == 400
        (error,) = await resp.json()
    assert error["type"] == "ParsingError"
    assert server.state.activities == []


# --- authentication and discovery -----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": aiohttp.encode_basic_auth("Sandbox\\api.user", "wrong")},
        {"Authorization": aiohttp.encode_basic_auth("api.user", SANDBOX_PASSWORD)},  # no company
        {"Authorization": "Basic !!not-base64!!"},
    ],
)
async def test_bad_credentials_are_401(server: SandboxServer, headers: dict[str, str]) -> None:
    async with aiohttp.ClientSession(server.base_url, headers=headers) as session:
        async with session.post(ACTIVITY, json=activity()) as resp:
            assert resp.status == 401
        async with session.get("/api/REST/2.0/assets/external/types") as resp:
            assert resp.status == 401
    assert server.state.activities == []


async def test_bearer_token_works(server: SandboxServer) -> None:
    good, bad = f"Bearer {SANDBOX_TOKEN}", "Bearer not-the-token"
    for token, expected in ((good, 201), (bad, 401)):
        headers = {"Authorization": token}
        status, _, _ = await call(server.base_url, "POST", ACTIVITY, headers, json=activity())
        assert status == expected


async def test_id_returns_site_and_base_url(
    server: SandboxServer, client: aiohttp.ClientSession
) -> None:
    async with client.get("/id") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["site"] == {"id": 42, "name": "Sandbox"}
    assert body["user"]["username"] == "api.user"
    assert body["urls"]["base"] == server.base_url
    assert body["urls"]["apis"]["rest"]["standard"] == server.base_url + "/API/REST/{version}/"


async def test_id_with_bad_credentials_is_200_not_authenticated(server: SandboxServer) -> None:
    headers = {"Authorization": aiohttp.encode_basic_auth("Sandbox\\api.user", "nope")}
    status, _, body = await call(server.base_url, "GET", "/id", headers)
    assert (status, body) == (200, "Not authenticated.")


# --- lookups ------------------------------------------------------------------------------


async def find_contacts(client: aiohttp.ClientSession, email: str) -> dict[str, Any]:
    params = {"search": f"emailAddress='{email}'", "depth": "minimal"}
    async with client.get("/api/REST/1.0/data/contacts", params=params) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.mark.parametrize(
    ("email", "contact_id"),
    [
        ("JOSE.NUNEZ@example.COM", "2001"),
        ("Zoe.Muller+Events@example.org", "2002"),
        ("conor.o'brien@example.ie", "2007"),
    ],
)
async def test_contact_search_by_email_is_case_insensitive_exact(
    client: aiohttp.ClientSession, email: str, contact_id: str
) -> None:
    found = await find_contacts(client, email)
    assert found["total"] == 1 and found["page"] == 1
    (contact,) = found["elements"]
    assert contact["id"] == contact_id and contact["type"] == "Contact"
    assert contact["emailAddress"].lower() == email.lower()


async def test_contact_search_without_match_is_empty(client: aiohttp.ClientSession) -> None:
    found = await find_contacts(client, "jose.nunez@example")  # prefix is not a match
    assert found == {"elements": [], "page": 1, "pageSize": 1000, "total": 0}


async def test_contact_search_pages(client: aiohttp.ClientSession) -> None:
    params = {"search": "emailAddress='*@example.com'", "count": "5", "page": "2"}
    async with client.get("/api/rest/1.0/data/contacts", params=params) as resp:
        found = await resp.json()
    assert found["pageSize"] == 5 and found["page"] == 2 and len(found["elements"]) == 5
    assert found["total"] == sum(email.endswith("@example.com") for *_, email in CONTACTS)


async def test_create_contact_then_find_it_and_duplicate_conflicts(
    client: aiohttp.ClientSession,
) -> None:
    body = {"emailAddress": "new.person@example.com", "firstName": "Nöé", "lastName": "Person"}
    async with client.post("/api/REST/1.0/data/contact", json=body) as resp:
        assert resp.status == 201
        created = await resp.json()
    assert created["id"] == "2121" and created["firstName"] == "Nöé"
    assert (await find_contacts(client, "NEW.person@example.com"))["total"] == 1
    async with client.post("/api/REST/1.0/data/contact", json=body) as resp:
        assert resp.status == 409
        (error,) = await resp.json()
    assert error["requirement"]["type"] == "UniquenessRequirement"


async def test_campaign_search_by_name(client: aiohttp.ClientSession) -> None:
    params = {"search": "name='spring expo 2026'"}
    async with client.get("/api/REST/2.0/assets/campaigns", params=params) as resp:
        found = await resp.json()
    assert found["total"] == 1
    assert found["elements"][0] | {"depth": None} == {
        "type": "Campaign",
        "id": "37",
        "name": "Spring Expo 2026",
        "depth": None,
    }


async def test_asset_types_list_their_activity_types(client: aiohttp.ClientSession) -> None:
    async with client.get("/API/REST/2.0/assets/external/types") as resp:
        listed = await resp.json()
    assert listed["total"] == 3
    by_name = {e["name"]: e for e in listed["elements"]}
    assert by_name["Tradeshow"]["type"] == "ExternalAssetType"
    assert [t["name"] for t in by_name["Webinar"]["activityTypes"]] == [
        "Registered",
        "Attended",
        "Watched Recording",
    ]
    assert by_name["Conference"]["activityTypes"][0]["type"] == "ExternalActivityType"


async def test_unknown_path_is_404(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/REST/2.0/data/contacts") as resp:
        assert resp.status == 404


# --- fault injection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "status"), [("rate_500", 500), ("rate_429", 429), ("rate_503", 503)]
)
async def test_fault_rates_answer_status_and_create_nothing(option: str, status: int) -> None:
    config = SandboxConfig(**{option: 1.0}, retry_after=3)
    got, headers, created = await faulty(config, activity())
    assert got == status and created == []
    assert headers.get("Retry-After") == ("3" if status in (429, 503) else None)


async def test_no_retry_after_unless_configured() -> None:
    got, headers, _ = await faulty(SandboxConfig(rate_429=1.0), activity())
    assert got == 429 and "Retry-After" not in headers


async def test_faults_apply_only_to_activity_posts() -> None:
    async with SandboxServer(SandboxConfig(rate_500=1.0)) as srv:
        status, _, _ = await call(srv.base_url, "GET", "/api/REST/2.0/assets/external/types")
        assert status == 200


async def test_dropped_connection_creates_the_activity_but_gives_no_answer() -> None:
    async with SandboxServer(SandboxConfig(rate_drop=1.0)) as srv:
        async with aiohttp.ClientSession(srv.base_url, headers=BASIC) as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.post(ACTIVITY, json=activity()) as resp:
                    await resp.read()
            # the server survives and keeps answering
            async with session.get(f"{ACTIVITY}/100001") as resp:
                assert resp.status == 200
        assert [a["id"] for a in srv.state.activities] == ["100001"]
        assert srv.state.in_flight == 0


async def test_seeded_fault_injection_is_reproducible() -> None:
    async def statuses() -> list[int]:
        config = SandboxConfig(rate_500=0.3, rate_503=0.3, seed=7)
        async with SandboxServer(config) as srv:
            return [
                (await call(srv.base_url, "POST", ACTIVITY, json=activity()))[0] for _ in range(20)
            ]

    first = await statuses()
    assert first == await statuses()
    assert {500, 503, 201} <= set(first)


async def test_small_latency_still_answers() -> None:
    async with SandboxServer(SandboxConfig(latency=0.001)) as srv:
        status, _, _ = await call(srv.base_url, "POST", ACTIVITY, json=activity())
        assert status == 201
        assert srv.state.max_in_flight == 1 and srv.state.in_flight == 0


def test_invalid_fault_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to at most 1"):
        SandboxConfig(rate_500=0.6, rate_429=0.6)


async def test_concurrent_requests_are_counted_in_flight() -> None:
    async with SandboxServer(SandboxConfig(latency=0.05)) as srv:
        results = await asyncio.gather(
            *(call(srv.base_url, "POST", ACTIVITY, json=activity()) for _ in range(4))
        )
        assert [status for status, _, _ in results] == [201] * 4
        assert srv.state.max_in_flight >= 2 and srv.state.in_flight == 0


async def test_mean_in_flight_is_time_weighted_and_reset_starts_a_new_window() -> None:
    async with SandboxServer(SandboxConfig(latency=0.05)) as srv:
        await asyncio.gather(
            *(call(srv.base_url, "POST", ACTIVITY, json=activity()) for _ in range(4))
        )
        stats = srv.state.stats()
        # Four requests overlapping for most of the window: well above one on average.
        assert 1.0 < stats["mean_in_flight"] <= 4.0
        assert stats["activities_in_window"] == 4 and stats["window_seconds"] > 0
        status, _, reset = await call(srv.base_url, "POST", "/sandbox/reset-stats")
        assert status == 200
        assert reset["mean_in_flight"] == 0.0 and reset["activities_in_window"] == 0
        await call(srv.base_url, "POST", ACTIVITY, json=activity())
        status, _, stats = await call(srv.base_url, "GET", "/sandbox/stats")
        assert stats["activities_in_window"] == 1 and stats["activities"] == 5
        assert 0.0 < stats["mean_in_flight"] <= 1.0
        assert stats["requests"] == {"activity_post": 1, "sandbox_stats": 1}


async def test_idle_keep_alive_connections_do_not_hold_up_the_teardown() -> None:
    # Every test pays the teardown: a connection kept alive by the client (as the importer's
    # session does) must be closed at once, not waited for, whatever the grace says.
    server = SandboxServer(shutdown_timeout=3600)
    # The server is left first, inside the time limit, while the client still holds on.
    async with aiohttp.ClientSession(headers=BASIC) as session, asyncio.timeout(60), server:
        async with session.post(server.base_url + ACTIVITY, json=activity()) as answer:
            assert answer.status == 201
            await answer.read()
        assert server._runner is not None
        assert len(server._runner.server.connections) == 1  # idle, kept alive
    assert server.state.in_flight == 0 and len(server.state.activities) == 1


async def test_teardown_cancels_a_request_still_waiting_after_the_grace() -> None:
    server = SandboxServer(SandboxConfig(latency=3600))
    assert server.shutdown_timeout <= 0.1  # not the whole second every test used to wait
    async with aiohttp.ClientSession(headers=BASIC) as session, asyncio.timeout(60):
        async with server:
            hung = asyncio.ensure_future(session.post(server.base_url + ACTIVITY, json=activity()))
            while server.state.in_flight == 0:
                await asyncio.sleep(0.01)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await hung
    assert server.state.in_flight == 0 and server.state.activities == []
