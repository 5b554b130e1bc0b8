"""An Eloqua-compatible REST server for tests, demos and benchmarks.

It serves the few endpoints the importer uses, with Eloqua's status codes and error shapes,
plus fault injection (latency, 500/429/503 answers, dropped connections) so retries and the
``uncertain`` status can be exercised without a real Eloqua site. It stands apart from the rest
of the package: nothing here imports the importer; the importer imports this only to start a
sandbox (``--sandbox``, ``sandbox=True``, ``check --sandbox``, ``eloqua-import sandbox``).

OAuth2 as Eloqua's login service does it: ``/auth/oauth2/token`` (password, authorization_code
and refresh_token grants, HTTP Basic client auth with ``sandbox-client`` / ``sandbox-secret``;
refresh tokens are single-use and rotate on every refresh; an access token stays valid until it
expires, as since Eloqua 26B) and ``/auth/oauth2/authorize``, which approves at once and
redirects to ``redirect_uri`` with a code and the ``state`` (there is no one to ask). Tokens
live ``token_ttl`` seconds, or for ``token_requests`` API requests, so tests can cross expiries.

Extra endpoints for tests (no authentication): ``GET /sandbox/activities`` lists every created
activity in creation order; ``GET /sandbox/stats`` gives request counts and in-flight figures
(``mean_in_flight`` is time-weighted: the concurrency a client really achieved, whatever its
wall clock says); ``POST /sandbox/reset-stats`` starts a new measurement window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import BasicAuth, web
from yarl import URL

from . import seed
from .validation import (
    BodyError,
    Errors,
    parse_body,
    parse_id,
    validate_activity,
    validate_contact,
)

SANDBOX_COMPANY = "Sandbox"
SANDBOX_USERNAME = "api.user"
SANDBOX_PASSWORD = "sandbox"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"
#: Eloqua's access tokens live 8 hours; a refresh token 12 months or until used.
TOKEN_TTL = 28800.0
CODE_TTL = 300.0

NOT_AUTHENTICATED = "Not authenticated."
MAX_PAGE_SIZE = 1000


@dataclass
class SandboxConfig:
    """Fault injection settings. Rates are fractions of activity POSTs, drawn in this order."""

    latency: float = 0.0  # seconds added before answering each API request
    rate_500: float = 0.0  # answered 500, nothing created
    rate_429: float = 0.0  # answered 429 Too Many Requests, nothing created
    rate_503: float = 0.0  # answered 503 Service Unavailable, nothing created
    rate_drop: float = 0.0  # created, then the connection is closed without an answer
    retry_after: int | None = None  # if set, 429/503 answers carry "Retry-After: <n>"
    #: A server with room for this many requests: an activity POST arriving while more API
    #: requests are in flight is answered 429 at once, nothing created (None: no limit).
    capacity: int | None = None
    seed: int | None = None  # random seed for fault injection (reproducible runs)
    token_ttl: float = TOKEN_TTL  # seconds an OAuth2 access token lives
    token_requests: int | None = None  # ... or how many API requests it may make

    def __post_init__(self) -> None:
        rates = (self.rate_500, self.rate_429, self.rate_503, self.rate_drop)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must each be between 0 and 1 and add up to at most 1")
        if self.latency < 0:
            raise ValueError("latency must be >= 0 seconds")
        if self.capacity is not None and self.capacity < 1:
            raise ValueError("capacity must be at least 1 request")
        if self.token_ttl <= 0 or (self.token_requests is not None and self.token_requests < 1):
            raise ValueError("token lifetimes must be positive")


@dataclass
class IssuedToken:
    expires_at: float
    uses: int = 0


@dataclass
class OAuthState:
    """Tokens the sandbox issued. Refresh tokens map to True while unused (single-use)."""

    access: dict[str, IssuedToken] = field(default_factory=dict)
    refresh: dict[str, bool] = field(default_factory=dict)
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)  # code -> redirect, expiry
    grants: Counter[str] = field(default_factory=Counter)  # by grant type, and "refused"


@dataclass
class SandboxState:
    """Everything the server knows; tests read it directly."""

    contacts: dict[int, dict[str, str]] = field(default_factory=dict)
    campaigns: dict[int, str] = field(default_factory=lambda: dict(seed.CAMPAIGNS))
    asset_types: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(seed.ASSET_TYPES))
    activities: list[dict[str, Any]] = field(default_factory=list)
    request_counts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    # The measurement window: from the first API request after a reset to the last answer.
    window_start: float | None = None
    window_end: float | None = None
    in_flight_seconds: float = 0.0  # integral of in_flight over time (request-seconds)
    throttled: int = 0  # activity POSTs answered 429 or 503 in the window
    activities_at_reset: int = 0
    next_activity_id: int = seed.FIRST_ACTIVITY_ID
    next_contact_id: int = seed.FIRST_NEW_CONTACT_ID
    oauth: OAuthState = field(default_factory=OAuthState)

    def __post_init__(self) -> None:
        if not self.contacts:
            self.contacts = {
                cid: {"firstName": first, "lastName": last, "emailAddress": email}
                for cid, first, last, email in seed.CONTACTS
            }

    def activity(self, activity_id: str) -> dict[str, Any] | None:
        return next((a for a in self.activities if a["id"] == activity_id), None)

    def request_started(self) -> None:
        self._advance(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_ended(self) -> None:
        self._advance(time.monotonic())
        self.in_flight -= 1

    def _advance(self, now: float) -> None:
        """Add in_flight x the time since the last change to the in-flight integral."""
        if self.window_start is None:
            self.window_start = self.window_end = now
        assert self.window_end is not None
        self.in_flight_seconds += self.in_flight * (now - self.window_end)
        self.window_end = now

    @property
    def mean_in_flight(self) -> float:
        """Requests in flight, averaged over time across the window (0 before any request)."""
        if self.window_start is None or self.window_end is None:
            return 0.0
        span = self.window_end - self.window_start
        return self.in_flight_seconds / span if span > 0 else float(self.in_flight)

    def reset_stats(self) -> None:
        """Start a new measurement window; requests in flight now still count in the next one."""
        self.request_counts.clear()
        self.max_in_flight = self.in_flight
        self.window_start = self.window_end = time.monotonic() if self.in_flight else None
        self.in_flight_seconds = 0.0
        self.throttled = 0
        self.activities_at_reset = len(self.activities)

    def stats(self) -> dict[str, Any]:
        span = 0.0
        if self.window_start is not None and self.window_end is not None:
            span = self.window_end - self.window_start
        return {
            "requests": dict(self.request_counts),
            "activities": len(self.activities),
            "activities_in_window": len(self.activities) - self.activities_at_reset,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "mean_in_flight": self.mean_in_flight,
            "window_seconds": span,
            "throttled": self.throttled,
            "oauth_grants": dict(self.oauth.grants),
        }


CONFIG_KEY = web.AppKey("config", SandboxConfig)
STATE_KEY = web.AppKey("state", SandboxState)
RANDOM_KEY = web.AppKey("random", random.Random)

Handler = Callable[[web.Request, re.Match[str]], Awaitable[web.StreamResponse]]
_json_response = functools.partial(
    web.json_response, dumps=functools.partial(json.dumps, ensure_ascii=False)
)


# --- helpers ---------------------------------------------------------------------------------


def _authenticated(request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        token = credentials.strip()
        return token == SANDBOX_TOKEN or _oauth_token_valid(request, token)
    try:
        auth = BasicAuth.decode(header)
    except ValueError:
        return False
    company, _, user = auth.login.partition("\\")
    return (
        company.lower() == SANDBOX_COMPANY.lower()
        and user.lower() == SANDBOX_USERNAME.lower()
        and auth.password == SANDBOX_PASSWORD
    )


def _oauth_token_valid(request: web.Request, token: str) -> bool:
    """An access token the sandbox issued, neither expired nor out of requests (counts one)."""
    issued = request.app[STATE_KEY].oauth.access.get(token)
    if issued is None or time.time() >= issued.expires_at:
        return False
    limit = request.app[CONFIG_KEY].token_requests
    issued.uses += 1
    return limit is None or issued.uses <= limit


def _bad_request(errors: Errors) -> web.Response:
    return _json_response(errors, status=400)


def _parameter_error(name: str, requirement: str, value: str) -> web.Response:
    error = {
        "type": "EndpointParameterError",
        "parameter": name,
        "requirement": {"type": requirement},
        "value": value,
    }
    return _bad_request([error])


_SEARCH = re.compile(r"\s*([A-Za-z]\w*)\s*=\s*(.*?)\s*", re.DOTALL)


def parse_search(text: str) -> tuple[str | None, str]:
    """Split Eloqua search syntax ``field='value'`` into (field, value).

    The value is everything between the first and the last single quote, so it may itself hold
    quotes (``emailAddress='conor.o'brien@example.ie'``). A bare term has no field.
    """
    match = _SEARCH.fullmatch(text)
    field_name, value = match.groups() if match else (None, text.strip())
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return field_name, value


def _matches(pattern: str, value: str) -> bool:
    """Case-insensitive exact match; ``*`` is a wildcard, as in Eloqua search."""
    if "*" not in pattern:
        return pattern.casefold() == value.casefold()
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _search(
    request: web.Request, elements: list[dict[str, Any]], default_field: str
) -> list[dict[str, Any]]:
    text = request.query.get("search")
    if text is None:
        return elements
    field_name, value = parse_search(text)
    key = field_name or default_field
    return [e for e in elements if key in e and _matches(value, str(e[key]))]


def _page(request: web.Request, elements: list[dict[str, Any]]) -> web.Response:
    page, count = request.query.get("page", "1"), request.query.get("count", str(MAX_PAGE_SIZE))
    if parse_id(page) is None:
        return _parameter_error("page", "IntegerRequirement", page)
    number = parse_id(count)
    if number is None or number > MAX_PAGE_SIZE:
        return _parameter_error("count", "IntegerRequirement", count)
    start = (int(page) - 1) * number
    body = {
        "elements": elements[start : start + number],
        "page": int(page),
        "pageSize": number,
        "total": len(elements),
    }
    return _json_response(body)


def _draw_fault(config: SandboxConfig, rng: random.Random) -> str | None:
    roll = rng.random()
    for fault, rate in (
        ("500", config.rate_500),
        ("429", config.rate_429),
        ("503", config.rate_503),
        ("drop", config.rate_drop),
    ):
        if roll < rate:
            return fault
        roll -= rate
    return None


def _fault_response(fault: str, config: SandboxConfig) -> web.Response:
    headers = {}
    if config.retry_after is not None and fault in ("429", "503"):
        headers["Retry-After"] = str(config.retry_after)
    text = {
        "500": "The service has encountered an error.",
        "429": "Too Many Requests",
        "503": "There was a timeout processing the request.",
    }[fault]
    return web.Response(status=int(fault), text=text, headers=headers)


# --- handlers --------------------------------------------------------------------------------


async def _identity(request: web.Request, _: re.Match[str]) -> web.Response:
    if not _authenticated(request):
        # Eloqua's login service really answers 200 with this JSON string.
        return _json_response(NOT_AUTHENTICATED)
    base = str(request.url.origin())
    body = {
        "site": {"id": seed.SITE_ID, "name": seed.SITE_NAME},
        "user": {
            "id": seed.USER_ID,
            "username": SANDBOX_USERNAME,
            "displayName": seed.USER_DISPLAY_NAME,
            "firstName": "API",
            "lastName": "User",
        },
        "urls": {
            "base": base,
            "apis": {
                "soap": {
                    "standard": f"{base}/API/{{version}}/Service.svc",
                    "dataTransfer": f"{base}/API/{{version}}/DataTransferService.svc",
                },
                "rest": {
                    "standard": f"{base}/API/REST/{{version}}/",
                    "bulk": f"{base}/API/Bulk/{{version}}/",
                },
            },
        },
    }
    return _json_response(body)


async def _create_activity(request: web.Request, _: re.Match[str]) -> web.StreamResponse:
    state, config = request.app[STATE_KEY], request.app[CONFIG_KEY]
    raw = await request.read()  # read first: a fault must not leave the body unread
    fault = _draw_fault(config, request.app[RANDOM_KEY])
    if config.capacity is not None and state.in_flight > config.capacity:
        fault = "429"  # over capacity: refused at once, as a loaded server would
    if fault in ("500", "429", "503"):
        state.throttled += fault != "500"
        return _fault_response(fault, config)
    try:
        activity, errors = validate_activity(
            parse_body(raw), state.asset_types, state.contacts, state.campaigns
        )
    except BodyError as exc:
        activity, errors = {}, exc.errors
    if not errors:
        activity["id"] = str(state.next_activity_id)
        state.next_activity_id += 1
        activity = {"type": activity.pop("type"), "id": activity.pop("id"), **activity}
        state.activities.append(activity)
    if fault == "drop" and request.transport is not None:
        # Close without writing: aiohttp then skips the response we return below.
        request.transport.close()
    if errors:
        return _bad_request(errors)
    return _json_response(activity, status=201)


async def _read_activity(request: web.Request, match: re.Match[str]) -> web.Response:
    activity_id = match["id"]
    if parse_id(activity_id) is None:
        return _parameter_error("id", "IdRequirement", activity_id)
    activity = request.app[STATE_KEY].activity(str(int(activity_id)))
    if activity is None:
        return web.Response(status=404)
    return _json_response(activity)


def _contact_element(cid: int, contact: dict[str, str], depth: str) -> dict[str, Any]:
    return {
        "type": "Contact",
        "id": str(cid),
        "depth": depth,
        "name": contact["emailAddress"],
        **contact,
    }


async def _search_contacts(request: web.Request, _: re.Match[str]) -> web.Response:
    depth = request.query.get("depth", "minimal")
    contacts = request.app[STATE_KEY].contacts
    elements = [_contact_element(cid, c, depth) for cid, c in contacts.items()]
    return _page(request, _search(request, elements, "emailAddress"))


async def _create_contact(request: web.Request, _: re.Match[str]) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = parse_body(await request.read())
    except BodyError as exc:
        return _bad_request(exc.errors)
    known = {c["emailAddress"].casefold() for c in state.contacts.values()}
    errors = validate_contact(body, known)
    if errors:
        conflict = any(e["requirement"]["type"] == "UniquenessRequirement" for e in errors)
        return _json_response(errors, status=409 if conflict else 400)
    contact = {
        "firstName": str(body.get("firstName") or ""),
        "lastName": str(body.get("lastName") or ""),
        "emailAddress": str(body["emailAddress"]).strip(),
    }
    cid, state.next_contact_id = state.next_contact_id, state.next_contact_id + 1
    state.contacts[cid] = contact
    return _json_response(_contact_element(cid, contact, "complete"), status=201)


async def _search_campaigns(request: web.Request, _: re.Match[str]) -> web.Response:
    depth = request.query.get("depth", "minimal")
    elements = [
        {"type": "Campaign", "id": str(cid), "depth": depth, "name": name}
        for cid, name in request.app[STATE_KEY].campaigns.items()
    ]
    return _page(request, _search(request, elements, "name"))


def _asset_type_elements(asset_types: dict[str, tuple[str, ...]]) -> Iterator[dict[str, Any]]:
    activity_id = 0
    for asset_id, (name, activity_names) in enumerate(asset_types.items(), start=1):
        activity_types = []
        for activity_name in activity_names:
            activity_id += 1
            activity_types.append(
                {"type": "ExternalActivityType", "id": str(activity_id), "name": activity_name}
            )
        yield {
            "type": "ExternalAssetType",
            "id": str(asset_id),
            "depth": "complete",
            "name": name,
            "activityTypes": activity_types,
        }


async def _list_asset_types(request: web.Request, _: re.Match[str]) -> web.Response:
    elements = list(_asset_type_elements(request.app[STATE_KEY].asset_types))
    return _page(request, _search(request, elements, "name"))


async def _token(request: web.Request, _: re.Match[str]) -> web.Response:
    """The OAuth2 token endpoint: one grant per call, tokens in Eloqua's answer shape."""
    oauth, config = request.app[STATE_KEY].oauth, request.app[CONFIG_KEY]
    form = await _token_form(request)
    if not _client_ok(request, form):
        oauth.grants["refused"] += 1
        return _json_response({"error": "invalid_client"}, status=401)
    grant = form.get("grant_type", "")
    if grant == "password":
        company, _sep, user = form.get("username", "").partition("\\")
        ok = (
            company.lower() == SANDBOX_COMPANY.lower()
            and user.lower() == SANDBOX_USERNAME.lower()
            and form.get("password") == SANDBOX_PASSWORD
        )
    elif grant == "authorization_code":
        redirect, expires = oauth.codes.pop(form.get("code", ""), ("", 0.0))  # single-use
        ok = bool(redirect) and redirect == form.get("redirect_uri") and time.time() < expires
    elif grant == "refresh_token":
        token = form.get("refresh_token", "")
        ok = oauth.refresh.get(token, False)
        if ok:
            oauth.refresh[token] = False  # spent: using it again is refused
    else:
        oauth.grants["refused"] += 1
        return _json_response({"error": "unsupported_grant_type"}, status=400)
    if not ok:
        oauth.grants["refused"] += 1
        return _json_response({"error": "invalid_grant"}, status=400)
    oauth.grants[grant] += 1
    access, refresh = "sbx-at-" + secrets.token_urlsafe(18), "sbx-rt-" + secrets.token_urlsafe(18)
    oauth.access[access] = IssuedToken(time.time() + config.token_ttl)
    oauth.refresh[refresh] = True
    body = {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": int(config.token_ttl) if config.token_ttl >= 1 else config.token_ttl,
        "refresh_token": refresh,
    }
    return _json_response(body)


async def _token_form(request: web.Request) -> dict[str, str]:
    """Eloqua's docs send JSON; form-encoded bodies are accepted too."""
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: str(v) for k, v in (await request.post()).items()}


