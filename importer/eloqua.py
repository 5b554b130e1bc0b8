"""The Eloqua REST client: auth header, /id discovery, creating activities, reading answers.

One request per call, no retries here: the retry policy lives in ``sender.py``. Redirects are
never followed: a followed 302 turns a create into a GET whose answer looks like success, and a
307 sends the payload to another server; a 3xx comes back as the answer, with its ``Location``.
Every request, answer included, is bounded in time (``Timeouts``), however slowly bytes arrive.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from importer._version import __version__
from importer.config import Credentials, check_url
from importer.errors import AuthError, ConfigError

ACTIVITY_PATH = "/api/REST/2.0/data/activity"
ASSET_TYPES_PATH = "/api/REST/2.0/assets/external/types"
CONTACTS_PATH = "/api/REST/1.0/data/contacts"
CONTACT_PATH = "/api/REST/1.0/data/contact"
CAMPAIGNS_PATH = "/api/REST/2.0/assets/campaigns"
PAGE_SIZE = 1000
USER_AGENT = f"eloqua-import/{__version__} (+https://github.com/eloqua-import)"

_REQUIREMENT_WORDS = {
    "IdRequirement": "is not the id of an existing record",
    "NotNullRequirement": "is required",
    "NotEmptyRequirement": "is required",
    "ValidValueRequirement": "is not an allowed value",
    "DateRequirement": "is not a valid date",
}


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any  # parsed JSON when the answer was JSON, else the text
    retry_after: float | None = None
    location: str = ""  # where a 3xx answer points (never followed)

    @property
    def redirect(self) -> bool:
        return is_redirect(self.status)


def is_redirect(status: int | None) -> bool:
    return status is not None and 300 <= status < 400


def created_id(body: Any) -> str | None:
    """The id in an answer to a create, or None when the answer has no usable id.

    Eloqua answers a string of digits; an integer is taken too. A missing, null, empty or
    structured id says nothing about which record was made, so it is not an id.
    """
    if not isinstance(body, dict):
        return None
    value = body.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and value.isprintable() and len(value) <= 100:
        return value.strip()
    return None


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``read`` (``--timeout``) bounds one whole request, from its start to the last
    byte of the answer: a server trickling bytes cannot hold it longer. ``connect`` bounds
    getting a connection (at most half of ``read``)."""

    connect: float = 15.0
    read: float = 120.0


def open_session(concurrency: int, timeouts: Timeouts | None = None) -> aiohttp.ClientSession:
    """One keep-alive session for the whole run, sized to the concurrency."""
    timeouts = timeouts or Timeouts()
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1), ttl_dns_cache=300)
    # ``total`` covers waiting for a connection, sending and reading the whole body. Getting a
    # connection has a shorter limit of its own, so a request that never got one always ends
    # as ConnectionTimeoutError (nothing sent: safe to retry), never as a plain TimeoutError.
    connect = min(timeouts.connect, timeouts.read / 2)
    timeout = aiohttp.ClientTimeout(total=timeouts.read, connect=connect, sock_connect=connect)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"User-Agent": USER_AGENT}
    )


class EloquaClient:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, credentials: Credentials
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": credentials.authorization(),
            "Accept": "application/json",
        }
        self._post_headers = {**self._headers, "Content-Type": "application/json; charset=utf-8"}

    async def create_activity(self, payload: dict[str, Any]) -> ApiResponse:
        """POST one activity. Network errors propagate (the sender decides what they mean)."""
        return await self._post(ACTIVITY_PATH, payload)

    async def _post(self, path: str, body: dict[str, Any]) -> ApiResponse:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        async with self.session.post(
            self.base_url + path, data=data, headers=self._post_headers, allow_redirects=False
        ) as response:
            return await _read(response)

    async def get(self, path: str, params: dict[str, str] | None = None) -> ApiResponse:
        async with self.session.get(
            self.base_url + path, params=params, headers=self._headers, allow_redirects=False
        ) as response:
            return await _read(response)

    async def search_contacts(self, email: str) -> ApiResponse:
        """Contacts whose email address is ``email`` (Eloqua's search is case-insensitive).

        The value goes inside Eloqua's quotes as it is; the query string is URL-encoded, so
        ``+`` and ``%`` in addresses arrive intact.
        """
        params = {"search": f"emailAddress='{email}'", "depth": "minimal", "count": "100"}
        return await self.get(CONTACTS_PATH, params)

    async def search_campaigns(self, name: str) -> ApiResponse:
        params = {"search": f"name='{name}'", "depth": "minimal", "count": "100"}
        return await self.get(CAMPAIGNS_PATH, params)

    async def create_contact(self, fields: dict[str, str]) -> ApiResponse:
        return await self._post(CONTACT_PATH, fields)

    async def list_all(self, path: str) -> ApiResponse:
        """Every element of a paged list (asset types, ...), as one answer."""
        elements: list[Any] = []
        page = 1
        while True:
            answer = await self.get(path, {"page": str(page), "count": str(PAGE_SIZE)})
            if answer.status != 200 or not isinstance(answer.body, dict):
                return answer
            batch = answer.body.get("elements") or []
            elements.extend(batch)
            total = answer.body.get("total")
            if not batch or not isinstance(total, int) or len(elements) >= total:
                return ApiResponse(200, {"elements": elements, "total": len(elements)})
            page += 1


