"""Lookups: emails -> contact ids, campaign names -> campaign ids, each asked of Eloqua once.

Attendee lists carry email addresses; Eloqua needs a contactId. Each distinct email (trimmed,
compared case-insensitively) is searched once per run, however many rows carry it; concurrent
rows with the same email wait for the same answer. Searches use the sender's retry policy.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from importer.eloqua import CAMPAIGNS_PATH, ApiResponse, EloquaClient, created_id, describe_error
from importer.errors import Unauthorized
from importer.fields import Lookup
from importer.retry import RetryPolicy
from importer.status import Status

#: The stand-in id of a contact a dry run would create (never sent anywhere).
DRY_RUN_NEW_CONTACT = 0


class LookupFailed(Exception):
    """The row cannot be sent. ``status`` is ``rejected`` (Eloqua's data says no) or ``failed``
    (Eloqua could not answer; a rerun may succeed)."""

    def __init__(self, status: Status, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.http_status = http_status


@dataclass
class LookupStats:
    contact_searches: int = 0
    campaign_searches: int = 0
    contacts_created: int = 0
    contacts_to_create: int = 0  # dry run: create_missing would make these


class Resolver:
    """Replaces the :class:`Lookup` values of payloads with the ids Eloqua has."""

    def __init__(
        self,
        client: EloquaClient,
        policy: RetryPolicy,
        concurrency: int = 4,
        *,
        dry_run: bool = False,
    ) -> None:
        self.client = client
        self.policy = policy
        self.dry_run = dry_run  # read only: contacts that create_missing would make are not made
        self.stats = LookupStats()
        self._answers: dict[tuple[str, str], asyncio.Future[int]] = {}
        self._limit = asyncio.Semaphore(concurrency)
        self._campaign_names: list[str] | None = None  # read once, on the first miss
        self._campaigns_read = asyncio.Lock()

    async def resolve(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``payload`` with ids in place of lookups. Raises LookupFailed."""
        resolved = dict(payload)
        for name, value in payload.items():
            if isinstance(value, Lookup):
                resolved[name] = await self.id_of(value)
        return resolved

    async def id_of(self, lookup: Lookup) -> int:
        """The id for one lookup; asks Eloqua only the first time a key is seen."""
        answer = self._answers.get(lookup.cache_key)
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
            self._answers[lookup.cache_key] = answer
            try:
                answer.set_result(await self._ask(lookup))
            except (LookupFailed, Unauthorized) as exc:
                answer.set_exception(exc)
            except BaseException:
                # Cancelled (the run is stopping): let the next row with this key ask again.
                del self._answers[lookup.cache_key]
                answer.cancel()
                raise
        return await asyncio.shield(answer)

    async def _ask(self, lookup: Lookup) -> int:
        if lookup.kind == "campaign":
            self.stats.campaign_searches += 1
            found = await self._get(lambda: self.client.search_campaigns(lookup.key), lookup)
            matches = _matching(found, "name", lookup.key)
            if not matches:
                raise LookupFailed(
                    Status.REJECTED,
                    f"no Eloqua campaign named {lookup.key!r}"
                    f"{await self._nearest_campaigns(lookup.key)}; check the name in Eloqua"
                    " (Campaigns)",
                )
            return _one(lookup, matches, "campaign named")
        self.stats.contact_searches += 1
        found = await self._get(lambda: self.client.search_contacts(lookup.key), lookup)
        matches = _matching(found, "emailAddress", lookup.key)
        if not matches and lookup.create_missing:
            if self.dry_run:
                self.stats.contacts_to_create += 1
                return DRY_RUN_NEW_CONTACT
            return await self._create_contact(lookup)
        return _one(lookup, matches, "contact with email")

    async def _nearest_campaigns(self, name: str) -> str:
        """ " (did you mean 'A' or 'B'?)" from Eloqua's campaign names, or "" if none is close.

        The names are read once per run, on the first miss; if Eloqua will not list them the
        message simply goes without.
        """
        async with self._campaigns_read:
            if self._campaign_names is None:
                self._campaign_names = await self._read_campaign_names()
        folded = {n.casefold(): n for n in self._campaign_names}
        close = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
        if not close:
            return ""
        return f" (did you mean {' or '.join(repr(folded[c]) for c in close)}?)"

    async def _read_campaign_names(self) -> list[str]:
        async def attempt() -> ApiResponse:
            return await self.client.list_all(CAMPAIGNS_PATH)

        try:
            async with self._limit:
                answer: ApiResponse = await self.policy.retrying(idempotent=True)(attempt)
        except (aiohttp.ClientError, TimeoutError):
            return []
        if answer.status != 200 or not isinstance(answer.body, dict):
            return []
        elements = answer.body.get("elements") or []
        return [str(e["name"]) for e in elements if isinstance(e, dict) and e.get("name")]

    async def _create_contact(self, lookup: Lookup) -> int:
        fields = {"emailAddress": lookup.key, **dict(lookup.names)}
        answer = await self._call(lambda: self.client.create_contact(fields), lookup)
        contact_id = created_id(answer.body)
        if answer.status in (200, 201) and contact_id is not None and contact_id.isdigit():
            self.stats.contacts_created += 1
            return int(contact_id)
        if answer.status == 409:  # created meanwhile (or by a retried request): find it
            found = await self._get(lambda: self.client.search_contacts(lookup.key), lookup)
            return _one(lookup, _matching(found, "emailAddress", lookup.key), "contact with email")
        if 200 <= answer.status < 300:
            # It may exist now: a rerun's search finds it (contacts, unlike activities, can be
            # searched), so the row is safe to send again.
            raise LookupFailed(
                Status.FAILED,
                f"Eloqua answered {answer.status} to creating the contact {lookup.key!r} without"
                " a usable id; rerun the same command to look it up again",
                answer.status,
            )
        raise LookupFailed(
            Status.REJECTED if 400 <= answer.status < 500 else Status.FAILED,
            f"could not create the contact {lookup.key!r}: {describe_error(answer)}",
            answer.status,
        )

    async def _get(
        self, request: Callable[[], Awaitable[ApiResponse]], lookup: Lookup
    ) -> list[dict[str, Any]]:
        answer = await self._call(request, lookup)
        if answer.status == 200 and isinstance(answer.body, dict):
            return [e for e in answer.body.get("elements") or [] if isinstance(e, dict)]
        raise LookupFailed(
            Status.REJECTED
            if 400 <= answer.status < 500 and answer.status != 429
            else Status.FAILED,
            f"could not look up the {lookup.kind} {lookup.key!r}: {describe_error(answer)}",
            answer.status,
        )

    async def _call(
        self, request: Callable[[], Awaitable[ApiResponse]], lookup: Lookup
    ) -> ApiResponse:
        async def attempt() -> ApiResponse:  # tenacity awaits only coroutine functions
            return await request()

        async with self._limit:
            try:
                answer: ApiResponse = await self.policy.retrying(idempotent=True)(attempt)
            except (aiohttp.ClientError, TimeoutError) as exc:  # after every retry
                raise LookupFailed(
                    Status.FAILED,
                    f"could not look up the {lookup.kind} {lookup.key!r}: Eloqua did not answer"
                    f" ({type(exc).__name__}); rerun the same command to try again",
                ) from None
        if answer.status == 401:
            raise Unauthorized(describe_error(answer))
        return answer


def _matching(elements: list[dict[str, Any]], field: str, key: str) -> list[dict[str, Any]]:
    # Eloqua's search is case-insensitive and treats * as a wildcard: keep exact matches only
    # (an element that does not show the field is taken on the search's word).
    wanted = key.casefold()
    return [e for e in elements if field not in e or str(e[field]).strip().casefold() == wanted]


def _one(lookup: Lookup, matches: list[dict[str, Any]], what: str) -> int:
    ids = sorted(int(e["id"]) for e in matches if str(e.get("id", "")).isdigit())
    if not ids:
        fix = (
            "check the address, create the contact in Eloqua, or set create_missing: true"
            if lookup.kind == "contact"
            else "check the name in Eloqua (Campaigns)"
        )
        raise LookupFailed(Status.REJECTED, f"no Eloqua {what} {lookup.key!r}; {fix}")
    if len(ids) > 1 and lookup.on_multiple != "lowest_id":
        listed = ", ".join(map(str, ids[:10]))
        hint = " (or set on_multiple: lowest_id in the mapping)" if lookup.kind == "contact" else ""
        raise LookupFailed(
            Status.REJECTED,
            f"{len(ids)} Eloqua {what.split()[0]}s match {lookup.key!r} (ids {listed}); merge"
            f" or rename them in Eloqua{hint}",
        )
    return ids[0]
