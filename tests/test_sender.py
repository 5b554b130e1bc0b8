"""The sender: retry policy (sleep patched, never waits) and concurrency, on a real socket."""

from __future__ import annotations

import asyncio
import socket

from importer.config import Credentials
from importer.eloqua import EloquaClient, open_session
from importer.ledger import Ledger
from importer.retry import RetryPolicy
from importer.sender import Job, Outcome, Sender, SendOptions, send_one

PAYLOAD = {
    "name": "Expo",
    "assetName": "Expo",
    "assetType": "Tradeshow",
    "activityType": "Visited Booth",
    "activityDate": "1773493500",
    "contactId": 2001,
}
CREDENTIALS = Credentials("Acme", "api.user", "s3cret")


def policy(sleep, attempts: int = 6) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, sleep=sleep)


async def send(base_url: str, sleep, attempts: int = 6) -> Outcome:
    async with open_session(4) as session:
        client = EloquaClient(session, base_url, CREDENTIALS)
        return await send_one(client, PAYLOAD, policy(sleep, attempts))


async def test_server_error_then_success_is_retried_once(scripted, fake_sleep):
    scripted.then(500, {"error": "boom"})
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "created"
    assert outcome.activity_id == "5001"
    assert outcome.attempts == 2
    assert len(fake_sleep.waits) == 1
    assert scripted.received == [PAYLOAD, PAYLOAD]


async def test_429_waits_as_long_as_retry_after_says(scripted, fake_sleep):
    scripted.then(429, "Too Many Requests", {"Retry-After": "7"})
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "created"
    assert fake_sleep.waits == [7.0]


async def test_a_first_503_is_retried_soon_and_repeated_ones_wait_ever_longer(scripted, fake_sleep):
    scripted.then(503).then(503).then(503).then(500)
    await send(scripted.base_url, fake_sleep)
    first, second, third, server_error = fake_sleep.waits
    # Throttling: 0.25 s, then x4 each time (+ up to 0.25 s jitter); the adaptive limit has
    # already cut the load. A server error: 1 s x 2^(attempt-1) + up to 1 s jitter.
    assert 0.25 <= first <= 0.5
    assert 1.0 <= second <= 1.25
    assert 4.0 <= third <= 4.25
    assert 8.0 <= server_error <= 9.0


async def test_backoff_grows_exponentially_and_gives_up_as_failed(scripted, fake_sleep):
    for _ in range(4):
        scripted.then(500)
    outcome = await send(scripted.base_url, fake_sleep, attempts=4)
    assert outcome.status == "failed"
    assert outcome.http_status == 500
    assert outcome.attempts == 4
    assert "safe to resend" in outcome.error
    first, second, third = fake_sleep.waits
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 3.0 and 4.0 <= third <= 5.0


async def test_400_is_rejected_with_eloquas_reason_and_never_retried(scripted, fake_sleep):
    scripted.then(
        400,
        [
            {
                "type": "ObjectValidationError",
                "property": "contactId",
                "requirement": {"type": "IdRequirement"},
                "value": "0",
            }
        ],
    )
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "rejected"
    assert outcome.http_status == 400
    assert outcome.attempts == 1
    assert outcome.error == "contactId '0' is not the id of an existing record (IdRequirement)"
    assert fake_sleep.waits == []
    assert len(scripted.received) == 1


async def test_dropped_connection_is_uncertain_and_not_resent(scripted, fake_sleep):
    scripted.then(0)
    outcome = await send(scripted.base_url, fake_sleep)
    assert outcome.status == "uncertain"
    assert "not resent" in outcome.error
    assert len(scripted.received) == 1


async def test_refused_connection_is_retried_then_failed(fake_sleep):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await send(f"http://127.0.0.1:{port}", fake_sleep, attempts=3)
    assert outcome.status == "failed"
    assert outcome.attempts == 3
    assert "could not connect" in outcome.error


async def test_401_stops_the_run_and_reports_every_remaining_row(scripted, fake_sleep):
    scripted.then(401, "Not authenticated.")
    outcomes: dict[int, Outcome] = {}
    async with open_session(1) as session:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=outcomes.__setitem__,
            options=SendOptions(concurrency=1, policy=policy(fake_sleep)),
        )
        stats = await sender.run(Job(n, PAYLOAD) for n in range(20))
    assert len(scripted.received) == 1
    assert sorted(outcomes) == list(range(20))
    assert {o.status for o in outcomes.values()} == {"failed"}
    assert outcomes[0].http_status == 401
    assert "credentials" in stats.stopped_reason
    assert "rerun the same command" in outcomes[19].error


async def test_sender_reports_each_job_once_in_completion_order(scripted, fake_sleep):
    scripted.then(500)
    outcomes: list[tuple[int, str]] = []
    async with open_session(4) as session:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=lambda key, outcome: outcomes.append((key, outcome.status)),
            options=SendOptions(concurrency=4, policy=policy(fake_sleep)),
        )
        await sender.run(Job(n, {**PAYLOAD, "contactId": n}) for n in range(1, 31))
    assert sorted(outcomes) == [(n, "created") for n in range(1, 31)]
    assert sorted(p["contactId"] for p in scripted.received) == [1, *range(1, 31)]


