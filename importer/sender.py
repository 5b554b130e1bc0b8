"""Send payloads to Eloqua concurrently, with one declared retry policy.

What may be retried is decided by whether the request could have reached Eloqua: a refused
connection or an answer of 429/5xx means nothing was created, so sending again is safe. A
connection that drops or times out after the request went out may have created the activity;
since Eloqua cannot delete activities, such a row is reported ``uncertain`` and never resent
blindly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from importer.eloqua import ApiResponse, EloquaClient, describe_error

#: Answers that mean "not created, try again later".
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Answers that mean "slow down": the backoff for these starts higher.
THROTTLE_STATUSES = frozenset({429, 503})
#: Errors raised before the request left this machine: resending cannot duplicate.
NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
#: Errors after the request may have reached Eloqua: the outcome is unknown.
UNCERTAIN_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How often and how long to retry. ``sleep`` is injectable so tests never wait."""

    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    jitter: float = 1.0
    throttle_factor: float = 4.0  # 429/503 without Retry-After: wait this much longer
    max_retry_after: float = 300.0
    #: None means :func:`backoff_sleep`, looked up at run time so tests can patch it.
    sleep: Callable[[float], Awaitable[None]] | None = None

    def retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_result(_retryable) | retry_if_exception_type(NOT_SENT_ERRORS),
            wait=self._wait,
            stop=stop_after_attempt(self.max_attempts),
            sleep=self.sleep or backoff_sleep,
            # Out of attempts: hand back the last answer (or raise the last error).
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            initial=self.initial_wait, max=self.max_wait, jitter=self.jitter
        )(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            response: ApiResponse = outcome.result()
            if response.retry_after is not None:
                return min(response.retry_after, self.max_retry_after)
            if response.status in THROTTLE_STATUSES:
                return min(backoff * self.throttle_factor, self.max_wait * self.throttle_factor)
        return backoff


async def backoff_sleep(seconds: float) -> None:
    """The wait between attempts (tests replace it so they never wait)."""
    await asyncio.sleep(seconds)


def _retryable(response: ApiResponse) -> bool:
    return response.status in RETRY_STATUSES


@dataclass
class Outcome:
    """What happened to one row. ``status`` is one of the results statuses."""

    status: str
    activity_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error: str = ""


class Unauthorized(Exception):
    """Eloqua answered 401: the whole run must stop."""


async def send_one(client: EloquaClient, payload: dict[str, Any], policy: RetryPolicy) -> Outcome:
    """Create one activity, retrying what is safe to retry. Raises Unauthorized on 401."""
    attempts = 0

    async def attempt() -> ApiResponse:
        nonlocal attempts
        attempts += 1
        return await client.create_activity(payload)

    try:
        response: ApiResponse = await policy.retrying()(attempt)
    except NOT_SENT_ERRORS as exc:
        return Outcome("failed", attempts=attempts, error=f"could not connect to Eloqua: {exc}")
    except UNCERTAIN_ERRORS as exc:
        reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
        return Outcome(
            "uncertain",
            attempts=attempts,
            error=f"sent, but no answer from Eloqua ({reason}); it may or may not have been"
            " created, so it was not resent",
        )
    if response.status == 401:
        raise Unauthorized(describe_error(response))
    if response.status in (200, 201) and isinstance(response.body, dict) and "id" in response.body:
        return Outcome("created", str(response.body["id"]), response.status, attempts)
    if response.status in RETRY_STATUSES:
        return Outcome(
            "failed",
            http_status=response.status,
            attempts=attempts,
            error=f"{describe_error(response)} (gave up after {attempts} attempts; safe to resend)",
        )
    if 200 <= response.status < 300:
        return Outcome(
            "uncertain",
            http_status=response.status,
            attempts=attempts,
            error=f"Eloqua answered {response.status} without an activity id",
        )
    return Outcome(
        "rejected", http_status=response.status, attempts=attempts, error=describe_error(response)
    )


@dataclass
class SendStats:
    sent: int = 0
    stopped_reason: str = ""
    unsent: int = 0


@dataclass
class Sender(Generic[T]):
    """Runs ``concurrency`` workers over a lazy stream of (key, payload) jobs.

    ``on_outcome`` is called once per job, as each completes. After a 401 (or :meth:`stop`),
    nothing more is sent: the remaining jobs are still drained from the stream and reported
    ``failed`` so every row is accounted for.
    """

    client: EloquaClient
    on_outcome: Callable[[T, Outcome], None]
    concurrency: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    stats: SendStats = field(default_factory=SendStats)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: str) -> None:
        if not self._stopping.is_set():
            self.stats.stopped_reason = reason
            self._stopping.set()

    async def run(self, jobs: Iterable[tuple[T, dict[str, Any]]]) -> SendStats:
        queue: asyncio.Queue[tuple[T, dict[str, Any]] | None] = asyncio.Queue(
            maxsize=self.concurrency * 2
        )
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]
        try:
            for job in jobs:
                if self._stopping.is_set():
                    self._not_sent(job[0])
                    continue
                await queue.put(job)
                # Let the workers run between rows, so a slow file does not starve them.
                await asyncio.sleep(0)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        return self.stats

    async def _worker(self, queue: asyncio.Queue[tuple[T, dict[str, Any]] | None]) -> None:
        while (job := await queue.get()) is not None:
            key, payload = job
            if self._stopping.is_set():
                self._not_sent(key)
                continue
            try:
                outcome = await send_one(self.client, payload, self.policy)
            except Unauthorized as exc:
                self.stop(f"Eloqua refused the credentials ({exc})")
                outcome = Outcome("failed", http_status=401, attempts=1, error=self._unsent_text())
            self.stats.sent += 1
            self.on_outcome(key, outcome)

    def _not_sent(self, key: T) -> None:
        self.stats.unsent += 1
        self.on_outcome(key, Outcome("failed", error=self._unsent_text()))

    def _unsent_text(self) -> str:
        return f"not sent: the run stopped because {self.stats.stopped_reason}; safe to resend"