def _client_ok(request: web.Request, form: dict[str, str]) -> bool:
    try:
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        client_id, secret = auth.login, auth.password
    except ValueError:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    return client_id == SANDBOX_CLIENT_ID and secret == SANDBOX_CLIENT_SECRET


async def _authorize(request: web.Request, _: re.Match[str]) -> web.Response:
    """Approve at once (no user to ask) and send the browser back with a code."""
    query = request.query
    redirect = query.get("redirect_uri", "")
    if query.get("client_id") != SANDBOX_CLIENT_ID or not redirect.startswith("http"):
        return web.Response(status=400, text="unknown client_id or missing redirect_uri")
    if query.get("response_type") != "code":
        return web.Response(status=400, text="response_type must be code")
    code = "sbx-code-" + secrets.token_urlsafe(12)
    request.app[STATE_KEY].oauth.codes[code] = (redirect, time.time() + CODE_TTL)
    location = URL(redirect).update_query(code=code, state=query.get("state", ""))
    raise web.HTTPFound(location)


async def _list_created(request: web.Request, _: re.Match[str]) -> web.Response:
    return _json_response(request.app[STATE_KEY].activities)


async def _stats(request: web.Request, _: re.Match[str]) -> web.Response:
    return _json_response(request.app[STATE_KEY].stats())


