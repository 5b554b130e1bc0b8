"""The retry policy, declared once: which answers and errors may be retried, and how long to wait.

Whether a request may be sent again is decided by whether it could have reached Eloqua: a
refused connection or an answer of 429/500/503 means nothing was created, so sending again is
safe. A connection that drops or times out after the request went out may have created the
activity, and so may a 502/504 (a gateway may have passed the request on). Creates therefore
retry only ``RETRY_STATUSES`` and ``NOT_SENT_ERRORS``; reads (lookups, ``idempotent=True``) may
also retry 502/504 and any network error. Waits honour Retry-After, back off exponentially with
jitter, and go through an injectable ``sleep`` so tests never wait. Used by the sender, the
lookups and the lost-ledger check.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from importer.eloqua import ApiResponse
from importer.throttle import THROTTLE_STATUSES

#: Answers that mean "not created, try again later".
RETRY_STATUSES = frozenset({429, 500, 503})
#: Gateway answers: the gateway may have passed the request on before it gave up, so a create
#: is ``uncertain``; a read may safely ask again.
GATEWAY_STATUSES = frozenset({502, 504})
READ_RETRY_STATUSES = RETRY_STATUSES | GATEWAY_STATUSES
#: Redirects that ask for the same request at another address: the server did not act on it.
NOT_PROCESSED_REDIRECTS = frozenset({307, 308})
#: Errors raised before the request left this machine: resending cannot duplicate.
NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
#: Errors after the request may have reached Eloqua: the outcome is unknown.
UNCERTAIN_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)


@dataclass
class RetryPolicy:
    """How often and how long to retry. ``sleep`` is injectable so tests never wait."""

    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0
    #: 429/503 without Retry-After: the first wait is short (the adaptive limit has already
    #: cut the load, and a lone 429 is common), each next one this many times longer.
    throttle_wait: float = 0.25
    throttle_growth: float = 4.0
    max_throttle_wait: float = 240.0
    max_retry_after: float = 300.0
    #: None means :func:`backoff_sleep`, looked up at run time so tests can patch it.
    sleep: Callable[[float], Awaitable[None]] | None = None

    def retrying(self, *, idempotent: bool = False) -> AsyncRetrying:
        """``idempotent`` (reads): any network error may be retried, not only unsent ones."""
        errors = (aiohttp.ClientError, TimeoutError) if idempotent else NOT_SENT_ERRORS
        retryable = _retryable_read if idempotent else _retryable
        return AsyncRetrying(
            retry=retry_if_result(retryable) | retry_if_exception_type(errors),
            wait=self._wait,
            stop=stop_after_attempt(self.max_attempts),
            sleep=self.sleep or backoff_sleep,
            # Out of attempts: hand back the last answer (or raise the last error).
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` with this policy's sleep (tests patch it so they never wait)."""
        await (self.sleep or backoff_sleep)(seconds)

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        answer = None
        if outcome is not None and not outcome.failed:
            answer = outcome.result()
        return self.delay(state.attempt_number, answer)

    def delay(self, attempt: int, answer: ApiResponse | None = None) -> float:
        """The wait after attempt number ``attempt`` (from 1) ended with ``answer`` (None: an
        error): Retry-After if given, else exponential backoff with jitter, longer after a
        throttling answer. The sender's retry queue and tenacity's waits both use it."""
        backoff = _exponential_jitter(attempt, self.initial_wait, self.max_wait, self.jitter)
        if answer is not None:
            if answer.retry_after is not None:
                # "Retry-After: 0" would mean hammering; wait at least the first backoff step.
                return min(max(answer.retry_after, self.initial_wait), self.max_retry_after)
            if answer.status in THROTTLE_STATUSES:
                first, growth = self.throttle_wait, self.throttle_growth
                wait = first * growth ** min(attempt - 1, 64) + random.uniform(0, first)
                return min(wait, self.max_throttle_wait)
        return backoff


def _exponential_jitter(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """tenacity's wait_exponential_jitter: initial x 2^(attempt-1) + U(0, jitter), capped."""
    try:
        wait = initial * 2 ** (attempt - 1) + random.uniform(0, jitter)
    except OverflowError:
        wait = maximum
    return max(0.0, min(wait, maximum))


async def backoff_sleep(seconds: float) -> None:
    """The wait between attempts (tests replace it so they never wait)."""
    await asyncio.sleep(seconds)


def _retryable(response: ApiResponse) -> bool:
    return response.status in RETRY_STATUSES


def _retryable_read(response: ApiResponse) -> bool:
    return response.status in READ_RETRY_STATUSES


async def first_then_policy(
    attempt: Callable[[], Awaitable[ApiResponse]], policy: RetryPolicy
) -> ApiResponse:
    """``attempt`` under ``policy``, without tenacity's cost for the common case.

    Almost every row is answered for good at its first attempt, and tenacity's bookkeeping
    costs about as much CPU as the request itself. So the first attempt runs directly; only
    when its answer is retryable, or it raised, does the policy take over, replaying that first
    result as its own attempt 1 so that waits and the attempt limit are exactly the policy's.
    """
    try:
        first: ApiResponse | BaseException = await attempt()
    except Exception as exc:
        first = exc
    if isinstance(first, ApiResponse) and not _retryable(first):
        return first
    replay = [first]

    async def replay_then_attempt() -> ApiResponse:
        if replay:
            earlier = replay.pop()
            if isinstance(earlier, BaseException):
                raise earlier
            return earlier
        return await attempt()

    return await policy.retrying()(replay_then_attempt)