async def test_basic_auth_header_is_company_backslash_user():
    assert CREDENTIALS.authorization() == "Basic QWNtZVxhcGkudXNlcjpzM2NyZXQ="
    assert "s3cret" not in repr(CREDENTIALS)


async def test_circuit_breaker_stops_a_run_that_keeps_failing(scripted, fake_sleep):
    for _ in range(200):
        scripted.then(503)
    outcomes: dict[int, Outcome] = {}
    async with open_session(2) as session:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=outcomes.__setitem__,
            options=SendOptions(
                concurrency=2, policy=policy(fake_sleep, attempts=2), breaker_threshold=5
            ),
        )
        stats = await sender.run(Job(n, PAYLOAD) for n in range(100))
    assert "kept failing" in stats.stopped_reason
    assert sorted(outcomes) == list(range(100))
    assert {o.status for o in outcomes.values()} == {"failed"}
    # Stopped after about 5 rows (+ the one in flight), not after trying all 100.
    assert len(scripted.received) <= 2 * 6
    assert "rerun the same command" in outcomes[99].error


async def test_wrong_url_404s_trip_the_breaker_too(scripted, fake_sleep):
    for _ in range(50):
        scripted.then(404, "Not Found")
    outcomes: dict[int, Outcome] = {}
    async with open_session(1) as session:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=outcomes.__setitem__,
            options=SendOptions(concurrency=1, policy=policy(fake_sleep), breaker_threshold=3),
        )
        stats = await sender.run(Job(n, PAYLOAD) for n in range(50))
    assert stats.stopped_reason and len(scripted.received) == 3
    assert [outcomes[n].status for n in range(4)] == ["rejected"] * 3 + ["failed"]


async def test_after_a_stop_the_unsent_rows_are_reported_without_blocking_the_event_loop():
    # Reporting 10,000 unsent rows must let the loop run in between: a second Ctrl-C (abort)
    # and the answers of requests in flight are handled while the rest is written.
    import asyncio

    reported: list[int] = []
    seen_by_loop: list[int] = []

    async with open_session(1) as session:
        client = EloquaClient(session, "http://127.0.0.1:9", CREDENTIALS)
        sender: Sender[int] = Sender(client, lambda key, outcome: reported.append(key))
        sender.stop("interrupted by Ctrl-C", interrupted=True)
        asyncio.get_running_loop().call_soon(lambda: seen_by_loop.append(len(reported)))
        await sender.run(Job(n, PAYLOAD) for n in range(10_000))
    assert len(reported) == 10_000
    assert seen_by_loop and seen_by_loop[0] < 10_000


async def test_a_row_waiting_out_a_429_does_not_hold_its_worker(scripted):
    scripted.then(429)
    waits: list[float] = []
    backoff_over = asyncio.Event()
    outcomes: dict[int, Outcome] = {}

    async def sleep(seconds: float) -> None:  # the 429's wait ends once the others are done
        waits.append(seconds)
        await backoff_over.wait()

    def record(key: int, outcome: Outcome) -> None:
        outcomes[key] = outcome
        if len(outcomes) == 4:
            backoff_over.set()

    async with open_session(1) as session:
        sender: Sender[int] = Sender(
            EloquaClient(session, scripted.base_url, CREDENTIALS),
            on_outcome=record,
            options=SendOptions(concurrency=1, policy=policy(sleep)),
        )
        await sender.run(Job(n, {**PAYLOAD, "contactId": n}) for n in range(5))
    # One worker: rows 1-4 went out while row 0 waited, then row 0 again.
    assert [body["contactId"] for body in scripted.received] == [0, 1, 2, 3, 4, 0]
    assert {o.status for o in outcomes.values()} == {"created"}
    assert outcomes[0].attempts == 2 and len(waits) == 1


async def test_a_stop_reports_a_deferred_row_failed_once_and_frees_its_claim(scripted, tmp_path):
    scripted.then(503)
    reported: list[tuple[int, Outcome]] = []

    async def never(seconds: float) -> None:  # the backoff outlasts the run
        await asyncio.Event().wait()

    async with Ledger(tmp_path / "ledger.sqlite3", "127.0.0.1/acme") as ledger:
        async with open_session(1) as session:
            sender: Sender[int] = Sender(
                EloquaClient(session, scripted.base_url, CREDENTIALS),
                on_outcome=lambda key, outcome: reported.append((key, outcome)),
                options=SendOptions(concurrency=1, policy=policy(never)),
                ledger=ledger,
            )

            def jobs():
                for n in range(4):
                    if n == 2:  # row 0 is waiting out its 503, row 1 was created
                        sender.stop("interrupted by a test", interrupted=True)
                    yield Job(n, {**PAYLOAD, "contactId": n}, b"fp-%d" % n, f"row {n}")

            await sender.run(jobs())
        await ledger.flush()
        assert [key for key, _ in reported].count(0) == 1
        assert sorted(key for key, _ in reported) == [0, 1, 2, 3]
        outcomes = dict(reported)
        assert outcomes[1].status == "created"
        first = outcomes[0]
        assert (first.status, first.http_status, first.attempts) == ("failed", 503, 1)
        assert "not sent: the run stopped" in first.error
        # Certainly not created: its pending claim is gone, so a rerun sends it.
        assert ledger.lookup(b"fp-0").decision == "send"
        assert ledger.lookup(b"fp-1").decision == "duplicate"  # created by this run
    assert len(scripted.received) == 2


