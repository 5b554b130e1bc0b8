"""Send payloads to Eloqua concurrently: one declared retry policy, adaptive concurrency, the
idempotency ledger, a circuit breaker and a graceful stop.

What may be retried is decided by whether the request could have reached Eloqua: a refused
connection or an answer of 429/500/503 means nothing was created, so sending again is safe. A
connection that drops or times out after the request went out may have created the activity,
and so may a 502/504 (a gateway may have passed the request on before giving up) or a 2xx
without a usable id; since Eloqua cannot delete activities, such a row is reported
``uncertain`` and never resent blindly. Reads (lookups) may retry 502/504 and any network error.

Redirects are never followed. A 307/308 asks for the same request elsewhere, so the row was not
created (``failed``); any other 3xx may answer a POST that was processed (Post/Redirect/Get), so
the row is ``uncertain``. Either way the run stops at once: every row would get the same answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from importer.eloqua import (
    ApiResponse,
    EloquaClient,
    created_id,
    describe_error,
    is_redirect,
)
from importer.errors import ImporterError, Unauthorized
from importer.identity import Identity
from importer.ledger import Claim, Ledger, LedgerError
from importer.retry import (
    GATEWAY_STATUSES,
    NOT_PROCESSED_REDIRECTS,
    NOT_SENT_ERRORS,
    RETRY_STATUSES,
    UNCERTAIN_ERRORS,
    RetryPolicy,
    first_then_policy,
)
from importer.status import Status
from importer.throttle import AdaptiveLimit, RetryQueue

#: A row another live run is sending: look again every 5 s, for up to 2 minutes.
OTHER_RUN_INTERVAL = 5.0
OTHER_RUN_CHECKS = 24
#: After a stop, the rows left are reported unsent this many at a time between turns of the
#: event loop (signals, in-flight answers).
UNSENT_BATCH = 256
#: Rejections that say nothing about the row (wrong URL, missing permission): every row will
#: get the same answer, so the circuit breaker counts them like failures.
SYSTEMIC_REJECTIONS = frozenset({403, 404})
T = TypeVar("T")


@dataclass(slots=True)
class Outcome:
    """What happened to one row."""

    status: Status
    activity_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error: str = ""


@dataclass(slots=True)
class _Progress:
    """How far one row got; tells a cancelled send apart from a possibly-created one."""

    attempts: int = 0
    on_the_wire: bool = False
    redirect: str = ""  # Eloqua's redirect, described: the whole run must stop
    given_up: bool = False  # the stop gave the request up (cancelled its worker)


async def send_one(
    client: EloquaClient,
    payload: dict[str, Any],
    policy: RetryPolicy,
    limit: AdaptiveLimit | None = None,
    progress: _Progress | None = None,
) -> Outcome:
    """Create one activity, retrying what is safe to retry. Raises Unauthorized on 401."""
    progress = progress or _Progress()
    limit = limit or AdaptiveLimit(1)

    async def attempt() -> ApiResponse:
        async with limit:
            progress.attempts += 1
            progress.on_the_wire = True
            response = await client.create_activity(payload)
            progress.on_the_wire = False
            limit.observe(response.status)
            if response.redirect:
                progress.redirect = describe_error(response)
            return response

    try:
        response: ApiResponse = await first_then_policy(attempt, policy)
    except NOT_SENT_ERRORS as exc:
        return Outcome(
            Status.FAILED, attempts=progress.attempts, error=f"could not connect to Eloqua: {exc}"
        )
    except UNCERTAIN_ERRORS as exc:
        reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
        return _uncertain(progress.attempts, f"no answer from Eloqua ({reason})")
    return _judge(response, progress.attempts)


def _judge(response: ApiResponse, attempts: int) -> Outcome:
    status = response.status
    if status == 401:
        raise Unauthorized(describe_error(response))
    activity_id = created_id(response.body)
    if status in (200, 201) and activity_id is not None:
        return Outcome(Status.CREATED, activity_id, status, attempts)
    if status in RETRY_STATUSES:
        return Outcome(
            Status.FAILED,
            http_status=status,
            attempts=attempts,
            error=f"{describe_error(response)} (gave up after {attempts} attempts; safe to resend)",
        )
    if status in NOT_PROCESSED_REDIRECTS:
        return Outcome(
            Status.FAILED,
            http_status=status,
            attempts=attempts,
            error=f"not created: {describe_error(response)}; a {status} asks for the same request"
            " elsewhere, so a rerun may send it once the address is right",
        )
    if status in GATEWAY_STATUSES or is_redirect(status):
        # A gateway may have passed it on; a web server may redirect after processing a POST.
        return _uncertain(attempts, describe_error(response), status)
    if 200 <= status < 300:
        reason = f"Eloqua answered {status} without a usable activity id"
        if response.too_large:
            reason += f" ({response.body})"
        return _uncertain(attempts, reason, status)
    error = describe_error(response)
    return Outcome(Status.REJECTED, http_status=status, attempts=attempts, error=error)


def _uncertain(attempts: int, reason: str, http_status: int | None = None) -> Outcome:
    return Outcome(
        Status.UNCERTAIN,
        http_status=http_status,
        attempts=attempts,
        error=f"sent, but {reason}: it may or may not have been created, so it was not resent."
        " Check in Eloqua, then rerun with --retry-uncertain to send it again if it is missing",
    )


@dataclass
class Job(Generic[T]):
    """One activity to send. ``key`` is the caller's handle (the row)."""

    key: T
    payload: dict[str, Any]
    fingerprint: bytes | Identity = b""  # what the ledger knows it by (identity.identify)
    source: str = ""


