"""Adaptive concurrency: back off when Eloqua throttles, grow back gradually (AIMD).

Eloqua publishes no rate limit; it answers 429 or 503 when it is overloaded. On such an
answer the number of requests allowed in flight is halved (at most once per round of
answers, so one burst of 429s counts once), and every successful answer adds 1/limit, so the
limit grows back by about one per round trip, up to ``--concurrency``. No wall clock is
involved: rounds are counted in answers.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

THROTTLE_STATUSES = frozenset({429, 503})


class AdaptiveLimit:
    """An async semaphore whose size follows Eloqua's answers."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.lowest = maximum
        self.in_use = 0
        self.throttled = 0  # 429/503 answers seen
        self._answers_since_cut = maximum
        self._changed = asyncio.Condition()
        self._waiting = 0  # tasks queued for a slot

    async def __aenter__(self) -> AdaptiveLimit:
        # The common case, a free slot and nobody queued, needs no lock: the event loop runs
        # one task at a time, and the Condition costs as much as a small request.
        if self._waiting == 0 and self.in_use < int(self.limit):
            self.in_use += 1
            return self
        self._waiting += 1
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self.in_use < int(self.limit))
                self.in_use += 1
        finally:
            self._waiting -= 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.in_use -= 1
        if self._waiting:
            async with self._changed:
                self._changed.notify_all()

    def observe(self, status: int) -> None:
        """Adjust the limit to one answer from Eloqua."""
        self._answers_since_cut += 1
        if status in THROTTLE_STATUSES:
            self.throttled += 1
            # Answers to requests sent before the last cut say nothing new: cut once per round.
            if self._answers_since_cut >= int(self.limit):
                self.limit = max(1.0, self.limit / 2)
                self.lowest = min(self.lowest, int(self.limit))
                self._answers_since_cut = 0
        elif status < 500:
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