async def _reset_stats(request: web.Request, _: re.Match[str]) -> web.Response:
    state = request.app[STATE_KEY]
    state.reset_stats()
    return _json_response(state.stats())


# --- routing ---------------------------------------------------------------------------------

# (method, path pattern, kind counted in request_counts, handler, is an authenticated API)
# Matched case-insensitively: Eloqua's docs write both /API/REST and /api/rest.
_ROUTES: tuple[tuple[str, str, str, Handler, bool], ...] = (
    ("GET", r"/id", "id", _identity, False),
    ("POST", r"/api/rest/2\.0/data/activity/?", "activity_post", _create_activity, True),
    ("GET", r"/api/rest/2\.0/data/activity/(?P<id>[^/]+)/?", "activity_get", _read_activity, True),
    ("GET", r"/api/rest/1\.0/data/contacts/?", "contacts_search", _search_contacts, True),
    ("POST", r"/api/rest/1\.0/data/contact/?", "contact_post", _create_contact, True),
    ("GET", r"/api/rest/2\.0/assets/campaigns/?", "campaigns_search", _search_campaigns, True),
    ("GET", r"/api/rest/2\.0/assets/external/types/?", "external_types", _list_asset_types, True),
    ("POST", r"/auth/oauth2/token", "oauth_token", _token, False),
    ("GET", r"/auth/oauth2/authorize", "oauth_authorize", _authorize, False),
    ("GET", r"/sandbox/activities/?", "sandbox_activities", _list_created, False),
    ("GET", r"/sandbox/stats/?", "sandbox_stats", _stats, False),
    ("POST", r"/sandbox/reset-stats/?", "sandbox_reset", _reset_stats, False),
)
_COMPILED = tuple(
    (method, re.compile(pattern, re.IGNORECASE), kind, handler, api)
    for method, pattern, kind, handler, api in _ROUTES
)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    found = [(r, m) for r in _COMPILED if (m := r[1].fullmatch(request.path))]
    route = next(((r, m) for r, m in found if r[0] == request.method), None)
    if route is None:
        state.request_counts["not_found" if not found else "method_not_allowed"] += 1
        return web.Response(status=404 if not found else 405)
    (_, _, kind, handler, api), match = route
    state.request_counts[kind] += 1
    if kind.startswith("sandbox_"):
        return await handler(request, match)
    state.request_started()
    try:
        latency = request.app[CONFIG_KEY].latency
        if latency:
            await asyncio.sleep(latency)
        if api and not _authenticated(request):
            return _json_response(NOT_AUTHENTICATED, status=401)
        return await handler(request, match)
    finally:
        state.request_ended()


