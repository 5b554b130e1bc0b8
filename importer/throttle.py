"""Pacing: adaptive concurrency (AIMD) and the queue of rows waiting out their backoff.

Eloqua publishes no rate limit; it answers 429 or 503 when it is overloaded. The number of
requests allowed in flight (``AdaptiveLimit``) follows its answers, counted in rounds of about
``limit`` answers, so no wall clock is involved:

- throttling answers above a tenth of a window (``TOLERATED_SHARE`` of ``limit`` answers, at
  least ``MIN_WINDOW``) cut the limit to ``DECREASE`` of itself, once: answers to requests sent
  before that cut (an epoch number, taken when a request gets its slot, tells them apart)
  cannot cut again, but each of them refused lowers the limit to what that round showed the
  server accepts (a burst of 24 refusals out of 32 means room for about 8);
- every round grows the limit by one, up to ``--concurrency``; when Eloqua throttled twice at
  the same level, the limit grows past it only one step per ``CAREFUL_ROUNDS`` rounds: its
  capacity is there.

An isolated 429 (Eloqua throttles now and then whatever the load) thus costs a retry, not half
the pipe, while against a server with room for N requests the limit settles near N.

A row whose attempt was answered 429/500/503 (or refused) waits out its backoff in the
``RetryQueue``, ordered by due time, without holding a worker: the other rows keep the pipe
full meanwhile. Its ledger claim stays pending while it waits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, TypeVar

THROTTLE_STATUSES = frozenset({429, 503})
#: The limit after a cut, as a share of the limit before it.
DECREASE = 0.8
#: Throttling answers a round may hold without a cut, as a share of the limit (rounded down).
TOLERATED_SHARE = 0.1
#: ... over windows of at least this many answers.
MIN_WINDOW = 20
#: Rounds per step of growth near the limit where Eloqua last throttled.
CAREFUL_ROUNDS = 12

T = TypeVar("T")


class AdaptiveLimit:
    """An async semaphore whose size follows Eloqua's answers."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = maximum
        self.in_use = 0
        self.throttled = 0  # 429/503 answers seen
        #: Counts the cuts; a request remembers the epoch it was sent in (``sent_in``).
        self.epoch = 0
        self._round_answers = 0  # answers towards the next step of growth
        self._round_throttled = 0  # throttling answers in the current window ...
        self._window_answers = 0  # ... of max(limit, MIN_WINDOW) answers
        self._cuts_at: deque[float] = deque(maxlen=2)  # the limits where Eloqua throttled
        self._cut_from = float(maximum)  # the limit before the last cut ...
        self._refused = 0  # ... and how many requests of that round were refused
        #: Requests queued for a slot, first come first served; a freed slot is handed over.
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued: no await, no lock (the event loop
        runs one task at a time). False: ``await acquire()``."""
        if self._waiters or self.in_use >= int(self.limit):
            return False
        self.in_use += 1
        return True

    async def acquire(self) -> None:
        """Take a slot, queueing for one if need be."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as this request was cancelled
            elif waiter in self._waiters:  # (release may have dropped it already)
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back; the requests queued first take the slots now free."""
        self.in_use -= 1
        waiters = self._waiters
        while waiters and self.in_use < int(self.limit):
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled one has left (acquire) or will
                self.in_use += 1
                waiter.set_result(None)

    async def __aenter__(self) -> AdaptiveLimit:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def observe(self, status: int, sent_in: int | None = None) -> None:
        """Adjust the limit to one answer from Eloqua. ``sent_in``: the ``epoch`` when the
        request got its slot (None: now); answers to requests sent before the last cut only
        count as throttled."""
        throttled = status in THROTTLE_STATUSES
        self.throttled += throttled
        if sent_in is not None and sent_in != self.epoch:
            if throttled and sent_in == self.epoch - 1:
                # Sent before the cut, in the round that caused it: each refusal shows one
                # request too many at that level, however many the cut assumed.
                self._refused += 1
                self.limit = max(1.0, min(self.limit, self._cut_from - self._refused))
                self.lowest = min(self.lowest, int(self.limit))
            return
        self._round_answers += 1
        self._window_answers += 1
        if throttled:
            self._round_throttled += 1
            window = max(int(self.limit), MIN_WINDOW)
            # At the capacity found, any refusal means one request too many.
            tolerated = 0 if self._at_ceiling() else window * TOLERATED_SHARE
            if self._round_throttled > tolerated:
                self._cut()
                return
        if self._window_answers >= max(int(self.limit), MIN_WINDOW):
            self._window_answers = self._round_throttled = 0
        if throttled or self._round_answers < int(self.limit):
            return  # (the common case, decided without looking at the ceiling)
        if self._round_answers >= int(self.limit) * self._rounds_per_step():
            self.limit = min(float(self.maximum), self.limit + 1)
            self._round_answers = 0

    def _rounds_per_step(self) -> int:
        """Grow by one per round, but slowly (one per ``CAREFUL_ROUNDS``) at the ceiling."""
        return CAREFUL_ROUNDS if self._at_ceiling() else 1

    def _at_ceiling(self) -> bool:
        """Within one of the level where Eloqua throttled the last two times, if that was the
        same level both times: there its capacity is (throttling at random levels, now and
        then, says nothing of it)."""
        if len(self._cuts_at) < 2:
            return False
        first, second = self._cuts_at
        return abs(first - second) <= 1 and self.limit + 1 >= min(first, second)

    def _cut(self) -> None:
        self._cuts_at.append(self.limit)
        self._cut_from = self.limit
        self._refused = self._round_throttled
        self.limit = max(1.0, self.limit * DECREASE)
        self.lowest = min(self.lowest, int(self.limit))
        self.epoch += 1
        self._new_round()

    def _new_round(self) -> None:
        self._round_answers = 0
        self._round_throttled = 0
        self._window_answers = 0


class RetryQueue(Generic[T]):
    """Items waiting out a delay, released in order of due time, none holding a task.

    One timer task sleeps until the earliest is due (``sleep`` is injectable: tests patch it
    so they never wait). Having slept as asked, that item is due whatever ``clock`` says, so
    a patched sleep that returns at once releases the items in due order. ``on_ready`` is
    called whenever items become ready (``pop_ready``).
    """

    def __init__(
        self,
        sleep: Callable[[float], Awaitable[None]],
        on_ready: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep = sleep
        self._on_ready = on_ready
        self._clock = clock
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()  # equal due times: first deferred, first released
        self._ready: deque[T] = deque()
        self._timer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._heap) + len(self._ready)

    def defer(self, item: T, delay: float) -> None:
        due = self._clock() + delay
        earliest = not self._heap or due < self._heap[0][0]
        heapq.heappush(self._heap, (due, next(self._order), item))
        if earliest:
            self._restart_timer(delay)

    def pop_ready(self) -> T | None:
        return self._ready.popleft() if self._ready else None

    def release_all(self) -> None:
        """Everything waiting is ready now (a stop: they are reported, not sent)."""
        self.close()
        while self._heap:
            self._ready.append(heapq.heappop(self._heap)[2])
        self._on_ready()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _restart_timer(self, wait: float | None = None) -> None:
        self.close()
        due = self._heap[0][0]
        if wait is None:
            wait = due - self._clock()
        self._timer = asyncio.get_running_loop().create_task(self._wake_at(due, wait))

    async def _wake_at(self, due: float, wait: float) -> None:
        if wait > 0:
            await self._sleep(wait)
        cutoff = max(due, self._clock())
        while self._heap and self._heap[0][0] <= cutoff:
            self._ready.append(heapq.heappop(self._heap)[2])
        self._timer = None
        if self._heap:
            self._restart_timer()
        self._on_ready()