@dataclass
class SendOptions:
    concurrency: int = 8
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    retry_uncertain: bool = False
    allow_duplicates: bool = False
    #: Abort after this many rows in a row could not be created (None: 2 x concurrency, >= 10).
    breaker_threshold: int | None = None
    #: After a stop, how long in-flight requests may take before they are given up (uncertain).
    stop_grace: float = 30.0
    #: Prepare (look up) and consult the ledger, but send nothing: rows come back "valid".
    dry_run: bool = False


@dataclass
class SendStats:
    stopped_reason: str = ""
    interrupted: bool = False
    throttled: int = 0
    lowest_concurrency: int = 0


@dataclass(slots=True)
class _Deferred(Generic[T]):
    """A row waiting out its backoff in the retry queue; its ledger claim stays pending."""

    job: Job[T]
    attempts: int
    answer: ApiResponse | None  # its last attempt's answer (None: refused connection)


#: A None in the stream of jobs, as the workers see it.
_NO_JOB = object()
#: Rows consulted in one ledger query in a dry run without lookups.
DRY_RUN_BATCH = 2000


class Sender(Generic[T]):
    """Runs ``concurrency`` workers over a lazy stream of jobs.

    ``on_outcome`` is called exactly once per job, as each completes. Each worker takes a row
    that is due for a retry, else the next row of the stream. A row answered 429/500/503 (or
    refused) is deferred into the retry queue and the worker moves on; the adaptive limit
    alone decides how many requests are in flight. After a stop (401, circuit breaker,
    Ctrl-C) nothing more is sent: the remaining jobs are still drained from the stream and the
    deferred rows from the queue, all reported ``failed`` so every row is accounted for. After
    an abort (a second Ctrl-C) the requests in flight are given up at once as well.
    """

    def __init__(
        self,
        client: EloquaClient,
        on_outcome: Callable[[T, Outcome], None],
        options: SendOptions | None = None,
        ledger: Ledger | None = None,
        prepare: Callable[[Job[T]], Coroutine[Any, Any, Outcome | None]] | None = None,
    ) -> None:
        self.client = client
        self.on_outcome = on_outcome
        self.prepare = prepare
        self.options = options or SendOptions()
        self.ledger = ledger
        self.limit = AdaptiveLimit(self.options.concurrency)
        if ledger is not None:
            limit = self.limit
            ledger.watch(lambda: limit.in_use)
        self.stats = SendStats(lowest_concurrency=self.options.concurrency)
        self._stopping = asyncio.Event()
        #: Stopped at once (abort): the caller may report its remaining rows unsent without
        #: handing them over one by one.
        self.aborted = False
        #: Workers with a request out (their own task runs it), and how far each got.
        self._in_flight: dict[asyncio.Task[Any], _Progress] = {}
        self._preparing: set[asyncio.Task[Outcome | None]] = set()
        self._failures_in_a_row = 0
        threshold = self.options.breaker_threshold
        self._breaker = threshold or max(10, 2 * self.options.concurrency)
        self._jobs: Iterator[Job[T] | None] | None = None
        self._unsent = 0  # rows reported unsent after a stop
        self._feed_failure: ImporterError | None = None
        self._busy = 0  # workers with a row in hand
        self._failing_attempts = 0  # attempts in a row answered 429/500/503 or refused
        self._work = asyncio.Event()  # a row became due, or one finished: idle workers look
        self._retries: RetryQueue[_Deferred[T]] = RetryQueue(
            self.options.policy.pause, self._work.set
        )

    def stop(self, reason: str, *, interrupted: bool = False) -> None:
        """Send nothing more; give in-flight requests ``stop_grace`` seconds to finish."""
        if self._stopping.is_set():
            return
        self.stats.stopped_reason = reason
        self.stats.interrupted = interrupted
        self._stopping.set()
        for task in self._preparing:  # lookups only read: nothing to wait for
            task.cancel()
        # Rows waiting out a backoff are reported now (failed: their last attempt was not
        # created), not when their wait ends.
        self._retries.release_all()
        if interrupted:
            asyncio.get_running_loop().call_later(self.options.stop_grace, self._give_up_in_flight)

    def abort(self, reason: str) -> None:
        """Stop at once (a second Ctrl-C): send nothing more and give up the requests in flight
        now, without their grace period. A given-up request that went out is ``uncertain`` (its
        ledger record stays pending); the rest of the jobs are reported ``failed``, unsent.
        """
        self.stop(reason, interrupted=True)
        self.stats.stopped_reason = reason
        self.stats.interrupted = True
        self.aborted = True
        self._give_up_in_flight()

    async def run(self, jobs: Iterable[Job[T] | None]) -> SendStats:
        """Send every job. A ``None`` in the stream is no job: the producer read rows that
        send nothing (invalid, duplicate) and lets the event loop run (signals, answers)."""
        if self.options.dry_run and self.prepare is None:
            await self._check_in_batches(jobs)
        else:
            await self._run_workers(iter(jobs))
        self.stats.throttled = self.limit.throttled
        self.stats.lowest_concurrency = self.limit.lowest
        return self.stats

    async def _run_workers(self, jobs: Iterator[Job[T] | None]) -> None:
        self._jobs = jobs
        workers = [asyncio.create_task(self._worker()) for _ in range(self.options.concurrency)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # Cancelled (a second Ctrl-C) or the file failed: stop the workers. Pending ledger
            # records make their rows "uncertain".
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            self._retries.close()
        if self._feed_failure is not None:
            raise self._feed_failure

    async def _worker(self) -> None:
        while True:
            deferred = self._retries.pop_ready()
            if deferred is not None:
                await self._run_row(deferred.job, deferred)
                continue
            job = self._next_job() if self._may_start_a_row() else None
            if job is _NO_JOB:
                await asyncio.sleep(0)  # rows that send nothing: let the loop run
                continue
            if isinstance(job, Job):
                await self._run_row(job, None)
                continue
            if self._busy == 0 and not self._retries and self._jobs is None:
                self._work.set()  # nothing left anywhere: the idle workers end too
                return
            # Rows are in hand elsewhere: one may yet be deferred, and come due.
            self._work.clear()
            await self._work.wait()

    def _may_start_a_row(self) -> bool:
        """While every recent attempt failed (as many in a row as the circuit breaker's
        threshold: Eloqua down, not throttling now and then), new rows wait for the deferred
        ones: a failing Eloqua gets those rows' retries, and the circuit breaker counts them."""
        if self._failing_attempts < self._breaker:
            return True
        return self._busy == 0 and not self._retries  # nothing else in hand: probe with one

    def _next_job(self) -> Job[T] | object | None:
        """The stream's next row, read by whichever worker is free (no queue in between);
        ``_NO_JOB`` for a None in the stream."""
        if self._jobs is None:
            return None
        try:
            job = next(self._jobs)
            return _NO_JOB if job is None else job
        except StopIteration:
            pass
        except ImporterError as exc:
            # The rows cannot be read or reported any more (e.g. a full disk): send nothing
            # more, but let the requests in flight finish so their answers reach the ledger.
            self.stop(str(exc))
            self._feed_failure = exc
        self._jobs = None
        return None

    async def _run_row(self, job: Job[T], deferred: _Deferred[T] | None) -> None:
        self._busy += 1
        try:
            if self._stopping.is_set():
                outcome: Outcome | None = self._given_back(deferred) if deferred else None
                self._report(job, outcome or self._unsent_outcome())
                self._unsent += 1
                if self._unsent % UNSENT_BATCH == 0:
                    # Let the loop run: a second Ctrl-C (abort) and the answers of the
                    # requests in flight must not wait until the whole file is reported.
                    await asyncio.sleep(0)
                return
            try:
                outcome = await self._process(job, deferred)
            except Exception as exc:  # a bug or an unforeseen error: stop, never hang or lose
                self.stop(f"unexpected error: {type(exc).__name__}: {exc}")
                outcome = _uncertain(0, f"the run stopped on an unexpected error ({exc})")
            if outcome is not None:  # None: deferred, reported when its last attempt ends
                self._report(job, outcome)
        finally:
            self._busy -= 1
            self._work.set()  # idle workers may end, or start a row (cheap when none wait)

    async def _check_in_batches(self, jobs: Iterable[Job[T] | None]) -> None:
        """A dry run without lookups: the ledger is consulted a batch of rows at a time."""
        batch: list[Job[T]] = []
        try:
            for job in jobs:
                if job is None:  # many rows that send nothing: report, let the loop run
                    self._check_batch(batch)
                    batch = []
                    await asyncio.sleep(0)
                    continue
                batch.append(job)
                if len(batch) == DRY_RUN_BATCH:
                    self._check_batch(batch)
                    batch = []
                    await asyncio.sleep(0)  # let a Ctrl-C in
        except ImporterError as exc:  # the rows cannot be read further: those read are reported
            self.stop(str(exc))
            self._check_batch(batch)
            raise
        self._check_batch(batch)

    def _check_batch(self, batch: list[Job[T]]) -> None:
        if self._stopping.is_set() or not batch:
            for job in batch:
                self._not_sent(job)
            return
        claims: list[Claim | None] = [None] * len(batch)
        if self.ledger is not None:
            claims = list(self.ledger.lookup_many([job.fingerprint for job in batch]))
        for job, claim in zip(batch, claims, strict=True):
            if claim is not None and claim.decision != "send":
                self._report(job, _ledger_outcome(claim))
            else:
                self._report(job, Outcome(Status.VALID))

    async def _process(self, job: Job[T], deferred: _Deferred[T] | None) -> Outcome | None:
        if deferred is None:
            refused = await self._before_sending(job)
            if refused is not None:
                return refused
        outcome = await self._send(job, deferred.attempts if deferred else 0)
        if outcome is None:
            return None
        self._watch_failures(outcome)
        if self.ledger is not None:
            if outcome.status == Status.CREATED:
                self.ledger.created(job.fingerprint, outcome.activity_id)
            elif outcome.status in (Status.REJECTED, Status.FAILED):
                self.ledger.not_created(job.fingerprint)
        return outcome

    async def _before_sending(self, job: Job[T]) -> Outcome | None:
        """Prepare the row and claim it in the ledger; an outcome if it is not to be sent."""
        if self.prepare is not None:
            # e.g. contact lookups: completes the payload, or says why the row cannot be sent.
            refused = await self._prepare(job)
            if refused is not None:
                self._watch_failures(refused)
                return refused
        if self.options.dry_run:
            if self.ledger is not None:
                claim = self.ledger.lookup(job.fingerprint)
                if claim.decision != "send":
                    return _ledger_outcome(claim)
            return Outcome(Status.VALID)
        if self.ledger is not None:
            try:
                claim = await self.ledger.claim(
                    job.fingerprint,
                    job.source,
                    force=self.options.allow_duplicates,
                    retry_uncertain=self.options.retry_uncertain,
                )
            except LedgerError as exc:
                self.stop(str(exc))
                return self._unsent_outcome()
            if claim.decision == "in_progress":
                claim = await self._wait_for_other_run(job, claim)
            if claim.decision != "send":
                return _ledger_outcome(claim)
            if self._stopping.is_set():  # stopped while the claim was being committed
                self.ledger.not_created(job.fingerprint)
                return self._unsent_outcome()
        return None

    def _given_back(self, deferred: _Deferred[T]) -> Outcome:
        """A deferred row after a stop: its attempts were all answered 429/500/503 or refused,
        so it was certainly not created; its claim goes, and it is ``failed``."""
        if self.ledger is not None:
            self.ledger.not_created(deferred.job.fingerprint)
        answer = deferred.answer
        return Outcome(
            Status.FAILED,
            http_status=answer.status if answer is not None else None,
            attempts=deferred.attempts,
            error=self._unsent_text(),
        )

    async def _prepare(self, job: Job[T]) -> Outcome | None:
        """The prepare step as a task the stop can give up on (lookups only read)."""
        assert self.prepare is not None
        task = asyncio.create_task(self.prepare(job))
        self._preparing.add(task)
        try:
            await asyncio.wait({task})
        finally:
            self._preparing.discard(task)
        if task.cancelled():
            return self._unsent_outcome()
        try:
            return task.result()
        except Unauthorized:
            self.stop(self._unauthorized())
            return Outcome(Status.FAILED, http_status=401, error=self._unsent_text())

    async def _wait_for_other_run(self, job: Job[T], claim: Claim) -> Claim:
        """Another live run is sending this activity: wait for its answer (bounded)."""
        assert self.ledger is not None
        for _ in range(OTHER_RUN_CHECKS):
            if self._stopping.is_set():
                break
            await self.options.policy.pause(OTHER_RUN_INTERVAL)
            claim = await self.ledger.claim(
                job.fingerprint,
                job.source,
                force=self.options.allow_duplicates,
                retry_uncertain=self.options.retry_uncertain,
            )
            if claim.decision != "in_progress":
                return claim
        return claim

    async def _send(self, job: Job[T], attempts: int) -> Outcome | None:
        """One attempt; None when the row was deferred into the retry queue.

        The attempt runs in the worker's own task (a task per attempt costs as much as a
        small request): while it is out, the worker is listed in ``_in_flight``, and giving
        the request up cancels the worker there and then; the cancellation is taken back here
        (``uncancel``), so the worker goes on to report the row and the rest.
        """
        progress = _Progress(attempts=attempts)
        worker = asyncio.current_task()
        assert worker is not None
        self._in_flight[worker] = progress
        try:
            response = await self._attempt(job.payload, progress)
        except asyncio.CancelledError:
            if not self._taken_back(worker, progress):
                raise  # this worker is being cancelled, not only the request given up
            if progress.on_the_wire:
                return _uncertain(progress.attempts, "the run stopped before Eloqua answered")
            return self._unsent_outcome(progress.attempts)
        except NOT_SENT_ERRORS as exc:
            self._taken_back(worker, progress)
            self._failing_attempts += 1
            if self._defer(job, progress.attempts, None):
                return None
            return Outcome(
                Status.FAILED,
                attempts=progress.attempts,
                error=f"could not connect to Eloqua: {exc}",
            )
        except UNCERTAIN_ERRORS as exc:
            self._taken_back(worker, progress)
            self._failing_attempts += 1
            reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
            return _uncertain(progress.attempts, f"no answer from Eloqua ({reason})")
        except Unauthorized:
            self._taken_back(worker, progress)
            self._failing_attempts += 1
            return self._stop_unauthorized(progress.attempts)
        except BaseException:
            self._taken_back(worker, progress)
            raise
        self._taken_back(worker, progress)
        if progress.redirect:
            # Every row would be redirected too: stop now, not after a breaker's worth of rows.
            self.stop(f"a create was redirected: {progress.redirect}")
        if response.status in RETRY_STATUSES:
            self._failing_attempts += 1
            if self._defer(job, progress.attempts, response):
                return None
        else:
            self._failing_attempts = 0
        try:
            return _judge(response, progress.attempts)
        except Unauthorized:
            return self._stop_unauthorized(progress.attempts)

    def _stop_unauthorized(self, attempts: int) -> Outcome:
        """A 401 that renewing the token (if it could) did not cure: the run stops."""
        self.stop(self._unauthorized())
        return Outcome(Status.FAILED, http_status=401, attempts=attempts, error=self._unsent_text())

    def _taken_back(self, worker: asyncio.Task[Any], progress: _Progress) -> bool:
        """The attempt is over: the worker leaves ``_in_flight``. True when the request was
        given up and that was the only cancellation of the worker (taken back now)."""
        if not progress.given_up:
            self._in_flight.pop(worker, None)
            return False
        return worker.uncancel() == 0

    async def _attempt(self, payload: dict[str, Any], progress: _Progress) -> ApiResponse:
        limit = self.limit
        if not limit.try_acquire():
            await limit.acquire()
        try:
            sent_in = limit.epoch
            progress.attempts += 1
            progress.on_the_wire = True
            response = await self.client.create_activity(payload)
            progress.on_the_wire = False
            limit.observe(response.status, sent_in)
            if response.redirect:
                progress.redirect = describe_error(response)
            return response
        finally:
            limit.release()

    def _defer(self, job: Job[T], attempts: int, answer: ApiResponse | None) -> bool:
        """Into the retry queue, if the policy allows another attempt and the run goes on."""
        policy = self.options.policy
        if attempts >= policy.max_attempts or self._stopping.is_set():
            return False
        delay = policy.delay(attempts, answer)
        self._retries.defer(_Deferred(job, attempts, answer), delay)
        return True

    def _unauthorized(self) -> str:
        """The stop reason after a 401 that renewing the token (if it could) did not cure."""
        advice = getattr(self.client, "why_unauthorized", lambda: "")()
        reason = "Eloqua answered 401: it no longer accepts the credentials"
        return f"{reason}; {advice}" if advice else reason

    def _watch_failures(self, outcome: Outcome) -> None:
        """The circuit breaker: many rows in a row that could not be created -> stop."""
        if outcome.status is Status.CREATED:  # the usual case, first
            self._failures_in_a_row = 0
            return
        systemic = outcome.status == Status.REJECTED and outcome.http_status in SYSTEMIC_REJECTIONS
        failing = outcome.status in (Status.FAILED, Status.UNCERTAIN) or systemic
        if failing and not self._stopping.is_set():
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= self._breaker:
                self.stop(
                    f"Eloqua kept failing: {self._failures_in_a_row} rows in a row could not be"
                    f" created (last: {outcome.error})"
                )
        elif outcome.status in (Status.CREATED, Status.REJECTED):
            self._failures_in_a_row = 0

    def _give_up_in_flight(self) -> None:
        # Each worker is cancelled once: a second give-up (the grace period's end after an
        # abort) must not cancel it again once it has taken the first cancellation back.
        in_flight, self._in_flight = self._in_flight, {}
        for worker, progress in in_flight.items():
            progress.given_up = True
            worker.cancel()

    def _report(self, job: Job[T], outcome: Outcome) -> None:
        try:
            self.on_outcome(job.key, outcome)
        except ImporterError as exc:  # e.g. the results file hit a full disk: stop sending
            self.stop(str(exc))

    def _not_sent(self, job: Job[T]) -> None:
        self._report(job, self._unsent_outcome())

    def _unsent_outcome(self, attempts: int = 0) -> Outcome:
        return Outcome(Status.FAILED, attempts=attempts, error=self._unsent_text())

    def unsent_text(self) -> str:
        """The ``error`` of a row not sent because the run stopped."""
        return self._unsent_text()

    def _unsent_text(self) -> str:
        reason = self.stats.stopped_reason
        return f"not sent: the run stopped ({reason}); rerun the same command to send it"


def _ledger_outcome(claim: Claim) -> Outcome:
    decision, activity_id, source = claim.decision, claim.activity_id, claim.source
    where = f" ({source})" if source else ""
    if decision == "already_created":
        differs = ""
        if claim.differs:
            verb = "differs" if len(claim.differs) == 1 else "differ"
            differs = (
                f"; its {', '.join(claim.differs)} {verb} from what was created, which Eloqua"
                " cannot update"
            )
        return Outcome(
            Status.ALREADY_CREATED,
            activity_id=activity_id,
            error=f"created by an earlier run{where}; not sent again{differs}",
        )
    if decision == "duplicate":
        return Outcome(
            Status.DUPLICATE, error=f"same activity as {source or 'an earlier row'}; not sent"
        )
    if decision == "in_progress":
        return Outcome(
            Status.FAILED,
            error=f"another run kept sending the same activity{where} and had no answer yet;"
            " not sent, so as not to create it twice: rerun later to confirm it",
        )
    return Outcome(
        Status.UNCERTAIN,
        error=f"an earlier run{where} sent it and got no answer: it may already exist in"
        " Eloqua. Check there, then rerun with --retry-uncertain to send it again if missing",
    )
