"""The Eloqua REST client: auth header, /id discovery, creating activities, reading answers.

One request per call, no retries here: the retry policy lives in ``sender.py``. The one
exception is a 401 with an OAuth2 token that could be renewed: the request is sent once more
with the new token (a 401 means Eloqua did not process it, so nothing can be created twice).
Redirects are never followed: a followed 302 turns a create into a GET whose answer looks like
success, and a 307 sends the payload to another server; a 3xx comes back as the answer, with
its ``Location``. Every request, answer included, is bounded in time (``Timeouts``), however
slowly bytes arrive.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import hdrs
from multidict import CIMultiDict
from yarl import URL

from importer._version import __version__
from importer.auth import Auth, AuthRefused, TokenUnavailable
from importer.config import Credentials, check_url
from importer.errors import AuthError, ConfigError

ACTIVITY_PATH = "/api/REST/2.0/data/activity"
ASSET_TYPES_PATH = "/api/REST/2.0/assets/external/types"
CONTACTS_PATH = "/api/REST/1.0/data/contacts"
CONTACT_PATH = "/api/REST/1.0/data/contact"
CAMPAIGNS_PATH = "/api/REST/2.0/assets/campaigns"
PAGE_SIZE = 1000
#: Eloqua's answers are a few KB (a page of 1,000 asset types well under 1 MB): a longer one is
#: a broken proxy or server, and is not read into memory.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
USER_AGENT = f"eloqua-import/{__version__} (+https://github.com/eloqua-import)"
#: ``json.dumps(body, ensure_ascii=False)`` without building an encoder per request: the same
#: bytes.
_JSON = json.JSONEncoder(ensure_ascii=False)

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
    too_large: bool = False  # the body was over MAX_ANSWER_BYTES and not read (``body`` says so)

    @property
    def redirect(self) -> bool:
        return is_redirect(self.status)


def is_redirect(status: int | None) -> bool:
    return status is not None and 300 <= status < 400


def created_id(body: Any) -> str | None:
    """The id in an answer to a create, or None when the answer has no usable id.

    Eloqua's ids are positive whole numbers, sent as a string of digits; an integer is taken
    too. Anything else (missing, null, "null", empty, negative, structured) says nothing about
    which record was made, so it is not an id.
    """
    if not isinstance(body, dict):
        return None
    value = body.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str) and len(value) <= 100:
        text = value.strip()
    else:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        return None
    return text


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


@dataclass(frozen=True)
class LocalAnswer(ApiResponse):
    """An answer made here, not by Eloqua: no token could be had, so nothing was sent."""


def as_auth(credentials: Credentials | Auth) -> Auth:
    return credentials if isinstance(credentials, Auth) else credentials.authenticator()


async def authorized(
    session: aiohttp.ClientSession,
    auth: Auth,
    send: Callable[[str], Awaitable[ApiResponse]],
) -> ApiResponse:
    """``send(authorization)``, and again after a 401 when ``auth`` renewed its token.

    Resending after a 401 is safe: Eloqua refused the request before processing it. A renewed
    token refused in turn is renewed once more, at most ``RENEWALS`` times in all: another
    process sharing the refresh chain may have worn it out meanwhile (a token is renewed by
    whoever finds it expired). When a renewal brings no new token, or the refresh itself is
    refused, the 401 stands and the run stops. A token that cannot be had answers as Eloqua
    would without sending anything: refused -> 401 (the run stops), token endpoint
    unreachable -> 503 (not created: the retry policy waits).
    """
    authorization = auth.header_now()  # the common case: no token to fetch, no await
    if authorization is None:
        try:
            authorization = await auth.header(session)
        except AuthRefused as exc:
            return LocalAnswer(401, str(exc))
        except TokenUnavailable as exc:
            return LocalAnswer(503, str(exc))
    answer = await send(authorization)
    for _ in range(RENEWALS):
        if answer.status != 401:
            return answer
        try:
            if not await auth.renew(session, authorization):
                return answer
            renewed = await auth.header(session)
        except AuthRefused:
            return answer  # auth.advice() now says why and what to do
        except TokenUnavailable as exc:
            return LocalAnswer(503, str(exc))
        if renewed == authorization:
            return answer  # no newer token to try: the credentials themselves are refused
        authorization = renewed
        answer = await send(authorization)
    return answer


#: Renewals one request may ask for after a 401 before the 401 stands.
RENEWALS = 3


class EloquaClient:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, credentials: Credentials | Auth
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.auth = as_auth(credentials)
        self._headers = {"Accept": "application/json"}
        self._post_headers = {**self._headers, "Content-Type": "application/json; charset=utf-8"}
        #: The headers of a request, built once per Authorization value (aiohttp takes a
        #: CIMultiDict as it is) and the URLs, parsed once.
        self._header_sets: dict[tuple[bool, str], CIMultiDict[str]] = {}
        self._urls: dict[str, URL] = {}

    def why_unauthorized(self) -> str:
        """What to do now that Eloqua answered 401 even to a renewed token."""
        return self.auth.advice()

    async def create_activity(self, payload: dict[str, Any]) -> ApiResponse:
        """POST one activity. Network errors propagate (the sender decides what they mean)."""
        return await self._post(ACTIVITY_PATH, payload)

    async def _post(self, path: str, body: dict[str, Any]) -> ApiResponse:
        return await self._request("POST", path, data=_JSON.encode(body).encode("utf-8"))

    async def get(self, path: str, params: dict[str, str] | None = None) -> ApiResponse:
        return await self._request("GET", path, params=params)

    async def _request(self, method: str, path: str, **options: Any) -> ApiResponse:
        """One request, authorized (renewed and sent again after a 401 when it can be)."""
        url = self._url(path)
        post = method == "POST"

        async def send(authorization: str) -> ApiResponse:
            headers = self._headers_with(post, authorization)
            async with self.session.request(
                method, url, headers=headers, allow_redirects=False, **options
            ) as response:
                return await _read(response)

        return await authorized(self.session, self.auth, send)

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

    def _headers_with(self, post: bool, authorization: str) -> CIMultiDict[str]:
        """The request's headers (never changed by aiohttp: it copies them)."""
        headers = self._header_sets.get((post, authorization))
        if headers is None:
            if len(self._header_sets) >= 4:  # a renewed token: the old ones are done with
                self._header_sets.clear()
            base = self._post_headers if post else self._headers
            headers = CIMultiDict({**base, "Authorization": authorization})
            self._header_sets[(post, authorization)] = headers
        return headers

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
    session: aiohttp.ClientSession, login_url: str, credentials: Credentials | Auth
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
    fallback = credentials.company if isinstance(credentials, Credentials) else ""
    return base_url, company or fallback


