"""The retry policy on one create, answer by answer (aioresponses; sleep patched, never waits).

What the policy may do is decided by whether a request could have created the activity:
429/500/503 and a refused connection are safe to send again; a dropped connection, a timeout,
502/504 from a gateway and a 2xx without an id may have created it (`uncertain`, not resent);
3xx is never followed. The same cases over real sockets are in test_sender.py.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from aioresponses import CallbackResult
from mocked_eloqua import ACTIVITY_URL, ELSEWHERE, PAYLOAD, calls, mocked_client, refused

from importer.errors import Unauthorized
from importer.retry import RetryPolicy
from importer.sender import Outcome, send_one


async def create(fake_sleep, *answers: dict, attempts: int = 6) -> tuple[Outcome, int]:
    """Send PAYLOAD once under the policy, answered by ``answers`` in turn (then 201s)."""
    async with mocked_client() as (client, mocked):
        for answer in answers:
            mocked.post(ACTIVITY_URL, **answer)
        mocked.post(ACTIVITY_URL, status=201, payload={**PAYLOAD, "id": "9001"}, repeat=True)
        policy = RetryPolicy(max_attempts=attempts, sleep=fake_sleep)
        outcome = await send_one(client, PAYLOAD, policy)
        return outcome, calls(mocked, "POST", ACTIVITY_URL)


@pytest.mark.parametrize("status", [200, 201])
async def test_2xx_with_an_id_is_created_at_the_first_attempt(fake_sleep, status):
    outcome, sent = await create(fake_sleep, {"status": status, "payload": {"id": "42"}})
    assert (outcome.status, outcome.activity_id, outcome.http_status) == ("created", "42", status)
    assert (outcome.attempts, sent, fake_sleep.waits) == (1, 1, [])


async def test_the_payload_is_sent_as_utf8_json_with_the_auth_header(fake_sleep):
    async with mocked_client() as (client, mocked):
        mocked.post(ACTIVITY_URL, status=201, payload={"id": "1"})
        await send_one(client, {**PAYLOAD, "name": "Zoë"}, RetryPolicy(sleep=fake_sleep))
        (request,) = next(iter(mocked.requests.values()))
    assert json.loads(request.kwargs["data"].decode("utf-8"))["name"] == "Zoë"
    headers = request.kwargs["headers"]
    assert headers["Authorization"].startswith("Basic ")
    assert headers["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_safe_statuses_are_retried_then_created(fake_sleep, status):
    outcome, sent = await create(fake_sleep, {"status": status, "body": "busy"})
    assert (outcome.status, outcome.attempts, sent) == ("created", 2, 2)
    assert len(fake_sleep.waits) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_safe_statuses_every_time_fail_after_the_last_attempt_safe_to_resend(
    fake_sleep, status
):
    answers = [{"status": status, "body": ""}] * 3
    outcome, sent = await create(fake_sleep, *answers, attempts=3)
    assert (outcome.status, outcome.http_status, outcome.attempts, sent) == (
        "failed", status, 3, 3
    )  # fmt: skip
    assert "gave up after 3 attempts; safe to resend" in outcome.error
    assert len(fake_sleep.waits) == 2


async def test_retry_after_seconds_are_waited_as_given(fake_sleep):
    await create(fake_sleep, {"status": 429, "headers": {"Retry-After": "7"}})
    assert fake_sleep.waits == [7.0]


async def test_retry_after_as_an_http_date_is_waited_until_then(fake_sleep, monkeypatch):
    monkeypatch.setattr("importer.eloqua.time.time", lambda: 1_773_493_500.0)
    date = "Sat, 14 Mar 2026 13:05:30 GMT"  # 1773493530: 30 s after the patched clock
    await create(fake_sleep, {"status": 503, "headers": {"Retry-After": date}})
    assert fake_sleep.waits == [30.0]


async def test_retry_after_zero_still_waits_the_first_backoff_step(fake_sleep):
    await create(fake_sleep, {"status": 429, "headers": {"Retry-After": "0"}})
    assert fake_sleep.waits == [1.0]


async def test_retry_after_is_capped_at_five_minutes(fake_sleep):
    await create(fake_sleep, {"status": 429, "headers": {"Retry-After": "86400"}})
    assert fake_sleep.waits == [300.0]


async def test_unreadable_retry_after_falls_back_to_the_throttle_backoff(fake_sleep):
    await create(fake_sleep, {"status": 429, "headers": {"Retry-After": "soon"}})
    (wait,) = fake_sleep.waits
    assert 0.25 <= wait <= 0.5  # a first throttling answer: 0.25 s + up to 0.25 s jitter


async def test_500_backs_off_less_than_a_throttling_answer(fake_sleep):
    await create(fake_sleep, {"status": 500}, {"status": 500})
    first, second = fake_sleep.waits
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 3.0


@pytest.mark.parametrize("status", [502, 504])
async def test_gateway_errors_on_a_create_are_uncertain_and_never_resent(fake_sleep, status):
    outcome, sent = await create(fake_sleep, {"status": status, "body": "<html>Bad Gateway"})
    assert (outcome.status, outcome.attempts, sent) == ("uncertain", 1, 1)
    assert fake_sleep.waits == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            [{"type": "ObjectValidationError", "property": "contactId",
              "requirement": {"type": "IdRequirement"}, "value": "0"}],
            "contactId '0' is not the id of an existing record (IdRequirement)",
        ),
        ({"message": "assetType is not set up"}, "Eloqua answered 400: assetType is not set up"),
        ("<html>Bad Request</html>", "Eloqua answered 400: <html>Bad Request</html>"),
        (None, "Eloqua answered 400"),
    ],
)  # fmt: skip
async def test_400_is_rejected_at_once_with_eloquas_reason_whatever_the_body(
    fake_sleep, body, words
):
    text = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    outcome, sent = await create(fake_sleep, {"status": 400, "body": text})
    assert (outcome.status, outcome.http_status, outcome.attempts, sent) == (
        "rejected", 400, 1, 1
    )  # fmt: skip
    assert outcome.error == words


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "not allowed to create external activities"),
        (404, "Eloqua answered 404 Not Found"),
        (409, "Eloqua answered 409"),
    ],
)
async def test_other_4xx_are_rejected_without_a_retry(fake_sleep, status, words):
    outcome, sent = await create(fake_sleep, {"status": status})
    assert (outcome.status, outcome.http_status, sent) == ("rejected", status, 1)
    assert words in outcome.error


async def test_401_stops_the_run(fake_sleep):
    with pytest.raises(Unauthorized, match="did not accept the credentials"):
        await create(fake_sleep, {"status": 401, "body": "Not authenticated."})


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 201, "body": "<html>Created</html>"},  # not JSON
        {"status": 201, "body": ""},  # no body
        {"status": 201, "payload": {"name": "Expo"}},  # JSON without an id
        {"status": 204},
    ],
    ids=["html", "empty", "no-id", "204"],
)
async def test_2xx_without_an_id_is_uncertain_not_resent(fake_sleep, answer):
    outcome, sent = await create(fake_sleep, answer)
    assert (outcome.status, outcome.attempts, sent) == ("uncertain", 1, 1)
    assert "without a usable activity id" in outcome.error


async def test_201_with_a_null_id_is_uncertain(fake_sleep):
    outcome, sent = await create(fake_sleep, {"status": 201, "payload": {"id": None}})
    assert (outcome.status, outcome.activity_id, sent) == ("uncertain", "", 1)


async def test_refused_connection_is_retried_because_nothing_was_sent(fake_sleep):
    outcome, sent = await create(fake_sleep, {"exception": refused()})
    assert (outcome.status, outcome.attempts, sent) == ("created", 2, 2)


async def test_refused_every_time_fails_safe_to_resend(fake_sleep):
    outcome, _ = await create(fake_sleep, *[{"exception": refused()}] * 3, attempts=3)
    assert (outcome.status, outcome.attempts) == ("failed", 3)
    assert outcome.error.startswith("could not connect to Eloqua")


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        TimeoutError(),
    ],
    ids=["disconnected", "reset", "cut-body", "timeout"],
)
async def test_connection_lost_after_sending_is_uncertain_and_not_resent(fake_sleep, error):
    outcome, sent = await create(fake_sleep, {"exception": error})
    assert (outcome.status, outcome.attempts, sent) == ("uncertain", 1, 1)
    assert "--retry-uncertain" in outcome.error and fake_sleep.waits == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_3xx_on_a_create_is_never_followed_nor_created(fake_sleep, status):
    followed: list[str] = []

    def elsewhere(url, **kwargs) -> CallbackResult:
        followed.append(str(url))
        return CallbackResult(status=201, payload={"id": "777"})

    async with mocked_client() as (client, mocked):
        mocked.post(ACTIVITY_URL, status=status, headers={"Location": ELSEWHERE})
        mocked.get(ELSEWHERE, callback=elsewhere, repeat=True)
        mocked.post(ELSEWHERE, callback=elsewhere, repeat=True)
        outcome = await send_one(client, PAYLOAD, RetryPolicy(sleep=fake_sleep))
    assert followed == []
    # 307/308 ask for the same request elsewhere: the server did not act on it. Any other 3xx
    # may answer a POST that was processed, so the row stays uncertain (never resent).
    expected = "failed" if status in (307, 308) else "uncertain"
    assert (outcome.status, outcome.http_status, outcome.attempts) == (expected, status, 1)
