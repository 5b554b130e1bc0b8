"""`eloqua-import login`: the OAuth2 authorization code grant, once, to start a refresh chain.

Opens the browser at Eloqua's authorize page (and prints the address, for machines without
one), receives the redirect on a one-shot listener on 127.0.0.1, checks ``state`` (a redirect
that did not come from this login is refused), exchanges the code at the token endpoint with
HTTP Basic client auth and stores the tokens in the token file. Nothing secret is printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from importer.auth import (
    AUTHORIZE_PATH,
    AuthRefused,
    OAuthApp,
    TokenFile,
    Tokens,
    TokenUnavailable,
    describe_expiry,
    fingerprint,
    record_from_tokens,
    request_tokens,
    tokens_from_record,
)
from importer.errors import AbortedError, AuthError, ConfigError

CALLBACK_PATH = "/callback"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>eloqua-import</title></head>
<body style="font-family:sans-serif"><h1>{title}</h1><p>{text}</p></body></html>"""


@dataclass
class LoginOptions:
    port: int
    open_browser: bool = True
    timeout: float = 300.0
    seed: str = ""  # ELOQUA_REFRESH_TOKEN as set now: marked as seen, so it cannot override


async def login(
    app: OAuthApp, token_file: TokenFile, options: LoginOptions, say: Callable[[str], None]
) -> Tokens:
    """Run the whole grant; returns the stored tokens. Raises ImporterError subclasses."""
    state = secrets.token_urlsafe(24)
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    runner = web.AppRunner(_callback_app(state, answer), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, "127.0.0.1", options.port).start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{options.port} for Eloqua's redirect"
                f" ({exc.strerror}); close what uses it, or pick another --port (the app's"
                " OAuth callback URL in Eloqua must name the same port)"
            ) from None
        port = runner.addresses[0][1]
        redirect_uri = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
        url = authorize_url(app, redirect_uri, state)
        say(f"Open this address in a browser and log in to Eloqua:\n  {url}")
        say(f"Waiting up to {options.timeout:g} s for Eloqua to send the browser back...")
        if options.open_browser:
            webbrowser.open(url)
        try:
            code = await asyncio.wait_for(answer, options.timeout)
        except TimeoutError:
            raise AbortedError(
                f"no answer from Eloqua within {options.timeout:g} s; run `eloqua-import"
                " login` again (--timeout S to wait longer). Nothing was stored."
            ) from None
    finally:
        await runner.cleanup()
    tokens = await _exchange(app, code, redirect_uri)
    async with token_file.locked():
        previous = token_file.read()
        generation = tokens_from_record(previous).generation + 1 if previous else 1
        tokens = dataclasses.replace(tokens, generation=generation)
        seed = fingerprint(options.seed) if options.seed else None
        token_file.write(record_from_tokens(tokens, app, redirect_uri, seed))
    say(
        f"Logged in. Tokens stored in {token_file.path} (keep it private; the access token"
        f" expires {describe_expiry(tokens.expires_at, time.time())} and renews itself)."
    )
    return tokens


def authorize_url(app: OAuthApp, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "scope": "full",
            "state": state,
        }
    )
    return f"{app.login_url.rstrip('/')}{AUTHORIZE_PATH}?{query}"


def _callback_app(state: str, answer: asyncio.Future[str]) -> web.Application:
    async def callback(request: web.Request) -> web.Response:
        query = request.query
        if answer.done():
            return _page("Already done", "This login has finished; you can close this tab.", 410)
        if not secrets.compare_digest(query.get("state", ""), state):
            # Not the redirect of this login (an old tab, or a forged link): ignore it.
            return _page(
                "Unknown login",
                "This address does not belong to the login in"
                " progress. Run `eloqua-import login` again.",
                400,
            )
        if query.get("error"):
            answer.set_exception(
                AuthError(
                    f"Eloqua did not authorize the app ({query['error'][:60]}); run"
                    " `eloqua-import login` again and approve it. Nothing was stored."
                )
            )
            return _page("Not authorized", "Eloqua did not authorize the app.", 400)
        code = query.get("code", "")
        if not code:
            return _page("No code", "Eloqua sent no authorization code.", 400)
        answer.set_result(code)
        return _page("Logged in", "eloqua-import is logged in; you can close this tab.", 200)

    app = web.Application()
    app.router.add_get(CALLBACK_PATH, callback)
    return app


def _page(title: str, text: str, status: int) -> web.Response:
    return web.Response(
        text=PAGE.format(title=title, text=text), status=status, content_type="text/html"
    )


async def _exchange(app: OAuthApp, code: str, redirect_uri: str) -> Tokens:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    async with aiohttp.ClientSession() as session:
        try:
            return await request_tokens(session, app, body, time.time())
        except AuthRefused as exc:
            raise AuthError(
                f"{exc}; check ELOQUA_CLIENT_ID and ELOQUA_CLIENT_SECRET, then run"
                " `eloqua-import login` again. Nothing was stored."
            ) from None
        except TokenUnavailable as exc:
            raise AbortedError(f"{exc}; run `eloqua-import login` again later.") from None