def create_app(config: SandboxConfig | None = None) -> web.Application:
    """A fresh sandbox application with its own seeded state (``app[STATE_KEY]``)."""
    config = config or SandboxConfig()
    app = web.Application()
    app[CONFIG_KEY] = config
    app[STATE_KEY] = SandboxState()
    app[RANDOM_KEY] = random.Random(config.seed)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


# How long closing the server lets requests still being answered finish before cancelling them.
# Idle keep-alive connections are closed at once whatever this says; only a handler still
# waiting (a latency, a client gone mid-request) is waited for. Nobody needs those answers
# once the sandbox stops, and every test pays this wait at teardown: keep it short. Never 0:
# aiohttp reads 0 as "no limit".
SHUTDOWN_GRACE = 0.1


class SandboxServer:
    """Run the sandbox on a real loopback socket for the duration of an ``async with``."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        shutdown_timeout: float = SHUTDOWN_GRACE,
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.app = create_app(self.config)
        self.state: SandboxState = self.app[STATE_KEY]
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> SandboxServer:
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]  # the real port when 0 was asked for
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{self.port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def serve(host: str = "127.0.0.1", port: int = 8080, config: SandboxConfig | None = None) -> None:
    """Run the sandbox in the foreground until Ctrl-C (the ``eloqua-import sandbox`` command)."""

    async def run() -> None:
        async with SandboxServer(config, host, port) as server:
            print(
                f"Eloqua sandbox at {server.base_url} - company {SANDBOX_COMPANY}, "
                f"user {SANDBOX_USERNAME}, password {SANDBOX_PASSWORD} "
                f"(or bearer token {SANDBOX_TOKEN}); OAuth2 app {SANDBOX_CLIENT_ID} /"
                f" {SANDBOX_CLIENT_SECRET}; Ctrl-C to stop",
                flush=True,
            )
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