async def hanging_eloqua(requests_in: asyncio.Event, expected: int, answer: asyncio.Event):
    """A server that takes creates and answers none until ``answer`` is set."""
    from aiohttp import web

    arrived = 0

    async def create(request: web.Request) -> web.Response:
        nonlocal arrived
        await request.read()
        arrived += 1
        if arrived == expected:
            requests_in.set()
        await answer.wait()
        return web.json_response({"id": "1"}, status=201)

    app = web.Application()
    app.router.add_post("/api/REST/2.0/data/activity", create)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_an_abort_gives_up_the_requests_in_flight_yet_the_workers_report_every_row(
    tmp_path,
):
    requests_in, answer = asyncio.Event(), asyncio.Event()
    runner, base_url = await hanging_eloqua(requests_in, 4, answer)
    reported: list[tuple[int, Outcome]] = []
    try:
        async with Ledger(tmp_path / "ledger.sqlite3", "127.0.0.1/acme") as ledger:
            async with open_session(4) as session:
                sender: Sender[int] = Sender(
                    EloquaClient(session, base_url, CREDENTIALS),
                    on_outcome=lambda key, outcome: reported.append((key, outcome)),
                    # The grace period ends right after the abort: a second give-up.
                    options=SendOptions(concurrency=4, stop_grace=0.0),
                    ledger=ledger,
                )
                jobs = (Job(n, PAYLOAD, b"fp-%d" % n, f"row {n}") for n in range(20))
                run = asyncio.create_task(sender.run(jobs))
                await asyncio.wait_for(requests_in.wait(), 30)
                sender.abort("stopped at once by a test")
                stats = await asyncio.wait_for(run, 30)
            await ledger.flush()
            assert stats.interrupted and sorted(key for key, _ in reported) == list(range(20))
            outcomes = dict(reported)
            assert {outcomes[n].status for n in range(4)} == {"uncertain"}
            assert all(outcomes[n].attempts == 1 for n in range(4))
            assert {outcomes[n].status for n in range(4, 20)} == {"failed"}
            # The given-up requests may have been created: their pending records stay.
            assert ledger.lookup(b"fp-0").decision != "send"
            assert ledger.lookup(b"fp-4").decision == "send"  # never sent
    finally:
        answer.set()
        await runner.cleanup()


async def test_cancelling_the_run_with_requests_in_flight_still_cancels_it():
    requests_in, answer = asyncio.Event(), asyncio.Event()
    runner, base_url = await hanging_eloqua(requests_in, 2, answer)
    try:
        async with open_session(2) as session:
            sender: Sender[int] = Sender(
                EloquaClient(session, base_url, CREDENTIALS),
                on_outcome=lambda key, outcome: None,
                options=SendOptions(concurrency=2),
            )
            run = asyncio.create_task(sender.run(Job(n, PAYLOAD) for n in range(5)))
            await asyncio.wait_for(requests_in.wait(), 30)
            sender.abort("stopped at once by a test")  # the give-up and the cancel together
            run.cancel()
            done, _ = await asyncio.wait({run}, timeout=30)
            assert done and run.cancelled()
    finally:
        answer.set()
        await runner.cleanup()


async def test_each_request_carries_the_user_agent_auth_json_headers_and_the_exact_body():
    import json

    from aiohttp import web

    from importer.eloqua import USER_AGENT

    seen: list[tuple[dict[str, str], bytes]] = []

    async def create(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.json_response({"id": str(len(seen))}, status=201)

    app = web.Application()
    app.router.add_post("/api/REST/2.0/data/activity", create)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    payloads = [{**PAYLOAD, "name": "Zoë ✓"}, {**PAYLOAD, "contactId": 2002}]
    try:
        async with open_session(1) as session:
            client = EloquaClient(
                session, f"http://127.0.0.1:{runner.addresses[0][1]}", CREDENTIALS
            )
            for payload in payloads:  # the second request reuses the headers built for the first
                assert (await client.create_activity(payload)).status == 201
    finally:
        await runner.cleanup()
    for (headers, body), payload in zip(seen, payloads, strict=True):
        assert body == json.dumps(payload, ensure_ascii=False).encode("utf-8")
        assert headers["User-Agent"] == USER_AGENT
        assert headers["Authorization"] == CREDENTIALS.authenticator().header_now()
        assert headers["Accept"] == "application/json"
        assert headers["Content-Type"] == "application/json; charset=utf-8"