async def fetch_identity(
    session: aiohttp.ClientSession, login_url: str, credentials: Credentials | Auth
) -> dict[str, Any]:
    """The /id answer: site, user and URLs. Raises AuthError for bad credentials, ConfigError
    when the login URL redirects (the credentials would follow the redirect)."""
    auth = as_auth(credentials)
    url = login_url.rstrip("/") + "/id"

    async def send(authorization: str) -> ApiResponse:
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            answer = await _read(response)
        # /id says "Not authenticated." with a 200: the same as a 401 (renew, resend once).
        return ApiResponse(401, answer.body) if _not_authenticated(answer.body) else answer

    answer = await authorized(session, auth, send)
    if answer.redirect:
        raise ConfigError(
            f"{url} answered {answer.status}, a redirect to {shown_location(answer)}; redirects"
            " are never followed. Set ELOQUA_LOGIN_URL to the address that answers (by default"
            " https://login.eloqua.com), or set ELOQUA_BASE_URL. Nothing was sent."
        )
    if answer.status == 401:
        said = " answered 'Not authenticated.'" if _not_authenticated(answer.body) else ""
        raise AuthError(
            f"Eloqua did not accept the credentials for {auth.describe()} ({login_url}/id"
            f"{said}): {auth.advice()}; nothing was sent."
        )
    if isinstance(answer, LocalAnswer):
        raise AuthError(f"{answer.body}; try again later. Nothing was sent.")
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
    """The answer, its body read up to MAX_ANSWER_BYTES: beyond that it is not read at all."""
    status = response.status
    headers = response.headers
    location = headers.get("Location", "") if is_redirect(status) else ""
    retry_after = _retry_after(headers.get("Retry-After"))
    length = headers.get(hdrs.CONTENT_LENGTH)
    if (
        length is not None
        and length.isascii()
        and length.isdigit()
        and int(length) <= MAX_ANSWER_BYTES
        and hdrs.CONTENT_ENCODING not in headers  # a compressed body may inflate past it
    ):
        # The usual answer: its length known and small, read at once (aiohttp stops at
        # Content-Length, and the request's timeout still bounds a slow trickle).
        data: bytes | bytearray = await response.content.read()
    else:
        data = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                response.close()  # the rest is never read: drop the connection
                unread = f"an answer of more than {MAX_ANSWER_BYTES:,} bytes, not read"
                return ApiResponse(status, unread, retry_after, location, too_large=True)
    text = data.decode(_charset(response) or "utf-8", errors="replace")
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text
    return ApiResponse(status, body, retry_after, location)


#: ``response.charset`` by Content-Type: aiohttp parses the header anew for every answer.
_CHARSETS: dict[str | None, str | None] = {}


def _charset(response: aiohttp.ClientResponse) -> str | None:
    content_type = response.headers.get(hdrs.CONTENT_TYPE)
    try:
        return _CHARSETS[content_type]
    except KeyError:
        charset = response.charset
    if len(_CHARSETS) < 64:  # a server inventing a new Content-Type per answer: not kept
        _CHARSETS[content_type] = charset
    return charset


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
