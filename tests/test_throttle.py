"""Adaptive concurrency (AIMD): halve on 429/503 once per round, grow back by ~1 per round."""

from __future__ import annotations

import asyncio

from importer.throttle import AdaptiveLimit


def test_throttling_halves_the_limit_once_per_round():
    limit = AdaptiveLimit(8)
    limit.observe(429)
    assert limit.limit == 4
    # The other answers of the same round (requests sent before the cut) do not cut again.
    for _ in range(3):
        limit.observe(503)
    assert limit.limit == 4
    limit.observe(429)
    assert limit.limit == 2
    assert limit.throttled == 5 and limit.lowest == 2


def test_limit_never_drops_below_one_and_grows_back_to_the_maximum():
    limit = AdaptiveLimit(4)
    for _ in range(20):
        limit.observe(429)
        for _ in range(4):
            limit.observe(201)
    assert limit.limit >= 1
    limit = AdaptiveLimit(4)
    for _ in range(3):  # cut to 2; one more answer of that round; then a new round's 429
        limit.observe(429)
    assert limit.limit == 1
    answers = 0
    while limit.limit < 4:
        limit.observe(201)
        answers += 1
    # Additive increase: about one step per round of answers, not a jump back.
    assert 4 <= answers <= 12
    limit.observe(201)
    assert limit.limit == 4


def test_server_errors_do_not_change_the_limit():
    limit = AdaptiveLimit(8)
    limit.observe(500)
    limit.observe(502)
    assert limit.limit == 8 and limit.throttled == 0


async def test_in_flight_requests_never_exceed_the_current_limit():
    limit = AdaptiveLimit(6)
    limit.observe(429)  # now 3
    peak = 0
    gate = asyncio.Event()

    async def request():
        nonlocal peak
        async with limit:
            peak = max(peak, limit.in_use)
            await gate.wait()

    tasks = [asyncio.create_task(request()) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert limit.in_use == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 3 and limit.in_use == 0


async def test_a_request_waiting_for_a_slot_gets_the_next_one_freed():
    limit = AdaptiveLimit(1)
    order = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def request(name):
        async with limit:
            order.append(name)
            first_in.set()
            await release.wait()

    first = asyncio.create_task(request("first"))
    await first_in.wait()
    second = asyncio.create_task(request("second"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert order == ["first"] and limit.in_use == 1
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and limit.in_use == 0
