"""Adaptive concurrency (AIMD): halve on 429/503 once per round, grow back by ~1 per round."""

from __future__ import annotations

import asyncio

from importer.throttle import CAREFUL_ROUNDS, DECREASE, AdaptiveLimit, RetryQueue


def test_throttling_above_a_tenth_of_a_window_cuts_the_limit_once():
    limit = AdaptiveLimit(30)
    sent = limit.epoch
    for _ in range(3):  # 3 of a window of 30: tolerated
        limit.observe(429, sent)
    assert limit.limit == 30
    limit.observe(429, sent)
    assert limit.limit == 30 * DECREASE and limit.epoch == sent + 1
    # Answers to requests sent before the cut cannot cut again ...
    for _ in range(10):
        limit.observe(201, sent)
    assert limit.limit == 30 * DECREASE
    assert limit.throttled == 4 and limit.lowest == 24


def test_a_burst_of_refusals_brings_the_limit_to_what_the_server_accepted():
    limit = AdaptiveLimit(32)
    sent = limit.epoch
    for _ in range(24):  # a server with room for 8 refuses 24 of the first 32 requests
        limit.observe(429, sent)
    for _ in range(8):
        limit.observe(201, sent)
    assert limit.limit == 8 and limit.lowest == 8


def test_an_isolated_429_in_a_large_round_does_not_cut():
    limit = AdaptiveLimit(32)
    for answer in [429, *[201] * 10, 429, *[201] * 10, 503]:  # 3 in a round of 32: a tenth
        limit.observe(answer, limit.epoch)
    assert limit.limit == 32 and limit.throttled == 3
    limit.observe(429, limit.epoch)  # the fourth passes a tenth: cut
    assert limit.limit == 32 * DECREASE


def test_limit_never_drops_below_one_and_grows_back_by_one_per_round():
    limit = AdaptiveLimit(4)
    for _ in range(60):
        limit.observe(429, limit.epoch)
    assert limit.limit == 1
    limit = AdaptiveLimit(5)
    for _ in range(3):  # 3 in a window of 20: cut to 4
        limit.observe(429, limit.epoch)
    assert limit.limit == 4
    for _ in range(4):  # one round of 4 answers: one step
        limit.observe(201, limit.epoch)
    assert limit.limit == 5


def test_growth_slows_near_the_level_where_eloqua_throttled_twice():
    limit = AdaptiveLimit(32)
    for _ in range(2):
        limit.limit = 10.0
        for _ in range(3):
            limit.observe(429, limit.epoch)
    assert limit.limit == 8
    answers = 0
    while limit.limit < 10:
        limit.observe(201, limit.epoch)
        answers += 1
    # 8 -> 9 in one round of 8; 9 -> 10 within one of the ceiling: CAREFUL_ROUNDS rounds of 9.
    assert answers == 8 + CAREFUL_ROUNDS * 9


def test_server_errors_do_not_change_the_limit():
    limit = AdaptiveLimit(8)
    limit.observe(500)
    limit.observe(502)
    assert limit.limit == 8 and limit.throttled == 0


def simulate_capacity(capacity: int, maximum: int, rounds: int) -> tuple[float, float]:
    """A server with room for ``capacity`` requests refuses any request that arrives while it
    has that many; the client keeps its limit full; answers come back oldest first. Returns
    (mean requests in flight that the server accepted, share of requests refused)."""
    limit = AdaptiveLimit(maximum)
    in_flight: list[tuple[int, bool]] = []  # (epoch when sent, refused) of each request
    sent = refused = 0
    levels = []
    for _ in range(rounds * maximum):
        while len(in_flight) < int(limit.limit):
            accepted = sum(not no for _, no in in_flight)
            in_flight.append((limit.epoch, accepted >= capacity))
            sent += 1
        levels.append(sum(not no for _, no in in_flight))
        epoch, no = in_flight.pop(0)
        refused += no
        limit.observe(429 if no else 201, epoch)
    return sum(levels) / len(levels), refused / sent


def test_limit_settles_near_a_servers_capacity_with_few_429s():
    mean, share = simulate_capacity(capacity=8, maximum=32, rounds=200)
    assert 8 * 0.8 <= mean <= 8 * 1.2
    assert share <= 0.05


async def test_in_flight_requests_never_exceed_the_current_limit():
    limit = AdaptiveLimit(6)
    for _ in range(3):  # 3 in a window of 20: cut
        limit.observe(429)
    allowed = int(6 * DECREASE)
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
    assert limit.in_use == allowed
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == allowed and limit.in_use == 0


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


class Clock:
    """A patched clock and sleep: sleeping moves the clock, never the wall."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_retry_queue_releases_rows_in_order_of_due_time():
    clock = Clock()
    woken = []
    queue: RetryQueue[str] = RetryQueue(clock.sleep, lambda: woken.append(clock.now), clock)
    queue.defer("late", 4.0)
    queue.defer("early", 1.0)  # deferred after, due before: the timer is set again for it
    queue.defer("middle", 2.0)
    assert len(queue) == 3 and queue.pop_ready() is None
    await settle()
    assert [queue.pop_ready() for _ in range(3)] == ["early", "middle", "late"]
    assert woken == [101.0, 102.0, 104.0] and len(queue) == 0


async def test_retry_queue_with_a_sleep_that_returns_at_once_still_keeps_the_order():
    clock = Clock()
    waits = []

    async def instant(seconds: float) -> None:
        waits.append(seconds)

    queue: RetryQueue[int] = RetryQueue(instant, lambda: None, clock)
    for item, delay in ((1, 3.0), (2, 5.0)):
        queue.defer(item, delay)
    await settle()
    assert [queue.pop_ready(), queue.pop_ready()] == [1, 2]
    assert waits == [3.0, 5.0]


async def test_retry_queue_release_all_makes_every_row_ready_at_once():
    clock = Clock()
    never = asyncio.Event()

    async def forever(seconds: float) -> None:
        await never.wait()

    queue: RetryQueue[str] = RetryQueue(forever, lambda: None, clock)
    queue.defer("a", 60.0)
    queue.defer("b", 30.0)
    await settle()
    queue.release_all()
    assert [queue.pop_ready(), queue.pop_ready()] == ["b", "a"]
    assert len(queue) == 0