async def discover_site(
    session: aiohttp.ClientSession, login_url: str, credentials: Credentials
) -> tuple[str, str]:
    """Ask ``{login_url}/id`` which pod this company lives on: (base URL, company name).

    Eloqua answers 200 with the JSON string "Not authenticated." for bad credentials.
    """
    identity = await fetch_identity(session, login_url, credentials)
    try:
        base = identity["urls"]["base"]
    except (TypeError, KeyError):
        raise AuthError(
            f"{login_url}/id answered without a base URL; set ELOQUA_BASE_URL"
            " (e.g. https://secure.p03.eloqua.com) to skip discovery"
        ) from None
    site = identity.get("site")
    company = str(site.get("name") or "") if isinstance(site, dict) else ""
    base_url = check_url(str(base), f"the base URL from {login_url}/id")
    return base_url, company or credentials.company


async def fetch_identity(
    session: aiohttp.ClientSession, login_url: str, credentials: Credentials
) -> dict[str, Any]:
    """The /id answer: site, user and URLs. Raises AuthError for bad credentials, ConfigError
    when the login URL redirects (the credentials would follow the redirect)."""
    headers = {"Authorization": credentials.authorization(), "Accept": "application/json"}
    url = login_url.rstrip("/") + "/id"
    async with session.get(url, headers=headers, allow_redirects=False) as response:
        answer = await _read(response)
    if answer.redirect:
        raise ConfigError(
            f"{url} answered {answer.status}, a redirect to {shown_location(answer)}; redirects"
            " are never followed. Set ELOQUA_LOGIN_URL to the address that answers (by default"
            " https://login.eloqua.com), or set ELOQUA_BASE_URL. Nothing was sent."
        )
    if answer.status == 401 or _not_authenticated(answer.body):
        raise AuthError(
            f"Eloqua did not accept the credentials for {credentials.describe()} ({login_url}/id"
            " answered 'Not authenticated.'). Check ELOQUA_COMPANY, ELOQUA_USERNAME and"
            " ELOQUA_PASSWORD (or ELOQUA_ACCESS_TOKEN); nothing was sent."
        )
    if not isinstance(answer.body, dict):
        raise AuthError(f"{login_url}/id answered {answer.status} without the site's details")
    return answer.body


def describe_error(response: ApiResponse) -> str:
    """Eloqua's answer in words a marketing-ops user can act on."""
    if response.redirect:
        return (
            f"Eloqua answered {response.status}, a redirect to {shown_location(response)}, which"
            " is never followed (check ELOQUA_BASE_URL with 'eloqua-import check')"
        )
    body = response.body
    if isinstance(body, list) and body and all(isinstance(item, dict) for item in body):
        return "; ".join(_describe_validation(item) for item in body)
    if isinstance(body, dict):
        text = body.get("message") or body.get("Message") or json.dumps(body)[:300]
    elif body:
        text = str(body)[:300]
    else:
        text = ""
    generic = {
        401: "Eloqua did not accept the credentials",
        403: "this Eloqua user is not allowed to create external activities (check its"
        " security group's API permissions)",
        404: "Eloqua answered 404 Not Found",
        429: "Eloqua is throttling requests (429 Too Many Requests)",
        502: "a gateway in front of Eloqua answered 502 Bad Gateway",
        503: "Eloqua is unavailable or timed out (503)",
        504: "a gateway in front of Eloqua timed out (504 Gateway Timeout)",
    }.get(response.status, f"Eloqua answered {response.status}")
    return f"{generic}: {text}" if text else generic


def _describe_validation(item: dict[str, Any]) -> str:
    prop = item.get("property") or item.get("container", {}).get("type") or "the activity"
    requirement = (item.get("requirement") or {}).get("type") or item.get("type", "")
    words = _REQUIREMENT_WORDS.get(requirement, f"fails {requirement}")
    if "value" in item:
        return f"{prop} {item['value']!r} {words} ({requirement})"
    return f"{prop} {words} ({requirement})"


async def _read(response: aiohttp.ClientResponse) -> ApiResponse:
    text = await response.text(errors="replace")
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    location = response.headers.get("Location", "") if is_redirect(response.status) else ""
    return ApiResponse(
        response.status, body, _retry_after(response.headers.get("Retry-After")), location
    )


def shown_location(response: ApiResponse) -> str:
    """Where a redirect points, safe to print (bounded, quoted)."""
    if not response.location:
        return "(no Location given)"
    location = response.location
    return repr(location if len(location) <= 200 else location[:200] + "...")


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _not_authenticated(body: Any) -> bool:
    return isinstance(body, str) and body.strip().strip('"').lower() == "not authenticated."
