"""Helpers for the narrow tests that answer the client from aioresponses instead of a server.

aioresponses replaces aiohttp's request method: nothing leaves the process, and a URL that no
test mocked fails like a refused connection. These tests cover one answer at a time (each
status code, Retry-After, dropped connections, 3xx, malformed bodies); the behaviour over real
sockets stays covered by the tests against the loopback servers.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from importer.config import Credentials
from importer.eloqua import ACTIVITY_PATH, EloquaClient, open_session

BASE = "https://secure.p03.eloqua.test"  # .test: reserved, never resolves
ACTIVITY_URL = BASE + ACTIVITY_PATH
ELSEWHERE = "https://elsewhere.test/api/REST/2.0/data/activity"
CREDENTIALS = Credentials("Acme", "api.user", "s3cret")
PAYLOAD: dict[str, Any] = {
    "name": "Expo",
    "assetName": "Expo",
    "assetType": "Tradeshow",
    "activityType": "Visited Booth",
    "activityDate": "1773493500",
    "contactId": 2001,
}
CONTACTS_URL = re.compile(re.escape(BASE + "/api/REST/1.0/data/contacts") + r"\?.*")
CAMPAIGNS_URL = re.compile(re.escape(BASE + "/api/REST/2.0/assets/campaigns") + r"\?.*")


@asynccontextmanager
async def mocked_client() -> AsyncIterator[tuple[EloquaClient, aioresponses]]:
    """A client on a real session whose answers come from the returned aioresponses."""
    with aioresponses() as mocked:
        async with open_session(4) as session:
            yield EloquaClient(session, BASE, CREDENTIALS), mocked


def refused() -> aiohttp.ClientConnectorError:
    """The error aiohttp raises when the connection is refused: the request never left."""
    known = ["secure.p03.eloqua.test", 443, True, True]
    key = ConnectionKey(*known, *[None] * (len(ConnectionKey._fields) - len(known)))
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def calls(mocked: aioresponses, method: str, url: str) -> int:
    """How many requests reached ``method url`` (a URL without a query string)."""
    return sum(
        len(requests)
        for (seen_method, seen_url), requests in mocked.requests.items()
        if seen_method == method and seen_url.with_query(None) == URL(url)
    )
