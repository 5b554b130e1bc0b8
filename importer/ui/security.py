"""The web page's guard: who may talk to the server at all (a thin layer's only real logic).

Invariants (each has a test in tests/test_ui_server.py):
- every request needs the launch's secret token, first from the printed URL, then from an
  HttpOnly, SameSite=Strict cookie; without it the answer is 403 and nothing else;
- the Host header must name this server (a DNS-rebinding page cannot borrow the cookie-less
  loopback port under another name);
- a request that changes anything is a POST that carries the token in a header too (CSRF);
- answers forbid framing, sniffing, scripts from elsewhere and caching.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE = "eloqua_import_ui"
TOKEN_HEADER = "X-Eloqua-Import-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SECURITY_HEADERS = {
    # Everything is served from here; no inline script, no framing by another site.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The Host header values this server answers to; None: any (a public bind, on request)."""
    if host in ("0.0.0.0", "::"):
        return None
    shown = f"[{host}]" if ":" in host else host
    names = {*LOOPBACK_NAMES, shown}
    return frozenset(f"{name}:{port}" for name in names)


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def _refuse(why: str) -> web.Response:
    return web.Response(status=403, text=f"403 Forbidden: {why}\n", headers=SECURITY_HEADERS)


def guard(token: str, hosts: Callable[[], frozenset[str] | None]) -> Middleware:
    """The middleware: host check, token check, CSRF check, security headers."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        allowed = hosts()
        if allowed is not None and request.host not in allowed:
            return _refuse("unexpected Host header; open the address the command printed")
        if request.method not in ("GET", "HEAD", "POST"):
            return web.Response(status=405, headers=SECURITY_HEADERS)
        if request.path == "/" and "token" in request.query:
            if not _same(request.query["token"], token):
                return _refuse("wrong token; open the address the command printed")
            # The token leaves the address bar (and the history) for a cookie.
            redirect = web.HTTPSeeOther("/", headers=SECURITY_HEADERS)
            redirect.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            raise redirect
        if not _same(request.cookies.get(COOKIE), token):
            return _refuse("no valid token; open the address the command printed")
        if request.method == "POST" and not _same(request.headers.get(TOKEN_HEADER), token):
            return _refuse("a change needs the page's token (cross-site request refused)")
        response = await handler(request)
        if not response.prepared:  # a stream (SSE) sent its headers already
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    return middleware
